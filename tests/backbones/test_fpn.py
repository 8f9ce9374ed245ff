"""FPN and its top blocks: level names, strides, fusion and errors, as detectron2's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from det.backbones import (
    FPN,
    LastLevelMaxPool,
    LastLevelP6P7,
    build_resnet_fpn_backbone,
    build_retinanet_resnet_fpn_backbone,
)
from det.core import get_cfg
from det.core.layers import ShapeSpec
from det.core.modeling.backbone import Backbone


class ToyBackbone(Backbone):
    """res2..res5 = average pools of the input at strides 4..32, with 1..4 channels repeated."""

    def __init__(self, channels=(1, 2, 3, 4), strides=(4, 8, 16, 32)):
        super().__init__()
        self._out_features = [f"res{i + 2}" for i in range(len(channels))]
        self._out_feature_channels = dict(zip(self._out_features, channels))
        self._out_feature_strides = dict(zip(self._out_features, strides))

    def forward(self, x):
        return {
            name: F.avg_pool2d(x[:, :1], self._out_feature_strides[name]).repeat(1, self._out_feature_channels[name], 1, 1)
            for name in self._out_features
        }


def test_levels_strides_and_names():
    fpn = FPN(ToyBackbone(), ["res2", "res3", "res4", "res5"], out_channels=8, top_block=LastLevelMaxPool())
    assert fpn.output_shape() == {f"p{i}": ShapeSpec(channels=8, stride=2**i) for i in range(2, 7)}
    assert fpn.size_divisibility == 32
    assert fpn.padding_constraints == {"square_size": 0}
    assert [n for n, _ in fpn.named_children()] == [
        "fpn_lateral2", "fpn_output2", "fpn_lateral3", "fpn_output3", "fpn_lateral4", "fpn_output4",
        "fpn_lateral5", "fpn_output5", "top_block", "bottom_up"]
    assert fpn.fpn_lateral3.weight.shape == (8, 2, 1, 1) and fpn.fpn_output3.weight.shape == (8, 8, 3, 3)
    out = fpn(torch.rand(2, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p2": (2, 8, 16, 24), "p3": (2, 8, 8, 12), "p4": (2, 8, 4, 6), "p5": (2, 8, 2, 3), "p6": (2, 8, 1, 2)}
    assert torch.equal(out["p6"], out["p5"][..., ::2, ::2])


def test_square_pad_is_a_padding_constraint():
    fpn = FPN(ToyBackbone(), ["res3", "res4"], out_channels=4, square_pad=1024)
    assert fpn.padding_constraints == {"square_size": 1024}
    assert fpn.size_divisibility == 16
    assert list(fpn.output_shape()) == ["p3", "p4"]


def _fpn_with_unit_convs(fuse_type):
    """lateral = identity-like 1x1 (sum of input channels), output = identity 3x3, so fusion is visible."""
    fpn = FPN(ToyBackbone(channels=(1, 1)), ["res2", "res3"], out_channels=1, fuse_type=fuse_type)
    with torch.no_grad():
        for conv in (fpn.fpn_lateral2, fpn.fpn_lateral3):
            conv.weight.fill_(1.0), conv.bias.zero_()
        for conv in (fpn.fpn_output2, fpn.fpn_output3):
            conv.weight.zero_(), conv.bias.zero_()
            conv.weight[0, 0, 1, 1] = 1.0
    return fpn


@pytest.mark.parametrize("fuse_type, scale", [("sum", 1.0), ("avg", 0.5)])
def test_fuse_type(fuse_type, scale):
    fpn = _fpn_with_unit_convs(fuse_type)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        out = fpn(x)
    c2, c3 = F.avg_pool2d(x, 4), F.avg_pool2d(x, 8)
    assert torch.allclose(out["p3"], c3)
    expected_p2 = (c2 + F.interpolate(c3, scale_factor=2.0, mode="nearest")) * scale
    assert torch.allclose(out["p2"], expected_p2, atol=1e-6)


def test_p6p7_from_res5_or_p5():
    from_res5 = FPN(ToyBackbone(), ["res3", "res4", "res5"], 8, top_block=LastLevelP6P7(4, 8))
    from_p5 = FPN(ToyBackbone(), ["res3", "res4", "res5"], 8, top_block=LastLevelP6P7(8, 8, in_feature="p5"))
    for fpn in (from_res5, from_p5):
        assert fpn.output_shape() == {f"p{i}": ShapeSpec(channels=8, stride=2**i) for i in range(3, 8)}
        out = fpn(torch.rand(1, 3, 128, 128))
        assert out["p6"].shape == (1, 8, 2, 2) and out["p7"].shape == (1, 8, 1, 1)
    assert from_res5.top_block.p6.weight.shape == (8, 4, 3, 3)
    assert from_p5.top_block.p6.weight.shape == (8, 8, 3, 3)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        out = from_p5(x)
        top = from_p5.top_block
        assert torch.allclose(out["p6"], top.p6(out["p5"]))
        assert torch.allclose(out["p7"], top.p7(F.relu(out["p6"])))


def test_norm_drops_conv_bias():
    fpn = FPN(ToyBackbone(), ["res2", "res3"], out_channels=32, norm="GN")
    assert fpn.fpn_lateral2.bias is None and isinstance(fpn.fpn_lateral2.norm, nn.GroupNorm)
    assert fpn.fpn_output2.bias is None and isinstance(fpn.fpn_output2.norm, nn.GroupNorm)
    plain = FPN(ToyBackbone(), ["res2", "res3"], out_channels=8)
    assert plain.fpn_lateral2.bias is not None and plain.fpn_lateral2.norm is None


def test_errors():
    with pytest.raises(ValueError, match=r"log2-contiguous strides \(each twice the previous\), got \[4, 16\]"):
        FPN(ToyBackbone(), ["res2", "res4"], 8)
    with pytest.raises(ValueError, match=r"fuse_type must be 'sum' or 'avg', got 'max'"):
        FPN(ToyBackbone(), ["res2"], 8, fuse_type="max")
    with pytest.raises(ValueError, match=r"in_features \['res6'\] are not outputs of the bottom-up network"):
        FPN(ToyBackbone(), ["res5", "res6"], 8)
    with pytest.raises(TypeError, match=r"bottom_up must be a det Backbone, got Conv2d"):
        FPN(nn.Conv2d(3, 3, 1), ["res2"], 8)
    with pytest.raises(ValueError, match=r"top_block reads 'p5', which is neither"):
        FPN(ToyBackbone(), ["res2", "res3"], 8, top_block=LastLevelMaxPool())
    fpn = FPN(ToyBackbone(), ["res2", "res3", "res4", "res5"], 8)
    with pytest.raises(ValueError, match=r"must be multiples of 32 .* got 48x64"):
        fpn(torch.rand(1, 3, 48, 64))


def _small_fpn_cfg():
    cfg = get_cfg()
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 16
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4
    cfg.MODEL.FPN.OUT_CHANNELS = 8
    return cfg


def test_build_resnet_fpn_backbone():
    cfg = _small_fpn_cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    fpn = build_resnet_fpn_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(fpn.top_block, LastLevelMaxPool)
    assert fpn.output_shape() == {f"p{i}": ShapeSpec(channels=8, stride=2**i) for i in range(2, 7)}
    out = fpn(torch.rand(1, 3, 64, 64))
    assert [tuple(v.shape) for v in out.values()] == [(1, 8, 16, 16), (1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2), (1, 8, 1, 1)]


def test_build_retinanet_resnet_fpn_backbone():
    cfg = _small_fpn_cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    fpn = build_retinanet_resnet_fpn_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(fpn.top_block, LastLevelP6P7) and fpn.top_block.in_feature == "res5"
    assert fpn.top_block.p6.weight.shape == (8, 128, 3, 3)
    assert list(fpn.output_shape()) == ["p3", "p4", "p5", "p6", "p7"]
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4"]
    with pytest.raises(ValueError, match=r"needs res5 in MODEL.RESNETS.OUT_FEATURES"):
        build_retinanet_resnet_fpn_backbone(cfg, ShapeSpec(channels=3))


def test_inference_releases_each_bottom_up_map_once_its_lateral_is_computed():
    import weakref

    fpn = FPN(ToyBackbone(), ["res2", "res3", "res4", "res5"], out_channels=8, top_block=LastLevelP6P7(4, 8))
    bottom_up = {}
    fpn.bottom_up.register_forward_hook(
        lambda module, args, out: bottom_up.update({k: weakref.ref(v) for k, v in out.items()})
    )
    alive_at_finest_output = {}
    fpn.fpn_output2.register_forward_pre_hook(
        lambda module, args: alive_at_finest_output.update({k: r() is not None for k, r in bottom_up.items()})
    )
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = fpn(x)
    # res5 feeds the P6/P7 top block, which runs after the finest output conv: it must stay
    assert alive_at_finest_output == {"res2": False, "res3": False, "res4": False, "res5": True}

    trained = fpn(x)  # with autograd the same code runs, gradients flow, values are the same
    assert all(torch.equal(trained[k].detach(), out[k]) for k in out)
    sum(v.sum() for v in trained.values()).backward()
    assert fpn.fpn_lateral2.weight.grad is not None
