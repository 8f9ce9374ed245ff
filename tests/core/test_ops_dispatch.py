"""det.core.layers.ops: picking an op's implementation per device type, from plugins or the reference."""

from __future__ import annotations

import sys
import types
import warnings

import pytest
import torch

from det.core.layers import nms, ops
from det.core.layers.ops import OP_NAMES, dispatch, op_providers, register_op

FAKE_MODULE = "det_fake_ops_provider"


@pytest.fixture
def fake_provider(monkeypatch):
    """A plugin distribution 'det-fake-ops' declaring nms for cpu and roi_align for meta tensors."""
    calls = []
    module = types.ModuleType(FAKE_MODULE)

    def fake_nms(boxes, scores, iou_threshold):
        calls.append(("nms", boxes.device.type, iou_threshold))
        return torch.arange(boxes.shape[0] - 1, -1, -1)

    def fake_roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned):
        calls.append(("roi_align", input.device.type, output_size))
        return input.new_empty((rois.shape[0], input.shape[1], *output_size))

    module.nms = fake_nms
    module.roi_align = fake_roi_align
    monkeypatch.setitem(sys.modules, FAKE_MODULE, module)
    declarations = [
        ("nms", "cpu", f"{FAKE_MODULE}:nms", "det-fake-ops"),
        ("roi_align", "meta", f"{FAKE_MODULE}:roi_align", "det-fake-ops"),
    ]
    monkeypatch.setattr(ops, "_plugin_declarations", lambda: declarations)
    monkeypatch.delenv(ops.FORCE_REFERENCE_ENV, raising=False)
    ops.reset()
    yield calls
    ops.reset()


@pytest.fixture(autouse=True)
def _clean_table():
    ops.reset()
    yield
    ops.reset()


def test_every_op_has_a_reference_and_no_plugins_means_reference(monkeypatch):
    monkeypatch.setattr(ops, "_plugin_declarations", lambda: [])
    assert OP_NAMES == (
        "nms",
        "batched_nms",
        "roi_align",
        "roi_align_rotated",
        "nms_rotated",
        "box_iou_rotated",
        "paste_masks",
        "deform_conv",
    )
    for op in OP_NAMES:
        impl = dispatch(op, torch.zeros(1))
        assert callable(impl) and impl.__module__.startswith("det.core.layers.")
    assert op_providers() == {op: {"*": "det-core"} for op in OP_NAMES}


def test_plugin_implementation_serves_its_device_only(fake_provider):
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8])
    # the public function goes through the table: the fake keeps everything, reversed
    assert nms(boxes, scores, 0.5).tolist() == [1, 0]
    assert fake_provider == [("nms", "cpu", 0.5)]
    assert dispatch("nms", boxes).__name__ == "fake_nms"
    # roi_align is declared for "meta" only: cpu tensors get the reference, meta tensors the plugin
    assert dispatch("roi_align", torch.zeros(1)) is ops._reference["roi_align"].impl
    x = torch.empty(2, 3, 8, 8, device="meta")
    rois = torch.empty(4, 5, device="meta")
    assert dispatch("roi_align", x, rois).__name__ == "fake_roi_align"
    providers = op_providers()
    assert providers["nms"] == {"*": "det-core", "cpu": "det-fake-ops"}
    assert providers["roi_align"] == {"*": "det-core", "meta": "det-fake-ops"}
    assert providers["deform_conv"] == {"*": "det-core"}


def test_force_reference_env_var(fake_provider, monkeypatch):
    monkeypatch.setenv("DET_FORCE_REFERENCE_OPS", "1")
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]  # real NMS: one survives
    assert fake_provider == []
    assert op_providers()["nms"] == {"*": "det-core"}
    monkeypatch.setenv("DET_FORCE_REFERENCE_OPS", "0")
    assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [1, 0]


def test_broken_plugin_warns_with_its_distribution_and_falls_back(monkeypatch):
    monkeypatch.setattr(
        ops, "_plugin_declarations", lambda: [("nms", "cpu", "det_no_such_module_xyz:nms", "det-broken-ops")]
    )
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    with pytest.warns(
        RuntimeWarning, match=r"'det-broken-ops' implementation 'det_no_such_module_xyz:nms'.*reference"
    ):
        assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once, not on every call
        assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
    assert op_providers()["nms"]["cpu"] == "det-broken-ops (failed to load; reference used)"


