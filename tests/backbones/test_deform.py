"""DeformBottleneckBlock and RESNETS.DEFORM_* (deformable convs come from det.core.layers)."""

from __future__ import annotations

import pytest
import torch

from det.backbones import BottleneckBlock, DeformBottleneckBlock, build_resnet_backbone
from det.core import get_cfg
from det.core.layers import DeformConv, ModulatedDeformConv, ShapeSpec


@pytest.mark.parametrize("modulated, op, per_group", [(False, DeformConv, 18), (True, ModulatedDeformConv, 27)])
def test_block_layers(modulated, op, per_group):
    block = DeformBottleneckBlock(16, 32, bottleneck_channels=8, stride=2, deform_modulated=modulated,
                                  deform_num_groups=2, num_groups=2)
    assert type(block.conv2) is op
    assert block.conv2_offset.weight.shape == (per_group * 2, 8, 3, 3)
    assert block.conv2_offset.stride == (2, 2) and block.conv2.stride in (2, (2, 2))
    assert [n for n, _ in block.named_children()] == ["shortcut", "conv1", "conv2_offset", "conv2", "conv3"]
    assert torch.count_nonzero(block.conv2_offset.weight) == 0 and torch.count_nonzero(block.conv2_offset.bias) == 0


@pytest.mark.parametrize("modulated", [False, True])
def test_zero_offsets_equal_a_plain_bottleneck(modulated):
    """With offsets at their zero init (and mask sigmoid(0) = 0.5 folded into the comparison)."""
    torch.manual_seed(0)
    deform = DeformBottleneckBlock(8, 16, bottleneck_channels=4, stride=2, deform_modulated=modulated).eval()
    plain = BottleneckBlock(8, 16, bottleneck_channels=4, stride=2).eval()
    state = {k: v for k, v in deform.state_dict().items() if not k.startswith("conv2_offset")}
    if modulated:  # the modulated conv sees mask 0.5 everywhere
        state["conv2.weight"] = state["conv2.weight"] * 0.5
    plain.load_state_dict(state, strict=True)
    x = torch.rand(2, 8, 12, 12)
    with torch.no_grad():
        assert torch.allclose(deform(x), plain(x), atol=1e-5)


def test_deform_on_per_stage_config_trains():
    cfg = get_cfg()
    r = cfg.MODEL.RESNETS
    r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, r.WIDTH_PER_GROUP = 8, 16, 4
    r.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    r.DEFORM_ON_PER_STAGE = [False, True, False, True]
    r.DEFORM_MODULATED = True
    r.DEFORM_NUM_GROUPS = 2
    r.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    net = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    kinds = [{type(b).__name__ for b in stage} for stage in net.stages]
    assert kinds == [{"BottleneckBlock"}, {"DeformBottleneckBlock"}, {"BottleneckBlock"}, {"DeformBottleneckBlock"}]
    assert net.res3[0].conv2_offset.out_channels == 54 and net.res3[0].deform_modulated
    torch.manual_seed(0)
    with torch.no_grad():  # move offsets away from zero so the sampling path really runs
        for stage in (net.res3, net.res5):
            for block in stage:
                block.conv2_offset.weight.normal_(std=0.01)
    out = net(torch.rand(2, 3, 64, 64))
    assert out["res5"].shape == (2, 128, 2, 2)
    sum(v.sum() for v in out.values()).backward()
    assert net.res3[0].conv2_offset.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_deform_num_groups_must_divide():
    with pytest.raises(ValueError, match=r"deform_num_groups must be >= 1 and divide bottleneck_channels=8, got 3"):
        DeformBottleneckBlock(8, 8, bottleneck_channels=8, deform_num_groups=3)
