"""Cold start: ``skip_init()`` builds without random init, and DefaultPredictor only keeps such a
model when the checkpoint provided every tensor (otherwise it rebuilds the normal way)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from det.checkpoint import DetectionCheckpointer
from det.core import DefaultPredictor, build_model, get_cfg
from det.core.modeling.skip_init import skip_init
from det.core.registry import META_ARCH_REGISTRY

ZOO = {
    "mask_rcnn": "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
    "retinanet": "COCO-Detection/retinanet_R_50_FPN_3x.yaml",
    "keypoint_rcnn": "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml",
}


def _zoo_cfg(configs_dir, name, weights=""):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / ZOO[name]))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = weights
    # small but the same code paths: R18-FPN with narrow FPN/heads
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 96
    return cfg


def _state(model):
    """Every parameter and buffer, persistent or not."""
    return dict(list(model.named_parameters()) + list(model.named_buffers()))


def _assert_same(a: nn.Module, b: nn.Module):
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
        if isinstance(sa[k], nn.Parameter):
            assert sa[k].requires_grad == sb[k].requires_grad, k


def _reference(cfg, seed):
    """Today's path: normal build (seeded), then the checkpoint copied in."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model


# --- skip_init itself ----------------------------------------------------------------------


def test_skip_init_leaves_values_draws_no_random_numbers_and_restores():
    originals = {n: getattr(nn.init, n) for n in ("normal_", "kaiming_uniform_", "constant_")}
    t = torch.full((3,), 7.0)
    rng = torch.get_rng_state()
    with skip_init() as skipped:
        assert nn.init.normal_(t) is t and nn.init.constant_(t, 0.0) is t
        lin = nn.Linear(4, 5)
        assert torch.equal(torch.get_rng_state(), rng)
        with skip_init() as inner:
            nn.init.kaiming_uniform_(t)
        assert len(inner) == 1
    assert t.tolist() == [7.0, 7.0, 7.0]
    assert any(x is lin.weight for x in skipped) and any(x is lin.bias for x in skipped)
    assert all(getattr(nn.init, n) is f for n, f in originals.items())
    nn.init.constant_(t, 1.0)
    assert t.tolist() == [1.0, 1.0, 1.0]


def test_skip_init_does_not_affect_other_threads():
    entered, done = threading.Event(), threading.Event()
    seen = {}

    def other():
        entered.wait(10)
        t = torch.full((4,), 7.0)
        nn.init.constant_(t, 2.0)
        seen["t"] = t
        done.set()

    th = threading.Thread(target=other)
    th.start()
    with skip_init():
        entered.set()
        done.wait(10)
    th.join()
    assert seen["t"].tolist() == [2.0] * 4


def test_skip_init_build_keeps_computed_buffers_and_rng(configs_dir):
    cfg = _zoo_cfg(configs_dir, "mask_rcnn")
    torch.manual_seed(3)
    normal = build_model(cfg)
    torch.manual_seed(3)
    with skip_init():
        skipped = build_model(cfg)
    after_skip = torch.get_rng_state()
    torch.manual_seed(3)
    assert torch.equal(after_skip, torch.get_rng_state())  # no random number drawn
    # non-persistent buffers computed in constructors: pixel mean/std, cell anchors
    nb_normal, nb_skip = dict(normal.named_buffers()), dict(skipped.named_buffers())
    persistent = normal.state_dict().keys()
    computed = [k for k in nb_normal if k not in persistent]
    assert any("pixel_mean" in k for k in computed) and any("cell_anchors" in k for k in computed)
    for k in computed:
        assert torch.equal(nb_normal[k], nb_skip[k]), k
    # FrozenBN statistics are torch.ones/zeros in the constructor, not nn.init
    for k in nb_normal:
        if k.endswith(("running_var", "running_mean")):
            assert torch.equal(nb_normal[k], nb_skip[k]), k