def test_duplicate_and_unknown_declarations_warn(monkeypatch):
    monkeypatch.setitem(sys.modules, FAKE_MODULE, types.ModuleType(FAKE_MODULE))
    sys.modules[FAKE_MODULE].nms = lambda b, s, t: torch.zeros(0, dtype=torch.int64)
    monkeypatch.setattr(
        ops,
        "_plugin_declarations",
        lambda: [
            ("nms", "cpu", f"{FAKE_MODULE}:nms", "det-a"),
            ("nms", "cpu", "elsewhere:nms", "det-b"),
            ("soft_nms", "cpu", "elsewhere:soft_nms", "det-c"),
        ],
    )
    with pytest.warns(RuntimeWarning) as record:
        providers = op_providers()
    messages = [str(r.message) for r in record]
    assert any("declared by both 'det-a' and 'det-b'; using 'det-a'" in m for m in messages)
    assert any("'det-c' declares an implementation of unknown op 'soft_nms'" in m for m in messages)
    assert providers["nms"]["cpu"] == "det-a"
    assert "soft_nms" not in providers


def test_register_op_in_process_wins_and_can_be_removed(fake_provider):
    register_op("nms", "cpu", lambda boxes, scores, thr: torch.tensor([7]), provider="my-code")
    boxes = torch.zeros(2, 4)
    assert nms(boxes, torch.zeros(2), 0.5).tolist() == [7]
    assert op_providers()["nms"]["cpu"] == "my-code"
    ops.unregister_op("nms", "cpu")
    assert nms(boxes, torch.zeros(2), 0.5).tolist() == [1, 0]  # back to the plugin
    register_op("nms", "cpu", f"{FAKE_MODULE}:nms")  # "module:attribute" form, imported lazily
    assert dispatch("nms", boxes).__name__ == "fake_nms"


def test_dispatch_errors():
    with pytest.raises(ValueError, match="Unknown op 'soft_nms'; det dispatches: nms, batched_nms"):
        dispatch("soft_nms", torch.zeros(1))
    with pytest.raises(
        ValueError, match=r"roi_align: all tensors must be on one device type, got \['cpu', 'meta'\]"
    ):
        dispatch("roi_align", torch.zeros(1), torch.empty(1, device="meta"))
    with pytest.raises(ValueError, match="device must be a device type"):
        register_op("nms", "*", lambda *a: None)
    with pytest.raises(TypeError, match="impl must be a callable"):
        register_op("nms", "cuda", 3)
    with pytest.raises(ValueError, match="Unknown op"):
        register_op("nmz", "cuda", lambda *a: None)


def test_reads_det_core_plugins_and_follows_its_reset(monkeypatch):
    from det.core import plugins

    declared = [("paste_masks", "meta", f"{FAKE_MODULE}:paste", "det-fake-ops")]
    monkeypatch.setattr(plugins, "op_declarations", lambda: list(declared))
    assert op_providers()["paste_masks"] == {"*": "det-core", "meta": "det-fake-ops"}
    declared.clear()
    assert op_providers()["paste_masks"]["meta"] == "det-fake-ops"  # read once, cached
    plugins.reset()  # rediscovery drops the op table too
    assert op_providers()["paste_masks"] == {"*": "det-core"}


def test_real_installed_plugins_do_not_break_dispatch():
    # whatever is installed in this environment, the reference serves when forced and cpu works
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10.0], [50, 50, 60, 60]])
    assert nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
    providers = op_providers()
    assert set(providers) == set(OP_NAMES) and all(p["*"] == "det-core" for p in providers.values())


def test_first_torchvision_import_inside_a_forward_does_not_pin_its_frames():
    """torchvision.ops' import makes a reference cycle through the importing stack; det imports it
    on a thread of its own so that a forward's activations are freed when it returns."""
    import subprocess
    import sys

    child = r"""
import gc, sys, weakref
import torch
gc.disable()  # only reference counting may free the tensor
from det.core.layers import roi_align
def forward():
    activation = torch.zeros(1000)
    features = torch.rand(1, 1, 4, 4, requires_grad=True)
    roi_align(features, torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]]), 2, 1.0, 1, True)  # imports torchvision.ops
    return weakref.ref(activation)
ref = forward()
print("torchvision.ops" in sys.modules, ref() is None)
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_nms_uses_torchvision_kernels_without_importing_torchvision():
    """Inference needs only torchvision's compiled nms; importing torchvision.ops would cost ~0.8 s."""
    import subprocess
    import sys

    child = r"""
import sys
import torch
from det.core.layers import batched_nms, nms
g = torch.Generator().manual_seed(0)
xy = torch.rand(300, 2, generator=g) * 100
boxes = torch.cat([xy, xy + torch.rand(300, 2, generator=g) * 30 + 1], 1)
scores, classes = torch.rand(300, generator=g), torch.randint(0, 3, (300,), generator=g)
keep, keep_batched = nms(boxes, scores, 0.5), batched_nms(boxes, scores, classes, 0.5)
imported = "torchvision" in sys.modules
import torchvision.ops
print(imported, torch.equal(keep, torchvision.ops.nms(boxes, scores, 0.5)),
      torch.equal(keep_batched, torchvision.ops.batched_nms(boxes, scores, classes, 0.5)))
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]
