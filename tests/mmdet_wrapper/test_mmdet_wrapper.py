"""det-mmdet-wrapper: detectron2's MMDetBackbone/MMDetDetector around mmdet-style modules.

mmdetection is not installed in det's development environment (it is the `[mmdet]` extra), so
these tests drive the wrappers with small modules that speak mmdet 2.x's interface
(``init_weights``, ``forward_train``, ``simple_test``, per-class numpy results), stand-in
``mmdet.core`` mask classes, and check the error a user gets without mmdetection (or with a 3.x).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from det.core import EventStorage
from det.core.layers import ShapeSpec
from det.mmdet_wrapper import MMDetBackbone, MMDetDetector
from det.structures import BitMasks, Boxes, Instances, PolygonMasks


@pytest.fixture
def no_mmdet(monkeypatch):
    """mmdet and mmcv cannot be imported, whatever is installed."""
    for name in ("mmdet", "mmdet.models", "mmdet.core", "mmcv", "mmcv.utils"):
        monkeypatch.setitem(sys.modules, name, None)


def test_config_dicts_without_mmdet_say_what_to_install(no_mmdet):
    with pytest.raises(ImportError) as info:
        MMDetDetector(detector=dict(type="MaskRCNN"), pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)
    message = str(info.value)
    assert message.startswith("MMDetDetector builds mmdetection models from config dicts, which needs "
                              "mmdetection 2.x and mmcv-full 1.x")
    assert "pip install 'det-mmdet-wrapper[mmdet]'" in message and "already built nn.Module" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback
    with pytest.raises(ImportError, match=r"^MMDetBackbone builds mmdetection models"):
        MMDetBackbone(dict(type="ResNet"), output_shapes=[ShapeSpec(channels=8, stride=4)])


def test_an_mmdetection_3_is_named(monkeypatch):
    """mmdetection 3.x has no mmdet.models.build_detector (its registry API replaced it)."""
    mmdet = types.ModuleType("mmdet")
    mmdet.__version__ = "3.3.0"
    models = types.ModuleType("mmdet.models")
    mmcv_utils = types.ModuleType("mmcv.utils")
    mmcv_utils.ConfigDict = dict
    monkeypatch.setitem(sys.modules, "mmdet", mmdet)
    monkeypatch.setitem(sys.modules, "mmdet.models", models)
    monkeypatch.setitem(sys.modules, "mmcv", types.ModuleType("mmcv"))
    monkeypatch.setitem(sys.modules, "mmcv.utils", mmcv_utils)
    with pytest.raises(ImportError, match=r"uses mmdet\.models\.build_detector, part of the mmdetection 2\.x / "
                                          r"mmcv 1\.x API .* the installed mmdet 3\.3\.0 does not have it"):
        MMDetDetector(detector=dict(type="MaskRCNN"), pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)


def test_config_dicts_reach_mmdets_builders(monkeypatch):
    """An omegaconf DictConfig is resolved into plain containers, wrapped in mmcv's ConfigDict."""
    from omegaconf import OmegaConf

    seen = {}
    models = types.ModuleType("mmdet.models")
    models.build_detector = lambda cfg: seen.setdefault("cfg", cfg) and ToyMMDetDetector()
    mmcv_utils = types.ModuleType("mmcv.utils")

    class ConfigDict(dict):
        pass

    mmcv_utils.ConfigDict = ConfigDict
    monkeypatch.setitem(sys.modules, "mmdet", types.ModuleType("mmdet"))
    monkeypatch.setitem(sys.modules, "mmdet.models", models)
    monkeypatch.setitem(sys.modules, "mmcv", types.ModuleType("mmcv"))
    monkeypatch.setitem(sys.modules, "mmcv.utils", mmcv_utils)
    cfg = OmegaConf.create({"width": 8, "detector": {"type": "Toy", "channels": "${..width}", "sizes": [1, 2]}})
    model = MMDetDetector(detector=cfg.detector, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)
    assert isinstance(seen["cfg"], ConfigDict) and seen["cfg"] == {"type": "Toy", "channels": 8, "sizes": [1, 2]}
    assert type(seen["cfg"]["sizes"]) is list and model.detector.initialised


