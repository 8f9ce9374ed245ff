"""Parity with detectron2's golden cases: same parameter/buffer names and shapes, same features."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from det.backbones import BottleneckBlock, ResNet
from det.core import build_backbone, get_cfg

CASES = ["mask_rcnn_R_50_FPN", "faster_rcnn_R_50_C4", "keypoint_rcnn_R_50_FPN", "retinanet_R_50_FPN"]


def golden_cfg(case_dir):
    cfg = get_cfg()
    cfg.merge_from_file(str(case_dir / "config.yaml"))
    return cfg


def build_golden_backbone(case_dir):
    return build_backbone(golden_cfg(case_dir))  # by the config's name, through the registry


def golden_state(case_dir, prefix):
    state = torch.load(case_dir / "model_final.pth", weights_only=True)["model"]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.parametrize("case", CASES)
def test_backbone_names_and_shapes_match_detectron2(golden_dir, case):
    backbone = build_golden_backbone(golden_dir / case)
    ours = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    golden = {k: tuple(v.shape) for k, v in golden_state(golden_dir / case, "backbone.").items()}
    assert ours == golden
    assert list(ours) == list(golden)  # same registration order as detectron2, too


def test_c4_res5_stage_matches_roi_heads_res5(golden_dir):
    """Res5ROIHeads builds res5 with ResNet.make_stage; the stage must carry detectron2's names."""
    cfg = golden_cfg(golden_dir / "faster_rcnn_R_50_C4")
    r = cfg.MODEL.RESNETS
    stage = torch.nn.Sequential(*ResNet.make_stage(
        BottleneckBlock, 3, stride_per_block=[2, 1, 1], in_channels=r.RES2_OUT_CHANNELS * 4,
        bottleneck_channels=r.NUM_GROUPS * r.WIDTH_PER_GROUP * 8, out_channels=r.RES2_OUT_CHANNELS * 8,
        num_groups=r.NUM_GROUPS, norm=r.NORM, stride_in_1x1=r.STRIDE_IN_1X1,
    ))
    golden = golden_state(golden_dir / "faster_rcnn_R_50_C4", "roi_heads.res5.")
    assert {k: tuple(v.shape) for k, v in stage.state_dict().items()} == {k: tuple(v.shape) for k, v in golden.items()}
    assert stage.load_state_dict(golden, strict=True)


def _check_features(backbone, golden_dir):
    features = torch.load(golden_dir / "mask_rcnn_R_50_FPN" / "features.pt", weights_only=True)
    backbone.eval()
    with torch.no_grad():
        out = backbone(features["input"])
    sizes = {"p2": (120, 160), "p3": (60, 80), "p4": (30, 40), "p5": (15, 20), "p6": (8, 10)}
    assert list(out) == list(sizes)
    for name, value in out.items():
        expected = features[name]
        assert value.shape == expected.shape == (1, 16, *sizes[name])
        assert ((value - expected).abs().max() / expected.abs().max()).item() <= 1e-4, name


def test_features_from_pth(golden_dir):
    backbone = build_golden_backbone(golden_dir / "mask_rcnn_R_50_FPN")
    backbone.load_state_dict(golden_state(golden_dir / "mask_rcnn_R_50_FPN", "backbone."), strict=True)
    _check_features(backbone, golden_dir)


def test_features_from_model_zoo_pkl(golden_dir):
    with open(golden_dir / "mask_rcnn_R_50_FPN" / "model_final.pkl", "rb") as f:
        data = pickle.load(f, encoding="latin1")
    assert data["__author__"] == "Detectron2 Model Zoo"
    state = {k[len("backbone."):]: torch.as_tensor(np.asarray(v)) for k, v in data["model"].items()
             if k.startswith("backbone.")}
    backbone = build_golden_backbone(golden_dir / "mask_rcnn_R_50_FPN")
    backbone.load_state_dict(state, strict=True)
    _check_features(backbone, golden_dir)
