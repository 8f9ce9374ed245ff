"""The plugin declares every kernel for "cuda"; det-core's dispatch picks it up, and the switches
(DET_DISABLE_PLUGINS, DET_FORCE_REFERENCE_OPS) turn it off."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import det.ops_cuda
from det.core import plugins
from det.core.layers import ops
from det.ops_cuda._plugin import OPS

KERNEL_OPS = [
    "nms",
    "batched_nms",
    "nms_rotated",
    "box_iou_rotated",
    "roi_align",
    "roi_align_rotated",
    "paste_masks",
]


def _run(code: str, **env: str) -> str:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("DET_DISABLE_PLUGINS", "DET_FORCE_REFERENCE_OPS")
    }
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


PROVIDERS = "import json; from det.core.layers.ops import op_providers; print(json.dumps(op_providers()))"


def test_op_providers_follow_the_plugin_switches():
    installed = json.loads(_run(PROVIDERS))
    disabled = json.loads(_run(PROVIDERS, DET_DISABLE_PLUGINS="ops-cuda"))
    forced = json.loads(_run(PROVIDERS, DET_FORCE_REFERENCE_OPS="1"))
    for op in KERNEL_OPS:
        assert installed[op] == {"*": "det-core", "cuda": "det-ops-cuda"}, op
        assert disabled[op] == {"*": "det-core"}, op
        assert forced[op] == {"*": "det-core"}, op
    # deform_conv has no Triton kernel: the reference serves it everywhere
    assert installed["deform_conv"] == {"*": "det-core"}


def test_det_plugins_lists_the_kernels_per_device():
    report = json.loads(_run("from det.core.cli import main; main(['plugins', '--json'])"))
    cuda = {entry["op"]: (entry["target"], entry["distribution"]) for entry in report["ops"]["cuda"]}
    assert cuda == {op: (OPS[op], "det-ops-cuda") for op in KERNEL_OPS}
    assert "cpu" not in report["ops"]
    dist = next(d for d in report["distributions"] if d["name"] == "det-ops-cuda")
    assert dist["version"] == det.ops_cuda.__version__
    off = json.loads(
        _run("from det.core.cli import main; main(['plugins', '--json'])", DET_DISABLE_PLUGINS="ops-cuda")
    )
    assert "cuda" not in off["ops"]


def test_declared_targets_are_the_public_kernels():
    for op in KERNEL_OPS:
        assert plugins.load_target(OPS[op], "det-ops-cuda") is getattr(det.ops_cuda, op)


def test_plugin_and_package_import_neither_torch_nor_triton():
    out = _run(
        "import sys, det.ops_cuda, det.ops_cuda._plugin as p;"
        "print(sorted(m for m in ('torch', 'triton') if m in sys.modules), len(p.det_ops()))"
    )
    assert out.split() == ["[]", "7"]


@pytest.fixture
def kernels_on_cpu():
    """Serve CPU tensors with the kernels (in the interpreter) as the plugin serves CUDA tensors."""
    calls: list[str] = []

    def counted(op):
        kernel = getattr(det.ops_cuda, op)

        def run(*args, **kwargs):
            calls.append(op)
            return kernel(*args, **kwargs)

        return run

    for op in KERNEL_OPS:
        ops.register_op(op, "cpu", counted(op), provider="det-ops-cuda (test)")
    yield calls
    for op in KERNEL_OPS:
        ops.unregister_op(op, "cpu")


def test_core_layers_run_the_kernels_through_dispatch(kernels_on_cpu, monkeypatch):
    from det.core import layers

    assert ops.op_providers()["nms"]["cpu"] == "det-ops-cuda (test)"
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(30, 2, generator=g) * 30
    boxes = torch.cat([xy, xy + torch.rand(30, 2, generator=g) * 20 + 1], 1)
    rotated = torch.cat([xy, torch.rand(30, 2, generator=g) * 10 + 1, torch.rand(30, 1, generator=g) * 90], 1)
    scores = torch.rand(30, generator=g)
    classes = torch.randint(0, 3, (30,), generator=g)
    features = torch.rand(1, 2, 8, 8, generator=g)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 5.0]])
    rrois = torch.tensor([[0, 4.0, 4.0, 5.0, 3.0, 30.0]])
    masks = torch.rand(2, 5, 5, generator=g)

    def everything():
        return [
            layers.nms(boxes, scores, 0.5),
            layers.batched_nms(boxes, scores, classes, 0.5),
            layers.nms_rotated(rotated, scores, 0.5),
            layers.batched_nms_rotated(rotated, scores, classes, 0.5),
            layers.box_iou_rotated(rotated[:5], rotated[:4]),
            layers.ROIAlign((2, 2), 1.0, 0)(features, rois),
            layers.ROIAlignRotated((2, 2), 1.0, 0)(features, rrois),
            layers.paste_masks_in_image(masks, boxes[:2], (60, 64)),
        ]

    with_kernels = everything()
    assert sorted(set(kernels_on_cpu)) == sorted(KERNEL_OPS)
    kernels_on_cpu.clear()
    monkeypatch.setenv("DET_FORCE_REFERENCE_OPS", "1")
    references = everything()
    assert kernels_on_cpu == []
    for got, expected in zip(with_kernels, references):
        if got.dtype.is_floating_point:
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        else:
            assert torch.equal(got, expected)


@pytest.fixture
def tensors_look_like_cuda(monkeypatch):
    """Make the dispatch see CPU tensors as CUDA ones: the plugin's own declarations then serve
    them (imported lazily from their "module:attribute"), run by the interpreter."""
    monkeypatch.setattr(ops, "_device_type", lambda op, tensors: "cuda")
    yield
    plugins.reset()


def test_cuda_tensors_get_the_declared_kernels(tensors_look_like_cuda, monkeypatch):
    from det.core import layers

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    for op in KERNEL_OPS:
        assert ops.dispatch(op, boxes) is getattr(det.ops_cuda, op), op
    assert layers.nms(boxes, scores, 0.5).tolist() == [0, 2]

    monkeypatch.setenv("DET_FORCE_REFERENCE_OPS", "1")
    assert ops.dispatch("nms", boxes) is not det.ops_cuda.nms
    monkeypatch.delenv("DET_FORCE_REFERENCE_OPS")

    plugins.disable("ops-cuda")
    assert ops.dispatch("nms", boxes) is not det.ops_cuda.nms
    assert ops.op_providers()["nms"] == {"*": "det-core"}
    plugins.reset()
    assert ops.dispatch("nms", boxes) is det.ops_cuda.nms
