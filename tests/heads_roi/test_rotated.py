"""RROIHeads: rotated proposals are matched with rotated IoU, pooled with ROIAlignRotated and
predicted as RotatedBoxes."""

from __future__ import annotations

import pytest
import torch

from det.core import EventStorage, get_cfg
from det.core.layers import ShapeSpec
from det.core.modeling import Box2BoxTransformRotated
from det.heads.roi import RotatedFastRCNNOutputLayers, RROIHeads, fast_rcnn_inference_rotated
from det.structures import Instances, RotatedBoxes

SHAPES = {"p3": ShapeSpec(channels=4, stride=8)}


def _cfg():
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NAME = "RROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p3"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 8
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 4
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignRotated"
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0, 1.0)
    return cfg


def _data():
    proposals = Instances((64, 64))
    proposals.proposal_boxes = RotatedBoxes(torch.tensor([[20.0, 20.0, 16.0, 8.0, 30.0],
                                                          [20.0, 20.0, 16.0, 8.0, 120.0],
                                                          [50.0, 50.0, 10.0, 10.0, 0.0]]))
    proposals.objectness_logits = torch.tensor([1.0, 0.5, 0.0])
    targets = Instances((64, 64))
    targets.gt_boxes = RotatedBoxes(torch.tensor([[20.0, 20.0, 16.0, 8.0, 30.0]]))
    targets.gt_classes = torch.tensor([1])
    return [proposals], [targets]


def test_rroi_heads_train_and_predict_rotated_boxes():
    heads = RROIHeads(_cfg(), SHAPES).train()
    assert isinstance(heads.box_predictor, RotatedFastRCNNOutputLayers)
    assert isinstance(heads.box_predictor.box2box_transform, Box2BoxTransformRotated)
    assert heads.box_predictor.bbox_pred.out_features == 2 * 5
    features = {"p3": torch.rand(1, 4, 8, 8)}
    proposals, targets = _data()
    with EventStorage(0) as storage:
        sampled, losses = heads(None, features, proposals, targets)
        stats = {k: v[0] for k, v in storage.latest().items()}
    assert sorted(losses) == ["loss_box_reg", "loss_cls"]
    assert all(torch.isfinite(v) for v in losses.values())
    # the identical proposal and the appended gt are foreground; the one 90 degrees off has IoU 1/3
    assert stats["roi_head/num_fg_samples"] == 2
    assert stats["roi_head/num_bg_samples"] == 2
    assert isinstance(sampled[0].gt_boxes, RotatedBoxes)
    sum(losses.values()).backward()

    heads.eval()
    with torch.no_grad():
        heads.box_predictor.cls_score.bias.copy_(torch.tensor([0.0, 5.0, 0.0]))
        (det,), _ = heads(None, features, proposals)
    assert isinstance(det.pred_boxes, RotatedBoxes)
    assert len(det) > 0 and (det.pred_classes == 1).all()


def test_rotated_inference_nms_is_rotated():
    boxes = torch.tensor([[20.0, 20.0, 16.0, 8.0, 0.0], [20.0, 20.0, 16.0, 8.0, 90.0], [20.0, 20.0, 16.0, 8.0, 2.0]])
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    (res,), (kept,) = fast_rcnn_inference_rotated([boxes], [scores], [(64, 64)], 0.05, 0.5, -1)
    # box 2 overlaps box 0 (2 degrees apart) and is suppressed; the 90-degree one overlaps by 1/3
    assert kept.tolist() == [0, 1]
    assert res.pred_boxes.tensor.shape == (2, 5)


def test_rroi_heads_refuse_axis_aligned_pooling_and_masks():
    cfg = _cfg()
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"
    with pytest.raises(ValueError, match="ROIAlignRotated"):
        RROIHeads(cfg, SHAPES)
    cfg = _cfg()
    cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = True
    with pytest.raises(ValueError, match="train_on_pred_boxes"):
        RROIHeads(cfg, SHAPES)
