"""RegNet/AnyNet build detectron2's (and pycls') modules: checkpoints with their key names load strictly.

The expected state_dicts below are written from the published RegNet tables (pycls' model zoo:
stage widths, depths, group widths, SE ratio) and the module layout of detectron2's
``modeling/backbone/regnet.py`` (``stem.conv``, ``s<i>.b<j>.proj``/``bn``/``f.a``...), not from
det's code, so a wrong width rule or a renamed module fails here.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from det.backbones import FPN, LastLevelMaxPool, RegNet, ResBottleneckBlock, SimpleStem
from det.backbones.regnet import (
    AnyNet,
    ResBasicBlock,
    ResStem,
    VanillaBlock,
    adjust_block_compatibility,
    generate_regnet_parameters,
)
from det.checkpoint import DetectionCheckpointer
from det.core.layers import FrozenBatchNorm2d
from det.core.modeling.skip_init import skip_init

# pycls' RegNetX-4.0GF / RegNetY-4.0GF (the model-zoo configs' backbones) as published:
# (stage widths, stage depths, group width, SE width ratio)
REGNETX_4GF = dict(depth=23, w_a=38.65, w_0=96, w_m=2.43, group_width=40)
REGNETY_4GF = dict(depth=22, w_a=31.41, w_0=96, w_m=2.24, group_width=64, se_ratio=0.25)
PUBLISHED = {
    "X-4GF": (REGNETX_4GF, [80, 240, 560, 1360], [2, 5, 14, 2], 40, 0.0),
    "Y-4GF": (REGNETY_4GF, [128, 192, 512, 1088], [2, 6, 12, 2], 64, 0.25),
}


def _bn(prefix: str, c: int, tracked: bool) -> dict[str, tuple[int, ...]]:
    keys = {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,)}
    if tracked:
        keys[f"{prefix}.num_batches_tracked"] = ()
    return keys


def detectron2_regnet_keys(widths, depths, group_w, se_r, *, stem_w=32, tracked=True) -> dict[str, tuple[int, ...]]:
    """Key -> shape of detectron2's RegNet(stem_class=SimpleStem, block_class=ResBottleneckBlock)."""
    keys = {"stem.conv.weight": (stem_w, 3, 3, 3), **_bn("stem.bn", stem_w, tracked)}
    w_in = stem_w
    for s, (w, d) in enumerate(zip(widths, depths), start=1):
        for b in range(1, d + 1):
            p = f"s{s}.b{b}"
            if b == 1:  # width and stride change: 1x1 projection shortcut
                keys[f"{p}.proj.weight"] = (w, w_in, 1, 1)
                keys.update(_bn(f"{p}.bn", w, tracked))
            keys[f"{p}.f.a.weight"] = (w, w_in, 1, 1)
            keys.update(_bn(f"{p}.f.a_bn", w, tracked))
            keys[f"{p}.f.b.weight"] = (w, group_w, 3, 3)  # groups = w // group_w
            keys.update(_bn(f"{p}.f.b_bn", w, tracked))
            if se_r:
                w_se = round(w_in * se_r)
                keys.update({f"{p}.f.se.f_ex.0.weight": (w_se, w, 1, 1), f"{p}.f.se.f_ex.0.bias": (w_se,),
                             f"{p}.f.se.f_ex.2.weight": (w, w_se, 1, 1), f"{p}.f.se.f_ex.2.bias": (w,)})
            keys[f"{p}.f.c.weight"] = (w, w, 1, 1)
            keys.update(_bn(f"{p}.f.c_bn", w, tracked))
            w_in = w
    return keys


def regnet(params: dict, **kwargs) -> RegNet:
    if "out_features" not in kwargs:
        kwargs["out_features"] = ["s1", "s2", "s3", "s4"]
    return RegNet(stem_class=SimpleStem, stem_width=32, block_class=ResBottleneckBlock, **params, **kwargs)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_regnet_parameters_give_the_published_stages(name):
    params, widths, depths, group_w, _ = PUBLISHED[name]
    ws, ds = generate_regnet_parameters(params["w_a"], params["w_0"], params["w_m"], params["depth"])[:2]
    assert sum(ds) == params["depth"] and ds == depths
    n = len(ws)
    assert adjust_block_compatibility(ws, [1.0] * n, [group_w] * n) == (widths, [1.0] * n, [group_w] * n)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
@pytest.mark.parametrize("norm, tracked", [("BN", True), ("FrozenBN", False)])
def test_detectron2_state_dict_loads_strictly(name, norm, tracked):
    params, widths, depths, group_w, se_r = PUBLISHED[name]
    with skip_init():  # full size: every value comes from the state_dict below
        model = regnet(params, norm=norm)
    expected = detectron2_regnet_keys(widths, depths, group_w, se_r, tracked=tracked)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected

    torch.manual_seed(0)
    state = {k: torch.rand(shape) if shape else torch.tensor(7) for k, shape in expected.items()}
    result = model.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert torch.equal(model.s3.b4.f.b.weight, state["s3.b4.f.b.weight"])