class ToyMMDetDetector(nn.Module):
    """mmdet 2.x's detector interface: records what it is given, returns fixed outputs."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.initialised = False
        self.calls = []

    def init_weights(self):
        self.initialised = True

    def forward_train(self, img, img_metas, gt_bboxes, gt_labels, gt_masks=None):
        self.calls.append(("train", img, img_metas, gt_bboxes, gt_labels, gt_masks))
        return {"loss_cls": self.scale * torch.tensor([1.0, 3.0]), "loss_bbox": [self.scale * torch.ones(2), self.scale],
                "acc": torch.tensor(87.5)}

    def simple_test(self, img, img_metas, rescale=False):
        self.calls.append(("test", img, img_metas, rescale))
        boxes = [np.array([[1, 2, 5, 6, 0.9]], dtype=np.float32), np.zeros((0, 5), np.float32),
                 np.array([[0, 0, 3, 3, 0.8], [2, 2, 4, 4, 0.3]], dtype=np.float32)]
        masks = [[np.ones((6, 8), bool)], [], [np.zeros((6, 8), bool), np.eye(6, 8, dtype=bool)]]
        return [(boxes, masks) for _ in img_metas]


def _inputs(with_size: bool, masks: str | None = None):
    inst = Instances((6, 8))
    inst.gt_boxes = Boxes(torch.tensor([[1.0, 1.0, 4.0, 5.0]]))
    inst.gt_classes = torch.tensor([2])
    if masks == "bitmask":
        inst.gt_masks = BitMasks(torch.zeros(1, 6, 8, dtype=torch.bool))
    elif masks == "polygon":
        inst.gt_masks = PolygonMasks([[[1.0, 1.0, 4.0, 1.0, 4.0, 5.0]]])
    x = {"image": torch.full((3, 6, 8), 10.0), "instances": inst}
    if with_size:
        x.update(height=12, width=16)
    return [x]


def test_training_normalises_pads_and_parses_losses():
    toy = ToyMMDetDetector()
    model = MMDetDetector(toy, size_divisibility=32, pixel_mean=[4.0] * 3, pixel_std=[2.0] * 3)
    assert toy.initialised
    with EventStorage(0) as storage:
        losses = model(_inputs(with_size=True))
        assert storage.latest()["acc"][0] == pytest.approx(87.5)  # a metric: stored, not returned
    assert list(losses) == ["loss_cls", "loss_bbox"]
    assert losses["loss_cls"].item() == pytest.approx(4.0)  # mean of 2 * [1, 3]
    assert losses["loss_bbox"].item() == pytest.approx(4.0)  # mean(2 * ones) + mean(2)
    _, img, metas, gt_bboxes, gt_labels, gt_masks = toy.calls[-1]
    assert img.shape == (1, 3, 32, 32) and img[0, 0, 0, 0].item() == 3.0 and img[0, 0, 31, 31].item() == 0.0
    assert metas[0]["img_shape"] == (6, 8, 3) and metas[0]["ori_shape"] == (12, 16, 3)
    assert metas[0]["pad_shape"] == (32, 32, 3) and metas[0]["flip"] is False
    assert metas[0]["scale_factor"].tolist() == [0.5, 0.5, 0.5, 0.5]
    assert gt_bboxes[0].tolist() == [[1.0, 1.0, 4.0, 5.0]] and gt_labels[0].tolist() == [2] and gt_masks is None


@pytest.mark.parametrize("kind", ["bitmask", "polygon"])
def test_mask_targets_become_mmdets_masks(monkeypatch, kind):
    core = types.ModuleType("mmdet.core")

    class MaskStandIn:
        def __init__(self, masks, height, width):
            self.masks, self.height, self.width = masks, height, width

    core.BitmapMasks = type("BitmapMasks", (MaskStandIn,), {})
    core.PolygonMasks = type("PolygonMasks", (MaskStandIn,), {})
    monkeypatch.setitem(sys.modules, "mmdet", types.ModuleType("mmdet"))
    monkeypatch.setitem(sys.modules, "mmdet.core", core)
    toy = ToyMMDetDetector()
    model = MMDetDetector(toy, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)
    with EventStorage(0):
        model(_inputs(with_size=False, masks=kind))
    (converted,) = toy.calls[-1][-1]
    assert type(converted).__name__ == {"bitmask": "BitmapMasks", "polygon": "PolygonMasks"}[kind]
    assert (converted.height, converted.width) == (6, 8)
    if kind == "bitmask":
        assert isinstance(converted.masks, np.ndarray) and converted.masks.shape == (1, 6, 8)
    else:
        assert [p.tolist() for p in converted.masks[0]] == [[1.0, 1.0, 4.0, 1.0, 4.0, 5.0]]


def test_inference_converts_per_class_results():
    toy = ToyMMDetDetector()
    model = MMDetDetector(toy, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3).eval()
    out = model(_inputs(with_size=True))
    inst = out[0]["instances"]
    assert inst.image_size == (12, 16) and toy.calls[-1][-1] is True  # rescale to height/width
    assert inst.pred_boxes.tensor.tolist() == [[1, 2, 5, 6], [0, 0, 3, 3], [2, 2, 4, 4]]
    assert inst.scores.tolist() == pytest.approx([0.9, 0.8, 0.3])
    assert inst.pred_classes.tolist() == [0, 2, 2]
    assert inst.pred_masks.shape == (3, 6, 8) and inst.pred_masks[2].sum() == 6
    no_size = model(_inputs(with_size=False))[0]["instances"]
    assert no_size.image_size == (6, 8) and toy.calls[-1][-1] is False
    with pytest.raises(ValueError, match="Some inputs have original height/width, but some don't"):
        model(_inputs(with_size=True) + _inputs(with_size=False))


def test_training_needs_an_event_storage_and_instances():
    model = MMDetDetector(ToyMMDetDetector(), pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)
    with pytest.raises(RuntimeError, match="MMDetDetector in training mode records statistics in an EventStorage"):
        model(_inputs(with_size=False))
    with EventStorage(0), pytest.raises(ValueError, match="instances"):
        model([{"image": torch.zeros(3, 6, 8)}])


class ToyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 4, 2, stride=2), nn.Conv2d(4, 8, 2, stride=2)])
        self.mode_calls = []

    def init_weights(self):
        self.mode_calls.append("init")

    def train(self, mode=True):
        self.mode_calls.append(f"train({mode})")
        return super().train(mode)

    def forward(self, x):
        outs = []
        for conv in self.convs:
            x = conv(x)
            outs.append(x)
        return tuple(outs)


class ToyNeck(nn.Module):
    def __init__(self):
        super().__init__()
        self.initialised = False

    def init_weights(self):
        self.initialised = True

    def forward(self, inputs):
        return [x.mean(dim=1, keepdim=True) for x in inputs]


def test_backbone_names_outputs_and_initialises_its_parts():
    backbone = MMDetBackbone(ToyBackbone(), output_shapes=[ShapeSpec(channels=4, stride=2), ShapeSpec(channels=8, stride=4)])
    assert backbone.backbone.mode_calls[:2] == ["init", "train(True)"]
    out = backbone(torch.rand(1, 3, 16, 16))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"out0": (1, 4, 8, 8), "out1": (1, 8, 4, 4)}
    assert backbone.output_shape()["out1"].stride == 4

    necks = nn.Sequential(ToyNeck())
    with_neck = MMDetBackbone(ToyBackbone(), necks, output_shapes=[ShapeSpec(channels=1, stride=s) for s in (2, 4)],
                              output_names=["p1", "p2"])
    assert necks[0].initialised
    out = with_neck(torch.rand(1, 3, 16, 16))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"p1": (1, 1, 8, 8), "p2": (1, 1, 4, 4)}
    wrong = MMDetBackbone(ToyBackbone(), output_shapes=[ShapeSpec(channels=4, stride=2)])
    with pytest.raises(ValueError, match=r"does not match outputs from the mmdet backbone: 2 != 1"):
        wrong(torch.rand(1, 3, 16, 16))
