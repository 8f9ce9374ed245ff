"""The template's own tests: run them after installing the wheel (`pytest tests`)."""

import pytest
import torch
from det_toy_backbone.toy import ToyBackbone

from det.core import build_backbone, get_cfg
from det.core.layers import ShapeSpec


def test_plain_arguments():
    backbone = ToyBackbone(in_channels=3, channels=8, out_features=["toy3", "toy4"])
    assert backbone.output_shape() == {"toy3": ShapeSpec(channels=8, stride=8), "toy4": ShapeSpec(channels=8, stride=16)}
    out = backbone(torch.rand(2, 3, 64, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"toy3": (2, 8, 8, 4), "toy4": (2, 8, 4, 2)}
    assert len(backbone.levels) == 3  # toy2..toy4: nothing built past the last output


def test_config_keys_come_from_the_plugin():
    cfg = get_cfg()
    assert cfg.MODEL.TOY_BACKBONE.CHANNELS == 16
    assert cfg.MODEL.TOY_BACKBONE.OUT_FEATURES == ["toy2", "toy3", "toy4", "toy5"]


def test_built_by_name():
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "ToyBackbone"
    cfg.MODEL.TOY_BACKBONE.CHANNELS = 4
    backbone = build_backbone(cfg)
    assert type(backbone).__module__ == "det_toy_backbone.toy"
    assert list(backbone(torch.rand(1, 3, 64, 64))) == ["toy2", "toy3", "toy4", "toy5"]


def test_bad_out_features():
    with pytest.raises(ValueError, match=r"names toy2, toy3, ..., got \['res5'\]"):
        ToyBackbone(out_features=["res5"])
