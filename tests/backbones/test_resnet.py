"""ResNet/ResNeXt blocks, stages and the config builder behave as detectron2's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from det.backbones import (
    BasicBlock,
    BasicStem,
    BottleneckBlock,
    ResNet,
    build_resnet_backbone,
    make_stage,
)
from det.core import get_cfg
from det.core.layers import FrozenBatchNorm2d, ShapeSpec


def small_cfg(depth=50, **resnets):
    """A config with tiny widths, so every depth builds and runs in well under a second."""
    cfg = get_cfg()
    r = cfg.MODEL.RESNETS
    r.DEPTH = depth
    r.STEM_OUT_CHANNELS = 8
    r.RES2_OUT_CHANNELS = 64 if depth in (18, 34) else 16
    r.WIDTH_PER_GROUP = 4
    r.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    r.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    for k, v in resnets.items():
        setattr(r, k, v)
    return cfg


def test_basic_stem_is_stride_4():
    stem = BasicStem(in_channels=3, out_channels=16, norm="FrozenBN")
    assert (stem.in_channels, stem.out_channels, stem.stride) == (3, 16, 4)
    assert isinstance(stem.conv1.norm, FrozenBatchNorm2d)
    assert stem.conv1.bias is None and stem.conv1.kernel_size == (7, 7)
    assert stem(torch.rand(2, 3, 64, 48)).shape == (2, 16, 16, 12)


def test_basic_block_projects_only_when_width_changes():
    same = BasicBlock(8, 8)
    assert same.shortcut is None
    down = BasicBlock(8, 16, stride=2, norm="BN")
    assert down.shortcut.stride == (2, 2) and down.conv1.stride == (2, 2) and down.conv2.stride == (1, 1)
    assert down(torch.rand(1, 8, 16, 16)).shape == (1, 16, 8, 8)
    assert sorted(n for n, _ in down.named_children()) == ["conv1", "conv2", "shortcut"]


@pytest.mark.parametrize("stride_in_1x1, conv1_stride, conv2_stride", [(True, 2, 1), (False, 1, 2)])
def test_bottleneck_stride_placement(stride_in_1x1, conv1_stride, conv2_stride):
    block = BottleneckBlock(16, 32, bottleneck_channels=8, stride=2, stride_in_1x1=stride_in_1x1)
    assert block.conv1.stride == (conv1_stride,) * 2
    assert block.conv2.stride == (conv2_stride,) * 2
    assert block.conv3.stride == (1, 1)
    assert block(torch.rand(1, 16, 16, 16)).shape == (1, 32, 8, 8)


def test_bottleneck_groups_and_dilation_only_touch_the_3x3():
    block = BottleneckBlock(16, 16, bottleneck_channels=8, num_groups=4, dilation=2)
    assert block.conv2.groups == 4 and block.conv2.dilation == (2, 2) and block.conv2.padding == (2, 2)
    assert block.conv1.groups == block.conv3.groups == 1
    assert block.conv2.weight.shape == (8, 2, 3, 3)
    assert block.shortcut is None
    assert block(torch.rand(1, 16, 9, 9)).shape == (1, 16, 9, 9)


def test_bottleneck_rejects_groups_that_do_not_divide():
    with pytest.raises(ValueError, match=r"num_groups must be >= 1 and divide bottleneck_channels=8, got 3"):
        BottleneckBlock(16, 16, bottleneck_channels=8, num_groups=3)


def test_make_stage_per_block_arguments():
    blocks = ResNet.make_stage(
        BottleneckBlock, 3, in_channels=16, out_channels=64, bottleneck_channels=16,
        stride_per_block=[2, 1, 1], dilation_per_block=[1, 1, 2],
    )
    assert [b.stride for b in blocks] == [2, 1, 1]
    assert [b.in_channels for b in blocks] == [16, 64, 64]
    assert [b.conv2.dilation for b in blocks] == [(1, 1), (1, 1), (2, 2)]
    assert blocks[0].shortcut is not None and blocks[1].shortcut is None
    assert len(make_stage(BasicBlock, 2, in_channels=4, out_channels=4)) == 2


def test_make_stage_errors():
    with pytest.raises(ValueError, match=r"'stride_per_block' of make_stage should have the same length as num_blocks=3, got 2"):
        ResNet.make_stage(BasicBlock, 3, in_channels=4, out_channels=4, stride_per_block=[2, 1])
    with pytest.raises(ValueError, match=r"both stride_per_block and stride"):
        ResNet.make_stage(BasicBlock, 2, in_channels=4, out_channels=4, stride_per_block=[2, 1], stride=1)


@pytest.mark.parametrize(
    "depth, blocks, out_channels",
    [(18, [2, 2, 2, 2], [64, 128, 256, 512]), (34, [3, 4, 6, 3], [64, 128, 256, 512]),
     (50, [3, 4, 6, 3], [256, 512, 1024, 2048]), (101, [3, 4, 23, 3], [256, 512, 1024, 2048]),
     (152, [3, 8, 36, 3], [256, 512, 1024, 2048])],
)
def test_make_default_stages(depth, blocks, out_channels):
    stages = ResNet.make_default_stages(depth)
    assert [len(s) for s in stages] == blocks
    assert [s[-1].out_channels for s in stages] == out_channels
    assert [s[0].stride for s in stages] == [1, 2, 2, 2]
    expected = BasicBlock if depth < 50 else BottleneckBlock
    assert all(type(b) is expected for s in stages for b in s)
    if depth >= 50:
        assert [s[0].conv2.out_channels for s in stages] == [64, 128, 256, 512]


def test_make_default_stages_rejects_unknown_depth():
    with pytest.raises(ValueError, match=r"depth must be one of \[18, 34, 50, 101, 152\], got 42"):
        ResNet.make_default_stages(42)


def test_resnet_drops_stages_after_the_last_output():
    net = ResNet(BasicStem(3, 8), [
        ResNet.make_stage(BasicBlock, 1, in_channels=8, out_channels=8),
        ResNet.make_stage(BasicBlock, 1, in_channels=8, out_channels=16, stride=2),
        ResNet.make_stage(BasicBlock, 1, in_channels=16, out_channels=32, stride=2),
    ], out_features=["stem", "res3"])
    assert net.stage_names == ("res2", "res3")
    assert not hasattr(net, "res4")
    assert net.output_shape() == {"stem": ShapeSpec(channels=8, stride=4), "res3": ShapeSpec(channels=16, stride=8)}
    out = net(torch.rand(1, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"stem": (1, 8, 8, 8), "res3": (1, 16, 4, 4)}


def test_resnet_classifier():
    net = ResNet(BasicStem(3, 8), [ResNet.make_stage(BasicBlock, 1, in_channels=8, out_channels=8)], num_classes=5)
    assert net._out_features == ["linear"]
    assert net(torch.rand(2, 3, 32, 32))["linear"].shape == (2, 5)
    assert net.output_shape() == {}


def test_resnet_bad_inputs():
    net = ResNet(BasicStem(3, 8), [ResNet.make_stage(BasicBlock, 1, in_channels=8, out_channels=8)])
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\), got \(3, 32, 32\)"):
        net(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"expects 3 input channels, got input of shape \(1, 1, 32, 32\)"):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"ResNet: out_features names 'res5'; its outputs are: stem, res2"):
        ResNet(BasicStem(3, 8), [ResNet.make_stage(BasicBlock, 1, in_channels=8, out_channels=8)],
               out_features=["res5"])
    with pytest.raises(TypeError, match=r"CNNBlockBase"):
        ResNet(BasicStem(3, 8), [[nn.Identity()]])


@pytest.mark.parametrize("freeze_at, frozen", [(0, []), (1, ["stem"]), (2, ["stem", "res2"]), (5, ["stem", "res2", "res3", "res4", "res5"])])
def test_freeze_at(freeze_at, frozen):
    cfg = small_cfg(50)
    cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    net = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    for name in ["stem", "res2", "res3", "res4", "res5"]:
        module = getattr(net, name)
        grads = {p.requires_grad for p in module.parameters()}
        norm_types = {type(m) for m in module.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))}
        if name in frozen:
            assert grads <= {False} and norm_types == {FrozenBatchNorm2d}
        else:
            assert grads == {True} and norm_types == {nn.BatchNorm2d}


@pytest.mark.parametrize("depth, blocks", [(18, [2, 2, 2, 2]), (34, [3, 4, 6, 3]), (50, [3, 4, 6, 3]),
                                           (101, [3, 4, 23, 3]), (152, [3, 8, 36, 3])])
def test_every_depth_builds_and_trains(depth, blocks):
    torch.manual_seed(0)
    net = build_resnet_backbone(small_cfg(depth), ShapeSpec(channels=3))
    assert [len(getattr(net, f"res{i}")) for i in range(2, 6)] == blocks
    block_type = BasicBlock if depth < 50 else BottleneckBlock
    assert all(type(b) is block_type for s in net.stages for b in s)
    base = 64 if depth < 50 else 16
    assert net.output_shape() == {
        f"res{i}": ShapeSpec(channels=base * 2 ** (i - 2), stride=2**i) for i in range(2, 6)
    }
    out = net(torch.rand(2, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        f"res{i}": (2, base * 2 ** (i - 2), 32 // 2**i, 32 // 2**i) for i in range(2, 6)
    }
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_resnext_groups_and_width():
    net = build_resnet_backbone(small_cfg(50, NUM_GROUPS=2, WIDTH_PER_GROUP=4), ShapeSpec(channels=3))
    assert [net.stages[i][0].conv2.groups for i in range(4)] == [2, 2, 2, 2]
    assert [net.stages[i][0].conv2.out_channels for i in range(4)] == [8, 16, 32, 64]
    assert net(torch.rand(2, 3, 32, 32))["res5"].shape == (2, 128, 1, 1)


def test_res5_dilation_keeps_stride_16():
    net = build_resnet_backbone(small_cfg(50, RES5_DILATION=2), ShapeSpec(channels=3))
    assert net.output_shape()["res5"] == ShapeSpec(channels=128, stride=16)
    assert {b.conv2.dilation for b in net.res5} == {(2, 2)} and net.res5[0].stride == 1
    assert {b.conv2.dilation for b in net.res4} == {(1, 1)}
    assert net(torch.rand(1, 3, 64, 64))["res5"].shape == (1, 128, 4, 4)


def test_builder_only_builds_needed_stages_and_reads_input_channels():
    cfg = small_cfg(50, OUT_FEATURES=["res4"])
    net = build_resnet_backbone(cfg, ShapeSpec(channels=1))
    assert net.stage_names == ("res2", "res3", "res4")
    assert net.stem.conv1.weight.shape == (8, 1, 7, 7)
    assert list(net.output_shape()) == ["res4"]


@pytest.mark.parametrize("norm, norm_type", [("BN", nn.BatchNorm2d), ("FrozenBN", FrozenBatchNorm2d),
                                             ("GN", nn.GroupNorm), ("SyncBN", nn.SyncBatchNorm), ("", type(None))])
def test_norms_from_core(norm, norm_type):
    cfg = small_cfg(50, NORM=norm, STEM_OUT_CHANNELS=32, RES2_OUT_CHANNELS=64, WIDTH_PER_GROUP=32)
    net = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    assert type(net.stem.conv1.norm) is norm_type
    assert type(net.res3[0].conv2.norm) is norm_type
    assert type(net.res3[0].shortcut.norm) is norm_type


@pytest.mark.parametrize(
    "depth, overrides, message",
    [(42, {}, r"MODEL.RESNETS.DEPTH must be one of \[18, 34, 50, 101, 152\], got 42"),
     (50, {"RES5_DILATION": 3}, "RES5_DILATION must be 1 or 2, got 3"),
     (18, {"RES2_OUT_CHANNELS": 256}, "RES2_OUT_CHANNELS = 64 for R18/R34"),
     (34, {"NUM_GROUPS": 2}, "NUM_GROUPS = 1 for R18/R34"),
     (18, {"DEFORM_ON_PER_STAGE": [False, True, False, False]}, "DEFORM_ON_PER_STAGE unsupported for R18/R34"),
     (50, {"OUT_FEATURES": ["res6"]}, r"OUT_FEATURES must be a non-empty subset of stem/res2..res5, got \['res6'\]")],
)
def test_builder_config_errors(depth, overrides, message):
    with pytest.raises(ValueError, match=message):
        build_resnet_backbone(small_cfg(depth, **overrides), ShapeSpec(channels=3))
