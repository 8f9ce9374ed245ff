"""FastRCNNOutputLayers and fast_rcnn_inference: shapes, exact losses, statistics, inference rules."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from det.core import EventStorage, get_cfg
from det.core.layers import ShapeSpec
from det.core.modeling import Box2BoxTransform
from det.heads.roi import FastRCNNOutputLayers, fast_rcnn_inference
from det.structures import Boxes, Instances

B2B = Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))


def _layers(**kwargs):
    torch.manual_seed(0)
    return FastRCNNOutputLayers(ShapeSpec(channels=6), box2box_transform=B2B, num_classes=3, **kwargs)


def _proposals():
    p = Instances((50, 50))
    p.proposal_boxes = Boxes(torch.tensor([[0.0, 0, 10, 10], [5, 5, 25, 25], [30, 30, 40, 45], [1, 1, 2, 2]]))
    p.gt_classes = torch.tensor([0, 2, 3, 3])  # 3 = background
    p.gt_boxes = Boxes(torch.tensor([[1.0, 0, 11, 10], [5, 6, 24, 25], [0, 0, 1, 1], [0, 0, 1, 1]]))
    return [p]


def test_shapes_names_and_init():
    layers = _layers()
    assert {k: tuple(v.shape) for k, v in layers.state_dict().items()} == {
        "cls_score.weight": (4, 6), "cls_score.bias": (4,), "bbox_pred.weight": (12, 6), "bbox_pred.bias": (12,),
    }
    assert torch.count_nonzero(layers.cls_score.bias) == 0
    scores, deltas = layers(torch.rand(5, 6))
    assert scores.shape == (5, 4) and deltas.shape == (5, 12)
    # (R, C, H, W) inputs are flattened
    conv_in = FastRCNNOutputLayers(ShapeSpec(channels=2, height=3, width=1), box2box_transform=B2B, num_classes=3)
    assert conv_in(torch.rand(5, 2, 3, 1))[0].shape == (5, 4)
    agnostic = _layers(cls_agnostic_bbox_reg=True)
    assert agnostic.bbox_pred.out_features == 4
    assert FastRCNNOutputLayers(6, box2box_transform=B2B, num_classes=3).cls_score.in_features == 6


def test_losses_are_exact_and_statistics_logged():
    layers = _layers()
    proposals = _proposals()
    scores = torch.tensor([[2.0, 0, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1], [0, 5, 0, 0]])
    deltas = torch.zeros(4, 12)
    deltas[1, 8:12] = torch.tensor([0.1, -0.2, 0.3, 0.0])
    with EventStorage(0) as storage:
        losses = layers.losses((scores, deltas), proposals)
        stats = {k: v[0] for k, v in storage.latest().items()}
    gt_classes = proposals[0].gt_classes
    assert losses["loss_cls"].item() == pytest.approx(F.cross_entropy(scores, gt_classes).item(), rel=1e-6)
    # only the two foreground regions regress, with the deltas of their own class; divided by R = 4
    targets = B2B.get_deltas(proposals[0].proposal_boxes.tensor[:2], proposals[0].gt_boxes.tensor[:2])
    preds = torch.stack([deltas[0, 0:4], deltas[1, 8:12]])
    assert losses["loss_box_reg"].item() == pytest.approx((preds - targets).abs().sum().item() / 4, rel=1e-5)
    # predicted classes: 0, 3(bg), 3(bg), 1 vs gt 0, 2, 3, 3
    assert stats == {"fast_rcnn/cls_accuracy": 0.5, "fast_rcnn/fg_cls_accuracy": 0.5, "fast_rcnn/false_negative": 0.5}


def test_class_agnostic_regression_and_loss_weight():
    layers = _layers(cls_agnostic_bbox_reg=True, smooth_l1_beta=0.5, loss_weight={"loss_box_reg": 2.0})
    proposals = _proposals()
    deltas = torch.full((4, 4), 0.1)
    with EventStorage(0):
        losses = layers.losses((torch.zeros(4, 4), deltas), proposals)
    targets = B2B.get_deltas(proposals[0].proposal_boxes.tensor[:2], proposals[0].gt_boxes.tensor[:2])
    diff = (deltas[:2] - targets).abs()
    smooth = torch.where(diff < 0.5, 0.5 * diff**2 / 0.5, diff - 0.25)
    assert losses["loss_box_reg"].item() == pytest.approx(2.0 * smooth.sum().item() / 4, rel=1e-5)
    assert losses["loss_cls"].item() == pytest.approx(math.log(4), rel=1e-6)


def test_giou_box_loss():
    layers = _layers(box_reg_loss_type="giou")
    proposals = _proposals()
    with EventStorage(0):
        losses = layers.losses((torch.zeros(4, 4), torch.zeros(4, 12)), proposals)
    # zero deltas: predicted boxes are the proposals; GIoU loss = 1 - IoU for these nested/overlapping pairs
    p, g = proposals[0].proposal_boxes.tensor[:2], proposals[0].gt_boxes.tensor[:2]
    from det.core.layers import giou_loss

    assert losses["loss_box_reg"].item() == pytest.approx(giou_loss(p, g, reduction="sum").item() / 4, rel=1e-5)


def test_sigmoid_cross_entropy():
    layers = _layers(use_sigmoid_ce=True)
    proposals = _proposals()
    scores = torch.tensor([[2.0, 0, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1], [0, 5, 0, 0]])
    with EventStorage(0):
        losses = layers.losses((scores, torch.zeros(4, 12)), proposals)
    target = torch.zeros(4, 3)
    target[0, 0] = 1
    target[1, 2] = 1
    expected = F.binary_cross_entropy_with_logits(scores[:, :3], target, reduction="sum") / 4
    assert losses["loss_cls"].item() == pytest.approx(expected.item(), rel=1e-6)
    probs = layers.predict_probs((scores, torch.zeros(4, 12)), proposals)[0]
    assert torch.allclose(probs, scores.sigmoid())


def test_federated_loss_counts_only_sampled_classes():
    weights = torch.tensor([1.0, 0.0, 0.0])
    layers = _layers(use_sigmoid_ce=True, use_fed_loss=True, fed_loss_num_classes=3,
                     get_fed_loss_cls_weights=lambda: weights)
    assert torch.equal(layers.fed_loss_cls_weights, weights)
    proposals = _proposals()
    proposals[0].gt_classes = torch.tensor([2, 3, 3, 3])
    scores = torch.tensor([[2.0, 1, 0, 0], [0, 3, 1, 3], [1, 0, 0, 1], [0, 5, 0, 0]])
    with EventStorage(0):
        losses = layers.losses((scores, torch.zeros(4, 12)), proposals)
    # as in detectron2, the present labels include background (3): {2, 3} fill 2 of the 3 slots;
    # the one negative is sampled by weight, and only class 0 has weight
    target = torch.zeros(4, 3)
    target[0, 2] = 1
    bce = F.binary_cross_entropy_with_logits(scores[:, :3], target, reduction="none")
    expected = (bce[:, 0].sum() + bce[:, 2].sum()) / 4
    assert losses["loss_cls"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_no_proposals_gives_zero_connected_losses():
    layers = _layers()
    empty = Instances((10, 10))
    empty.proposal_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.int64)
    scores, deltas = layers(torch.zeros(0, 6))
    with EventStorage(0) as storage:
        losses = layers.losses((scores, deltas), [empty])
        assert "fast_rcnn/cls_accuracy" not in storage.latest()
    assert losses["loss_cls"].item() == 0.0 and losses["loss_box_reg"].item() == 0.0
    sum(losses.values()).backward()


def test_fast_rcnn_inference_thresholds_nms_and_topk():
    # 3 regions, 2 classes (+ background); class-specific boxes
    boxes = torch.tensor([
        [0.0, 0, 10, 10, 0, 0, 10, 10],
        [0.0, 0, 10, 11, 20, 20, 30, 30],
        [-5.0, -5, 60, 70, 40, 40, 45, 45],
    ])
    scores = torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.15, 0.05], [0.3, 0.6, 0.1]])
    (res,), (kept,) = fast_rcnn_inference([boxes], [scores], [(50, 48)], 0.1, 0.5, -1)
    # class 0: regions 0 and 1 overlap (IoU 0.91): NMS keeps region 0; region 2 kept (clipped)
    # class 1: region 1 (0.15) and region 2 (0.6) don't overlap: both kept; region 0 (0.05) under threshold
    assert res.scores.tolist() == pytest.approx([0.9, 0.6, 0.3, 0.15])
    assert res.pred_classes.tolist() == [0, 1, 0, 1]
    assert kept.tolist() == [0, 2, 2, 1]
    assert res.pred_boxes.tensor[2].tolist() == [0.0, 0.0, 48.0, 50.0]
    (top2,), _ = fast_rcnn_inference([boxes], [scores], [(50, 48)], 0.1, 0.5, 2)
    assert top2.scores.tolist() == pytest.approx([0.9, 0.6])
    # non-finite regions are dropped
    bad = scores.clone()
    bad[0, 0] = float("nan")
    (res,), _ = fast_rcnn_inference([boxes], [bad], [(50, 48)], 0.1, 0.5, -1)
    assert 0 not in res.pred_classes[res.scores > 0.85].tolist()
    with pytest.raises(ValueError, match="one of each per image"):
        fast_rcnn_inference([boxes], [scores, scores], [(50, 48)], 0.1, 0.5, -1)


def test_predictor_inference_uses_its_test_settings():
    layers = _layers(test_score_thresh=0.3, test_topk_per_image=1)
    proposals = _proposals()
    scores = torch.tensor([[4.0, 0, 0, 0], [0, 0, 3, 0], [0, 0, 0, 9], [0, 0, 0, 9]])
    (res,), (kept,) = layers.inference((scores, torch.zeros(4, 12)), proposals)
    assert len(res) == 1 and res.pred_classes.tolist() == [0] and kept.tolist() == [0]
    assert res.pred_boxes.tensor.tolist() == [[0.0, 0.0, 10.0, 10.0]]


def test_predict_boxes_for_gt_classes():
    layers = _layers()
    proposals = _proposals()
    deltas = torch.zeros(4, 12)
    deltas[1, 8] = 0.5  # class 2 shift of region 1, by 0.5 * 20 / 10 = 1 px
    (boxes,) = layers.predict_boxes_for_gt_classes((torch.zeros(4, 4), deltas), proposals)
    assert boxes.shape == (4, 4)
    assert boxes[1].tolist() == pytest.approx([6.0, 5.0, 26.0, 25.0])


def test_from_config_reads_detectron2_keys():
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 5
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.25
    cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST = 0.4
    cfg.TEST.DETECTIONS_PER_IMAGE = 7
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT = 3.0
    layers = FastRCNNOutputLayers(cfg, ShapeSpec(channels=8))
    assert (layers.num_classes, layers.test_score_thresh, layers.test_nms_thresh, layers.test_topk_per_image) == (5, 0.25, 0.4, 7)
    assert layers.loss_weight == {"loss_box_reg": 3.0}
    assert layers.box2box_transform.weights == (10.0, 10.0, 5.0, 5.0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(box_reg_loss_type="l2"), ValueError, "box_reg_loss_type"),
        (dict(use_fed_loss=True, get_fed_loss_cls_weights=lambda: torch.ones(3)), ValueError, "use_sigmoid_ce"),
        (dict(use_fed_loss=True, use_sigmoid_ce=True, get_fed_loss_cls_weights=lambda: torch.ones(2)), ValueError, "one weight per class"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        _layers(**kwargs)


def test_wrong_feature_size_is_a_clear_error():
    with pytest.raises(ValueError, match="expects 6 features"):
        _layers()(torch.rand(2, 5))


def test_fed_loss_weights_come_from_dataset_metadata():
    from det.data import DatasetCatalog, MetadataCatalog
    from det.heads.roi.fast_rcnn import get_fed_loss_cls_weights

    MetadataCatalog.get("_heads_roi_fed_a").set(
        class_image_count=[{"id": 2, "image_count": 9}, {"id": 1, "image_count": 4}])
    # sorted by category id, then count ** power
    assert get_fed_loss_cls_weights("_heads_roi_fed_a", 0.5).tolist() == [2.0, 3.0]
    MetadataCatalog.get("_heads_roi_fed_b").set(class_image_count=[{"id": 1, "image_count": 1}])
    with pytest.raises(ValueError, match="different 'class_image_count'"):
        get_fed_loss_cls_weights(["_heads_roi_fed_a", "_heads_roi_fed_b"])
    with pytest.raises(ValueError, match="class_image_count"):
        get_fed_loss_cls_weights("_heads_roi_fed_missing")

    # a dataset that sets class_image_count when loaded (LVIS reads it from its json) is loaded first
    def load_lazily():
        MetadataCatalog.get("_heads_roi_fed_lazy").set(class_image_count=[{"id": 1, "image_count": 16}])
        return []

    DatasetCatalog.register("_heads_roi_fed_lazy", load_lazily)
    try:
        assert get_fed_loss_cls_weights("_heads_roi_fed_lazy", 0.5).tolist() == [4.0]
    finally:
        DatasetCatalog.remove("_heads_roi_fed_lazy")

    cfg = get_cfg()
    cfg.DATASETS.TRAIN = ("_heads_roi_fed_a",)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE = True
    cfg.MODEL.ROI_BOX_HEAD.USE_FED_LOSS = True
    layers = FastRCNNOutputLayers(cfg, ShapeSpec(channels=4))
    assert layers.fed_loss_cls_weights.tolist() == [2.0, 3.0]