# --- DefaultPredictor ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ZOO))
def test_predictor_with_full_checkpoint_equals_normal_build(name, configs_dir, tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO")
    cfg = _zoo_cfg(configs_dir, name)
    torch.manual_seed(1)
    src = build_model(cfg)
    with torch.no_grad():  # values no init would produce, also in the frozen statistics
        for v in src.state_dict().values():
            if v.dtype.is_floating_point:
                v.add_(torch.rand_like(v))
    weights = tmp_path / "full.pth"
    torch.save({"model": src.state_dict()}, weights)
    cfg.MODEL.WEIGHTS = str(weights)

    rebuilds = []
    real_build = build_model

    def counting_build(c):
        rebuilds.append(c)
        return real_build(c)

    monkeypatch.setattr("det.core.modeling.build.build_model", counting_build)
    predictor = DefaultPredictor(cfg)
    monkeypatch.undo()
    assert len(rebuilds) == 1  # the skip-init build was kept
    assert caplog.text.count("Loading checkpoint from") == 1  # its loader's messages were replayed
    _assert_same(predictor.model, _reference(cfg, seed=5))
    for k, v in src.state_dict().items():
        assert torch.equal(predictor.model.state_dict()[k], v), k
    assert not predictor.model.training
    out = predictor(np.full((48, 60, 3), 100, dtype=np.uint8))
    assert out["instances"].image_size == (48, 60)


@pytest.mark.parametrize("name", ["mask_rcnn", "keypoint_rcnn"])
def test_predictor_with_backbone_only_checkpoint_falls_back_to_normal_init(name, configs_dir, tmp_path, caplog):
    cfg = _zoo_cfg(configs_dir, name)
    torch.manual_seed(1)
    src = build_model(cfg)
    sd = {k: v for k, v in src.state_dict().items() if k.startswith("backbone.")}
    torch.save({"model": sd}, tmp_path / "backbone.pth")
    cfg.MODEL.WEIGHTS = str(tmp_path / "backbone.pth")

    torch.manual_seed(7)
    with caplog.at_level("INFO"):
        predictor = DefaultPredictor(cfg)
    assert "normal initialisation" in caplog.text
    # the loader names the missing keys, once (the skip-init attempt's messages are dropped)
    assert caplog.text.count("not found in the checkpoint") == 1
    assert caplog.text.count("Loading checkpoint from") == 1
    reference = _reference(cfg, seed=7)
    _assert_same(predictor.model, reference)
    for k, v in _state(predictor.model).items():
        assert torch.isfinite(v).all() if v.dtype.is_floating_point else True, k
    for k, v in sd.items():
        assert torch.equal(predictor.model.state_dict()[k], v), k


def test_predictor_with_wrong_shapes_falls_back(configs_dir, tmp_path):
    cfg = _zoo_cfg(configs_dir, "mask_rcnn")
    other = cfg.clone()
    other.MODEL.ROI_HEADS.NUM_CLASSES = 3
    torch.manual_seed(1)
    torch.save({"model": build_model(other).state_dict()}, tmp_path / "w.pth")
    cfg.MODEL.WEIGHTS = str(tmp_path / "w.pth")
    torch.manual_seed(2)
    predictor = DefaultPredictor(cfg)
    _assert_same(predictor.model, _reference(cfg, seed=2))


def test_predictor_without_weights_is_a_normal_build(configs_dir):
    cfg = _zoo_cfg(configs_dir, "retinanet")
    torch.manual_seed(4)
    predictor = DefaultPredictor(cfg)
    torch.manual_seed(4)
    _assert_same(predictor.model, build_model(cfg).eval())


class _InitBufferModel(nn.Module):
    """A non-persistent buffer filled by nn.init: no checkpoint can provide it."""

    def __init__(self, cfg):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(3))
        nn.init.normal_(self.weight)
        self.register_buffer("projection", nn.init.normal_(torch.empty(1000)), persistent=False)

    def forward(self, batched_inputs):
        return [{"projection": self.projection}]


def test_predictor_falls_back_when_a_constructor_inits_a_non_persistent_buffer(tmp_path):
    META_ARCH_REGISTRY.register(_InitBufferModel, name="_TestColdstartInitBuffer")
    torch.save({"model": {"weight": torch.tensor([1.0, 2.0, 3.0])}}, tmp_path / "w.pth")
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE = "_TestColdstartInitBuffer"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = str(tmp_path / "w.pth")
    torch.manual_seed(0)
    predictor = DefaultPredictor(cfg)
    torch.manual_seed(0)
    reference = _InitBufferModel(cfg)
    assert torch.equal(predictor.model.projection, reference.projection)
    assert predictor.model.weight.tolist() == [1.0, 2.0, 3.0]
