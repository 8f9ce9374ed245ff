"""The released Panoptic-DeepLab models load strictly: a state_dict written in this test from the
documented layout of detectron2's R-52 Panoptic-DeepLab (Cityscapes, with and without
depthwise-separable convs; key names and shapes derived here from the architecture) loads into
det's model with strict=True."""

from __future__ import annotations

import pytest
import torch

from det.core import build_model, get_cfg

from .conftest import YAMLS

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def normed(prefix: str, out_c: int, in_c: int, k: int, groups: int = 1) -> dict[str, tuple[int, ...]]:
    keys = {f"{prefix}.weight": (out_c, in_c // groups, k, k)}
    for entry in BN:
        keys[f"{prefix}.norm.{entry}"] = () if entry == "num_batches_tracked" else (out_c,)
    return keys


def separable(prefix: str, out_c: int, in_c: int, k: int) -> dict[str, tuple[int, ...]]:
    return normed(f"{prefix}.depthwise", in_c, in_c, k, groups=in_c) | normed(f"{prefix}.pointwise", out_c, in_c, 1)


def resnet_52() -> dict[str, tuple[int, ...]]:
    """R-52: ResNet-50 with the DeepLab stem; outputs res2, res3, res5 (res4 is built: res5 needs it)."""
    keys = normed("backbone.stem.conv1", 64, 3, 3) | normed("backbone.stem.conv2", 64, 64, 3)
    keys |= normed("backbone.stem.conv3", 128, 64, 3)
    in_c, width = 128, 64
    for stage, blocks in zip(("res2", "res3", "res4", "res5"), (3, 4, 6, 3)):
        out_c = width * 4
        for i in range(blocks):
            p = f"backbone.{stage}.{i}"
            if i == 0:
                keys |= normed(f"{p}.shortcut", out_c, in_c, 1)
            keys |= normed(f"{p}.conv1", width, in_c if i == 0 else out_c, 1)
            keys |= normed(f"{p}.conv2", width, width, 3) | normed(f"{p}.conv3", out_c, width, 1)
        in_c, width = out_c, width * 2
    return keys


def decoder(prefix: str, project: list[int], convs_dim: int, aspp_c: int, dsconv: bool) -> dict[str, tuple[int, ...]]:
    keys = {}
    a = f"{prefix}.decoder.res5.project_conv"
    keys |= normed(f"{a}.convs.0", aspp_c, 2048, 1)
    for i in (1, 2, 3):
        keys |= separable(f"{a}.convs.{i}", aspp_c, 2048, 3) if dsconv else normed(f"{a}.convs.{i}", aspp_c, 2048, 3)
    keys[f"{a}.convs.4.1.weight"] = (aspp_c, 2048, 1, 1)
    keys[f"{a}.convs.4.1.bias"] = (aspp_c,)
    keys |= normed(f"{a}.project", aspp_c, 5 * aspp_c, 1)
    coarser = aspp_c
    for name, in_c, proj in (("res3", 512, project[1]), ("res2", 256, project[0])):
        s = f"{prefix}.decoder.{name}"
        keys |= normed(f"{s}.project_conv", proj, in_c, 1)
        if dsconv:
            keys |= separable(f"{s}.fuse_conv", convs_dim, proj + coarser, 5)
        else:
            keys |= normed(f"{s}.fuse_conv.0", convs_dim, proj + coarser, 3)
            keys |= normed(f"{s}.fuse_conv.1", convs_dim, convs_dim, 3)
        coarser = convs_dim
    return keys


def head(prefix: str, in_c: int, out_c: int, dsconv: bool) -> dict[str, tuple[int, ...]]:
    if dsconv:
        return separable(prefix, out_c, in_c, 5)
    return normed(f"{prefix}.0", in_c, in_c, 3) | normed(f"{prefix}.1", out_c, in_c, 3)


def expected_keys(dsconv: bool) -> dict[str, tuple[int, ...]]:
    keys = resnet_52()
    keys |= decoder("sem_seg_head", [32, 64], 256, 256, dsconv)
    keys |= head("sem_seg_head.head", 256, 256, dsconv)
    keys |= {"sem_seg_head.predictor.weight": (19, 256, 1, 1), "sem_seg_head.predictor.bias": (19,)}
    # the instance head's decoder follows the semantic head's switch; its center head never does
    keys |= decoder("ins_embed_head", [32, 64], 128, 256, dsconv)
    keys |= head("ins_embed_head.center_head", 128, 32, False)
    keys |= {"ins_embed_head.center_predictor.weight": (1, 32, 1, 1), "ins_embed_head.center_predictor.bias": (1,)}
    keys |= head("ins_embed_head.offset_head", 128, 32, dsconv)
    keys |= {"ins_embed_head.offset_predictor.weight": (2, 32, 1, 1), "ins_embed_head.offset_predictor.bias": (2,)}
    return keys


@pytest.mark.parametrize("yaml_path", [p for p in YAMLS if p.name.startswith("panoptic_deeplab_R_52_os16_mg124_poly_90k")],
                         ids=lambda p: p.stem)
def test_documented_keys_load_strictly(yaml_path):
    cfg = get_cfg()
    cfg.merge_from_file(str(yaml_path))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    expected = expected_keys("dsconv" in yaml_path.name)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(got) ^ set(expected)) == []
    assert got == expected
    g = torch.Generator().manual_seed(0)
    state = {k: torch.tensor(3) if k.endswith("tracked") else torch.rand(shape, generator=g)
             for k, shape in expected.items()}
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.ins_embed_head.offset_predictor.bias, state["ins_embed_head.offset_predictor.bias"])
