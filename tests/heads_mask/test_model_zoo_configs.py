"""Every distinct mask-head setting of detectron2's model zoo builds, predicts and trains.

One config per distinct (ROI heads, ROI_MASK_HEAD, norms) setting among the Mask R-CNN YAMLs: C4
(Res5ROIHeads, deconv only), DC5, FPN, cascade, class-agnostic masks, GN and SyncBN heads. Widths
are shrunk and the depth set to 50 to stay fast; the mask head's structure is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from det.core import EventStorage, build_model, get_cfg
from det.structures import Boxes, Instances, PolygonMasks

SHARED = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))


def _distinct_mask_configs() -> list[str]:
    root = SHARED / "detectron2-configs"
    seen: dict[str, str] = {}
    for path in sorted(root.rglob("*.yaml")):
        cfg = get_cfg()
        cfg.merge_from_file(str(path))
        if not cfg.MODEL.MASK_ON or cfg.MODEL.META_ARCHITECTURE != "GeneralizedRCNN":
            continue
        key = repr((cfg.MODEL.ROI_HEADS.NAME, cfg.MODEL.ROI_MASK_HEAD, cfg.MODEL.ROI_BOX_HEAD.NORM, cfg.MODEL.RESNETS.NORM))
        seen.setdefault(key, str(path.relative_to(root)))
    return list(seen.values())


CONFIGS = _distinct_mask_configs()


def _small_cfg(configs_dir, name):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / name))
    r = cfg.MODEL.RESNETS
    cfg.MODEL.DEVICE = "cpu"
    r.DEPTH = 50
    # multiples of 32 keep GroupNorm(32) valid
    r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, cfg.MODEL.FPN.OUT_CHANNELS = 32, 64, 32
    r.WIDTH_PER_GROUP = max(1, 32 // r.NUM_GROUPS)
    cfg.MODEL.ROI_BOX_HEAD.CONV_DIM, cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32, 64
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # random weights: keep low-scoring detections
    cfg.TEST.DETECTIONS_PER_IMAGE = 10
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    return cfg


def _image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, 96, 128), generator=g, dtype=torch.uint8)


def test_the_distinct_settings_are_the_expected_ones():
    assert len(CONFIGS) == 8
    assert "Misc/mask_rcnn_R_50_FPN_1x_cls_agnostic.yaml" in CONFIGS
    assert "Misc/mask_rcnn_R_50_FPN_3x_gn.yaml" in CONFIGS
    assert any("_C4_" in c for c in CONFIGS) and any("cascade" in c for c in CONFIGS)


def _targets() -> Instances:
    gt = Instances((96, 128))
    gt.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 90.0]]))
    gt.gt_classes = torch.tensor([3, 7])
    gt.gt_masks = PolygonMasks([
        [np.array([10.0, 12.0, 60.0, 12.0, 60.0, 70.0, 10.0, 70.0])],
        [np.array([70.0, 90.0, 95.0, 20.0, 120.0, 90.0])],
    ])
    return gt


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_zoo_mask_config_predicts_and_trains(configs_dir, name):
    cfg = _small_cfg(configs_dir, name)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    head = model.roi_heads.mask_head
    assert type(head).__name__ == "MaskRCNNConvUpsampleHead"
    num_conv = cfg.MODEL.ROI_MASK_HEAD.NUM_CONV
    assert [n for n, _ in head.named_children()] == [f"mask_fcn{i}" for i in range(1, num_conv + 1)] + [
        "deconv", "deconv_relu", "predictor"]
    expected_classes = 1 if cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES
    assert head.predictor.out_channels == expected_classes
    if cfg.MODEL.ROI_MASK_HEAD.NORM:
        assert head.mask_fcn1.norm is not None and head.mask_fcn1.bias is None

    with torch.no_grad():
        (out,) = model([{"image": _image(), "height": 48, "width": 64}])
        # random weights may detect nothing: also run the mask path on given boxes
        images = model.preprocess_image([{"image": _image()}])
        features = model.backbone(images.tensor)
        given = Instances((96, 128), pred_boxes=Boxes(torch.tensor([[4.0, 8.0, 60.0, 50.0], [30.0, 20.0, 128.0, 96.0]])),
                          pred_classes=torch.tensor([0, 79]))
        (given,) = model.roi_heads.forward_with_given_boxes(features, [given])
    instances = out["instances"]
    assert instances.pred_masks.dtype == torch.bool and instances.pred_masks.shape == (len(instances), 48, 64)
    # 14x14 pooled regions upsampled 2x; C4's res5 first halves them to 7x7
    side = 14 if cfg.MODEL.ROI_HEADS.NAME == "Res5ROIHeads" else 28
    assert given.pred_masks.shape == (2, 1, side, side)
    assert ((given.pred_masks >= 0) & (given.pred_masks <= 1)).all()

    if "syncbn" in name:
        return  # SyncBN trains only in a distributed run
    model.train()
    with EventStorage() as storage:
        losses = model([{"image": _image(), "instances": _targets()}])
        stats = set(storage.latest())
    assert {k for k in losses if k.startswith("loss_mask")} == {"loss_mask"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"].item() > 0
    assert {"mask_rcnn/accuracy", "mask_rcnn/false_positive", "mask_rcnn/false_negative"} <= stats
    losses["loss_mask"].backward()
    assert head.predictor.weight.grad.abs().sum() > 0
