"""StandardRPNHead: shapes, parameter names (checkpoint compatibility), conv_dims, bad input."""

from __future__ import annotations

import pytest
import torch

from det.core import get_cfg
from det.core.layers import ShapeSpec
from det.heads.rpn import StandardRPNHead


def test_one_conv_keeps_detectron2_names_and_shapes():
    head = StandardRPNHead(in_channels=8, num_anchors=3)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == {
        "conv.weight": (8, 8, 3, 3),
        "conv.bias": (8,),
        "objectness_logits.weight": (3, 8, 1, 1),
        "objectness_logits.bias": (3,),
        "anchor_deltas.weight": (12, 8, 1, 1),
        "anchor_deltas.bias": (12,),
    }
    logits, deltas = head([torch.rand(2, 8, 5, 7), torch.rand(2, 8, 3, 4)])
    assert [tuple(x.shape) for x in logits] == [(2, 3, 5, 7), (2, 3, 3, 4)]
    assert [tuple(x.shape) for x in deltas] == [(2, 12, 5, 7), (2, 12, 3, 4)]


def test_init_is_normal_001_with_zero_bias():
    torch.manual_seed(0)
    head = StandardRPNHead(in_channels=64, num_anchors=3)
    for name, p in head.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(p) == 0
    assert 0.008 < head.conv.weight.std().item() < 0.012


def test_several_convs_are_named_conv0_conv1_and_widths_follow_conv_dims():
    head = StandardRPNHead(in_channels=8, num_anchors=2, box_dim=5, conv_dims=(16, -1))
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes["conv.conv0.weight"] == (16, 8, 3, 3)
    assert shapes["conv.conv1.weight"] == (16, 16, 3, 3)
    assert shapes["objectness_logits.weight"] == (2, 16, 1, 1)
    assert shapes["anchor_deltas.weight"] == (10, 16, 1, 1)
    _logits, deltas = head([torch.rand(1, 8, 4, 4)])
    assert tuple(deltas[0].shape) == (1, 10, 4, 4)


def test_hidden_conv_has_relu():
    head = StandardRPNHead(in_channels=4, num_anchors=1)
    with torch.no_grad():
        head.conv.weight.zero_()
        head.conv.bias.fill_(-1.0)  # negative pre-activation: relu gives zeros
        head.objectness_logits.bias.fill_(0.25)
    logits, _ = head([torch.rand(1, 4, 3, 3)])
    assert torch.equal(logits[0], torch.full((1, 1, 3, 3), 0.25))


def test_from_config_reads_conv_dims_and_anchor_count():
    cfg = get_cfg()
    cfg.MODEL.RPN.CONV_DIMS = [12]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32, 64]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    head = StandardRPNHead(cfg, [ShapeSpec(channels=8, stride=16)])
    assert head.conv.weight.shape == (12, 8, 3, 3)
    assert head.objectness_logits.out_channels == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(in_channels=0, num_anchors=3), "in_channels"),
        (dict(in_channels=8, num_anchors=0), "num_anchors"),
        (dict(in_channels=8, num_anchors=3, conv_dims=()), "conv_dims"),
        (dict(in_channels=8, num_anchors=3, conv_dims=(0,)), "conv_dims"),
        (dict(in_channels=8, num_anchors=3, conv_dims=(8, -2)), "conv_dims"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StandardRPNHead(**kwargs)


def test_levels_with_different_channels_are_refused():
    cfg = get_cfg()
    with pytest.raises(ValueError, match="same number of channels"):
        StandardRPNHead(cfg, [ShapeSpec(channels=8, stride=4), ShapeSpec(channels=16, stride=8)])


def test_features_must_be_a_list():
    head = StandardRPNHead(in_channels=4, num_anchors=1)
    with pytest.raises(TypeError, match="list of feature maps"):
        head(torch.rand(1, 4, 3, 3))
