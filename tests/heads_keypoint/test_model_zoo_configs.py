"""Every distinct keypoint-head setting of detectron2's model zoo builds, predicts and trains.

One config per distinct (ROI heads, ROI_KEYPOINT_HEAD, norms) setting among the Keypoint R-CNN
YAMLs: the base FPN config, Detectron1's ROIAlign (v1) pooling and the fixed loss normalizer with
``LOSS_WEIGHT: 4``. Widths are shrunk to stay fast; the keypoint head's structure is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from det.core import EventStorage, build_model, get_cfg
from det.structures import Boxes, Instances, Keypoints

SHARED = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))


def _distinct_keypoint_configs() -> list[str]:
    root = SHARED / "detectron2-configs"
    seen: dict[str, str] = {}
    for path in sorted(root.rglob("*.yaml")):
        cfg = get_cfg()
        cfg.merge_from_file(str(path))
        if not cfg.MODEL.KEYPOINT_ON or cfg.MODEL.META_ARCHITECTURE != "GeneralizedRCNN":
            continue
        key = repr((cfg.MODEL.ROI_HEADS.NAME, cfg.MODEL.ROI_KEYPOINT_HEAD, cfg.MODEL.RESNETS.NORM))
        seen.setdefault(key, str(path.relative_to(root)))
    return list(seen.values())


CONFIGS = _distinct_keypoint_configs()


def _small_cfg(configs_dir, name):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / name))
    cfg.MODEL.DEVICE = "cpu"
    r = cfg.MODEL.RESNETS
    r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, r.WIDTH_PER_GROUP, cfg.MODEL.FPN.OUT_CHANNELS = 16, 16, 4, 16
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (32,) * 8
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # random weights: keep low-scoring detections
    cfg.TEST.DETECTIONS_PER_IMAGE = 10
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    return cfg


def _image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (3, 96, 128), generator=g, dtype=torch.uint8)


def _targets() -> Instances:
    gt = Instances((96, 128))
    gt.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 90.0], [70.0, 8.0, 120.0, 94.0]]))
    gt.gt_classes = torch.tensor([0, 0])
    g = torch.Generator().manual_seed(1)
    keypoints = torch.zeros(2, 17, 3)
    keypoints[..., 0] = gt.gt_boxes.tensor[:, None, 0] + 50 * torch.rand(2, 17, generator=g)
    keypoints[..., 1] = gt.gt_boxes.tensor[:, None, 1] + 78 * torch.rand(2, 17, generator=g)
    keypoints[..., 2] = torch.randint(0, 3, (2, 17), generator=g).float()  # 0 unlabelled, 1 hidden, 2 visible
    gt.gt_keypoints = Keypoints(keypoints)
    return gt


def test_the_distinct_settings_are_the_expected_ones():
    assert "Detectron1-Comparisons/keypoint_rcnn_R_50_FPN_1x.yaml" in CONFIGS
    assert "quick_schedules/keypoint_rcnn_R_50_FPN_normalized_training_acc_test.yaml" in CONFIGS
    assert len(CONFIGS) == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_zoo_keypoint_config_predicts_and_trains(configs_dir, name):
    cfg = _small_cfg(configs_dir, name)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    head = model.roi_heads.keypoint_head
    assert type(head).__name__ == "KRCNNConvDeconvUpsampleHead"
    assert head.num_keypoints == 17 and head.loss_weight == cfg.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT
    if cfg.MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS:
        assert head.loss_normalizer == "visible"
    else:
        assert head.loss_normalizer == 17 * cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE * 0.25
        assert head.loss_weight == 4.0

    with torch.no_grad():
        (out,) = model([{"image": _image(), "height": 48, "width": 64}])
    instances = out["instances"]
    n = len(instances)
    assert instances.pred_keypoints.shape == (n, 17, 3)
    assert instances.pred_keypoint_heatmaps.shape == (n, 17, 56, 56)

    model.train()
    with EventStorage() as storage:
        losses = model([{"image": _image(), "instances": _targets()}])
        stats = storage.latest()
    assert sorted(losses) == ["loss_box_reg", "loss_cls", "loss_keypoint", "loss_rpn_cls", "loss_rpn_loc"]
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_keypoint"].item() > 0
    assert stats["keypoint_head/num_fg_samples"][0] >= 2  # at least the two appended gt boxes
    losses["loss_keypoint"].backward()
    assert head.score_lowres.weight.grad.abs().sum() > 0
