"""The released DeepLab models load strictly: a state_dict written in this test from the
documented layout of detectron2's DeepLab R-103 models (key names and shapes, derived here from
the architecture, not from det's modules) loads into det's model with strict=True."""

from __future__ import annotations

import pytest
import torch

from det.core import build_model, get_cfg

from .conftest import YAMLS

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")  # SyncBN's entries


def conv_with_norm(prefix: str, out_c: int, in_c: int, k: int) -> dict[str, tuple[int, ...]]:
    keys = {f"{prefix}.weight": (out_c, in_c, k, k)}
    for entry in BN:
        keys[f"{prefix}.norm.{entry}"] = () if entry == "num_batches_tracked" else (out_c,)
    return keys


def deeplab_resnet_101_keys() -> dict[str, tuple[int, ...]]:
    """R-103: ResNet-101 with the DeepLab stem (64, 64, 128 channels of 3x3 convs), stride in 3x3."""
    keys = {}
    keys |= conv_with_norm("backbone.stem.conv1", 64, 3, 3)
    keys |= conv_with_norm("backbone.stem.conv2", 64, 64, 3)
    keys |= conv_with_norm("backbone.stem.conv3", 128, 64, 3)
    in_c, width = 128, 64
    for stage, blocks in zip(("res2", "res3", "res4", "res5"), (3, 4, 23, 3)):
        out_c = width * 4
        for i in range(blocks):
            p = f"backbone.{stage}.{i}"
            if i == 0:
                keys |= conv_with_norm(f"{p}.shortcut", out_c, in_c, 1)
            keys |= conv_with_norm(f"{p}.conv1", width, in_c if i == 0 else out_c, 1)
            keys |= conv_with_norm(f"{p}.conv2", width, width, 3)
            keys |= conv_with_norm(f"{p}.conv3", out_c, width, 1)
        in_c, width = out_c, width * 2
    return keys


def aspp_keys(prefix: str, in_c: int, out_c: int) -> dict[str, tuple[int, ...]]:
    keys = conv_with_norm(f"{prefix}.convs.0", out_c, in_c, 1)
    for i in (1, 2, 3):
        keys |= conv_with_norm(f"{prefix}.convs.{i}", out_c, in_c, 3)
    keys[f"{prefix}.convs.4.1.weight"] = (out_c, in_c, 1, 1)  # image pooling: conv with bias, no norm
    keys[f"{prefix}.convs.4.1.bias"] = (out_c,)
    keys |= conv_with_norm(f"{prefix}.project", out_c, 5 * out_c, 1)
    return keys


def expected_keys(yaml_name: str) -> dict[str, tuple[int, ...]]:
    keys = deeplab_resnet_101_keys()
    if "plus" in yaml_name:
        keys |= conv_with_norm("sem_seg_head.decoder.res2.project_conv", 48, 256, 1)
        keys |= conv_with_norm("sem_seg_head.decoder.res2.fuse_conv.0", 256, 48 + 256, 3)
        keys |= conv_with_norm("sem_seg_head.decoder.res2.fuse_conv.1", 256, 256, 3)
        keys |= aspp_keys("sem_seg_head.decoder.res5.project_conv", 2048, 256)
    else:
        keys |= aspp_keys("sem_seg_head.aspp", 2048, 256)
    keys["sem_seg_head.predictor.weight"] = (19, 256, 1, 1)
    keys["sem_seg_head.predictor.bias"] = (19,)
    return keys


@pytest.mark.parametrize("yaml_path", [p for p in YAMLS if p.name.startswith("deeplab")], ids=lambda p: p.stem)
def test_documented_keys_load_strictly(yaml_path):
    cfg = get_cfg()
    cfg.merge_from_file(str(yaml_path))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    expected = expected_keys(yaml_path.name)
    # normed convs: 3 in the stem, 3 in each of the 33 blocks, 4 shortcuts
    assert sum(k.endswith(".norm.weight") and k.startswith("backbone.") for k in expected) == 3 + 3 * 33 + 4
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(got) ^ set(expected)) == []
    assert got == expected
    generator = torch.Generator().manual_seed(0)
    state = {k: (torch.randint(0, 9, (), generator=generator) if not shape and k.endswith("tracked")
                 else torch.rand(shape, generator=generator)) for k, shape in expected.items()}
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.sem_seg_head.predictor.bias, state["sem_seg_head.predictor.bias"])