def test_regnet_4gf_outputs_strides_channels_and_parameter_count():
    with skip_init():
        x = regnet(REGNETX_4GF, norm="FrozenBN", freeze_at=2)
        y = regnet(REGNETY_4GF)
    shapes = x.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        "s1": (80, 4), "s2": (240, 8), "s3": (560, 16), "s4": (1360, 32)}
    # pycls publishes 22.1M parameters with its 1360 -> 1000 classifier (1,361,000 of them)
    assert sum(p.numel() for p in x.parameters()) + 1360 * 1000 + 1000 == pytest.approx(22.1e6, rel=0.003)
    assert sum(p.numel() for p in y.parameters()) + 1088 * 1000 + 1000 == pytest.approx(20.6e6, rel=0.003)
    assert isinstance(y.s2.b1.f.se.f_ex[3], nn.Sigmoid) and y.s2.b1.f.se.f_ex[0].in_channels == 192


def test_forward_shapes_and_default_out_features():
    small = dict(depth=4, w_a=8.0, w_0=8, w_m=1.5, group_width=8)
    ws, ds = generate_regnet_parameters(small["w_a"], small["w_0"], small["w_m"], small["depth"])[:2]
    assert (ws, ds) == ([8, 16, 24], [1, 1, 2])
    model = RegNet(stem_class=SimpleStem, stem_width=8, block_class=ResBottleneckBlock, **small)
    assert model._out_features == ["s3"]
    out = model(torch.rand(2, 3, 64, 48))
    assert list(out) == ["s3"] and out["s3"].shape == (2, 24, 4, 3)

    with_stem = RegNet(stem_class=ResStem, stem_width=8, block_class=ResBottleneckBlock, **small,
                       out_features=["stem", "s1"])
    out = with_stem(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"stem": (1, 8, 16, 16), "s1": (1, 8, 8, 8)}
    assert with_stem.output_shape()["s1"].stride == 8


@pytest.mark.parametrize("block_class", [ResBasicBlock, VanillaBlock])
def test_anynet_with_basic_and_vanilla_blocks(block_class):
    net = AnyNet(stem_class=SimpleStem, stem_width=8, block_class=block_class, depths=[1, 2],
                 widths=[16, 32], group_widths=[8, 8], strides=[2, 2], bottleneck_ratios=[1.0, 1.0],
                 se_ratio=0.0, activation_class=nn.ReLU, out_features=["s1", "s2"])
    out = net(torch.rand(1, 3, 32, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"s1": (1, 16, 8, 8), "s2": (1, 32, 4, 4)}
    children = {n for n, _ in net.s1.b1.named_children()}
    if block_class is ResBasicBlock:  # shortcut projection, then f = a, a_bn, a_af, b, b_bn
        assert children == {"proj", "bn", "f", "af"} and {n for n, _ in net.s1.b1.f.named_children()} == {
            "a", "a_bn", "a_af", "b", "b_bn"}
        assert net.s1.b1.f.b_bn.final_bn is True
    else:  # no shortcut at all
        assert children == {"a", "a_bn", "a_af", "b", "b_bn", "b_af"}


def test_freeze_at_freezes_stem_and_first_stages():
    model = regnet(dict(depth=4, w_a=8.0, w_0=8, w_m=1.5, group_width=8), norm="BN", freeze_at=2,
                   out_features=["s1", "s2", "s3"])
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert frozen == {"stem", "s1"} and trained == {"s2", "s3"}
    assert isinstance(model.stem.bn, FrozenBatchNorm2d) and isinstance(model.s1.b1.f.a_bn, FrozenBatchNorm2d)
    assert isinstance(model.s2.b1.f.a_bn, nn.BatchNorm2d)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match=r"out_features names 's9'"):
        regnet(dict(depth=4, w_a=8.0, w_0=8, w_m=1.5, group_width=8), out_features=["s9"])
    with pytest.raises(ValueError, match="w_0 > 0 and a multiple of 8"):
        generate_regnet_parameters(10.0, 12, 2.0, 4)
    with pytest.raises(ValueError, match=r"takes an input of shape \(N, C, H, W\)"):
        regnet(dict(depth=4, w_a=8.0, w_0=8, w_m=1.5, group_width=8), out_features=None)(torch.rand(3, 32, 32))


def test_pycls_checkpoint_loads_into_fpn_bottom_up(tmp_path):
    """A pycls ImageNet ``.pyth`` (``model_state``, with its classifier head) fills ``bottom_up``
    of an FPN by name matching, as the zoo configs' ``train.init_checkpoint`` does."""
    small = dict(depth=4, w_a=8.0, w_0=8, w_m=1.5, group_width=8, se_ratio=0.25)
    classifier = RegNet(stem_class=SimpleStem, stem_width=8, block_class=ResBottleneckBlock, norm="BN", **small)
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in classifier.state_dict().items()}
    state["head.fc.weight"], state["head.fc.bias"] = torch.rand(10, 24), torch.rand(10)
    torch.save({"model_state": state, "epoch": 100}, tmp_path / "RegNet.pyth")

    bottom_up = RegNet(stem_class=SimpleStem, stem_width=8, block_class=ResBottleneckBlock, norm="FrozenBN",
                       out_features=["s1", "s2", "s3"], **small)
    model = nn.Module()
    model.backbone = FPN(bottom_up=bottom_up, in_features=["s1", "s2", "s3"], out_channels=8,
                         top_block=LastLevelMaxPool())
    DetectionCheckpointer(model).load(str(tmp_path / "RegNet.pyth"))
    assert torch.equal(model.backbone.bottom_up.s3.b2.f.se.f_ex[0].weight, state["s3.b2.f.se.f_ex.0.weight"])
    assert torch.equal(model.backbone.bottom_up.stem.bn.running_var, state["stem.bn.running_var"])
