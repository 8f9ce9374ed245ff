"""Every detectron2 model-zoo YAML builds its backbone by name (widths shrunk, structure kept).

The 92 YAMLs use a handful of distinct backbone settings; one config per distinct setting is
built and run, so the test stays fast while covering every variant (R50/101/152, X-152 32x8d,
dilated C5, deformable c3-c5, GN, SyncBN, RetinaNet P6P7, C4).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from det.backbones import FPN, DeformBottleneckBlock, ResNet
from det.core import build_backbone, get_cfg

SHARED = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))


def _distinct_backbone_configs() -> list[str]:
    """One config file per distinct (BACKBONE, RESNETS, FPN) setting, in path order."""
    root = SHARED / "detectron2-configs"
    seen: dict[str, str] = {}
    for path in sorted(root.rglob("*.yaml")):
        cfg = get_cfg()
        cfg.merge_from_file(str(path))
        key = repr((cfg.MODEL.BACKBONE, cfg.MODEL.RESNETS, cfg.MODEL.FPN, cfg.MODEL.PIXEL_MEAN))
        seen.setdefault(key, str(path.relative_to(root)))
    return list(seen.values())


def test_all_model_zoo_backbone_names_are_ours(configs_dir):
    names = set()
    for path in configs_dir.rglob("*.yaml"):
        cfg = get_cfg()
        cfg.merge_from_file(str(path))
        names.add(cfg.MODEL.BACKBONE.NAME)
    assert names == {"build_resnet_backbone", "build_resnet_fpn_backbone", "build_retinanet_resnet_fpn_backbone"}


@pytest.mark.parametrize("name", _distinct_backbone_configs())
def test_model_zoo_backbone_builds_and_runs(configs_dir, name):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / name))
    r = cfg.MODEL.RESNETS
    # shrink widths only; multiples of 32 keep GroupNorm(32) valid
    r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, cfg.MODEL.FPN.OUT_CHANNELS = 32, 64, 32
    r.WIDTH_PER_GROUP = max(1, 32 // r.NUM_GROUPS)
    backbone = build_backbone(cfg)

    resnet = backbone.bottom_up if isinstance(backbone, FPN) else backbone
    assert isinstance(resnet, ResNet)
    assert [len(s) for s in resnet.stages] == {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[r.DEPTH][: len(resnet.stages)]
    for flag, stage in zip(r.DEFORM_ON_PER_STAGE, resnet.stages):
        assert all(isinstance(b, DeformBottleneckBlock) == bool(flag) for b in stage)
    if isinstance(backbone, FPN):
        strides = {name: s.stride for name, s in backbone.output_shape().items()}
        assert all(name == f"p{s.bit_length() - 1}" for name, s in strides.items())
        assert backbone.in_features == tuple(cfg.MODEL.FPN.IN_FEATURES)
    else:
        assert list(backbone.output_shape()) == list(r.OUT_FEATURES)

    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.rand(1, 3, 64, 64))
    assert {k: v.shape[-1] for k, v in out.items()} == {
        k: -(-64 // s.stride) for k, s in backbone.output_shape().items()}
