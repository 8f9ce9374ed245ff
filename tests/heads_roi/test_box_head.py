"""FastRCNNConvFCHead: layer names (checkpoints), output_shape, init, config, errors."""

from __future__ import annotations

import pytest
import torch

from det.core import get_cfg
from det.core.layers import ShapeSpec
from det.heads.roi import FastRCNNConvFCHead, build_box_head

SHAPE = ShapeSpec(channels=4, height=7, width=7)


def test_fc_only_head_is_detectron2s_2fc():
    head = FastRCNNConvFCHead(SHAPE, conv_dims=[], fc_dims=[32, 16])
    assert [n for n, _ in head.named_children()] == ["flatten", "fc1", "fc_relu1", "fc2", "fc_relu2"]
    assert head.fc1.weight.shape == (32, 4 * 7 * 7)
    assert head.output_shape == ShapeSpec(channels=16)
    out = head(torch.rand(3, 4, 7, 7))
    assert out.shape == (3, 16) and (out >= 0).all()
    # c2_xavier_fill: zero bias
    assert torch.count_nonzero(head.fc1.bias) == 0


def test_conv_then_fc_and_conv_only():
    head = FastRCNNConvFCHead(SHAPE, conv_dims=[32, 32], fc_dims=[10], conv_norm="GN")
    names = set(head.state_dict())
    assert {"conv1.weight", "conv1.norm.weight", "conv2.weight", "fc1.weight", "fc1.bias"} <= names
    assert "conv1.bias" not in names  # a norm follows: no conv bias
    assert head.fc1.weight.shape == (10, 32 * 7 * 7)
    conv_only = FastRCNNConvFCHead(SHAPE, conv_dims=[6], fc_dims=[])
    assert conv_only.output_shape == ShapeSpec(channels=6, height=7, width=7)
    assert conv_only(torch.rand(2, 4, 7, 7)).shape == (2, 6, 7, 7)


def test_from_config_and_builder():
    cfg = get_cfg()
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_CONV = 4
    cfg.MODEL.ROI_BOX_HEAD.CONV_DIM = 8
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 12
    head = build_box_head(cfg, SHAPE)
    assert isinstance(head, FastRCNNConvFCHead)
    assert [n for n, _ in head.named_children()][:4] == ["conv1", "conv2", "conv3", "conv4"]
    assert head.output_shape.channels == 12
    cfg.MODEL.ROI_BOX_HEAD.NAME = ""
    with pytest.raises(ValueError, match=r"ROI_BOX_HEAD\.NAME"):
        build_box_head(cfg, SHAPE)


def test_errors():
    with pytest.raises(ValueError, match="at least one"):
        FastRCNNConvFCHead(SHAPE, conv_dims=[], fc_dims=[])
    with pytest.raises(ValueError, match="height and width"):
        FastRCNNConvFCHead(ShapeSpec(channels=4), conv_dims=[4], fc_dims=[])
