"""ROIHeads sampling, StandardROIHeads / Res5ROIHeads wiring with mask and keypoint heads found
through the registry (stand-in heads here: the real ones live in det-heads-mask/-keypoint)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from det.core import EventStorage, get_cfg
from det.core.layers import ShapeSpec
from det.core.modeling import Matcher, ROIPooler
from det.core.registry import ROI_KEYPOINT_HEAD_REGISTRY, ROI_MASK_HEAD_REGISTRY
from det.heads.roi import (
    FastRCNNConvFCHead,
    Res5ROIHeads,
    ROIHeads,
    StandardROIHeads,
    add_ground_truth_to_proposals,
    select_foreground_proposals,
    select_proposals_with_visible_keypoints,
)
from det.structures import Boxes, Instances, Keypoints

CALLS: list[tuple[str, object, list[Instances]]] = []


class _RecordingHead(nn.Module):
    """Stands in for a mask/keypoint head: records its inputs, follows detectron2's interface."""

    field = "pred_masks"
    loss = "loss_mask"

    def __init__(self, cfg, input_shape):
        super().__init__()
        self.input_shape = input_shape
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, features, instances):
        CALLS.append((type(self).__name__, features, instances))
        if self.training:
            total = features.sum() if isinstance(features, torch.Tensor) else sum(f.sum() for f in features.values())
            return {self.loss: total * 0 + self.scale}
        for inst in instances:
            inst.set(self.field, torch.zeros(len(inst), 1, 2, 2))
        return instances


@ROI_MASK_HEAD_REGISTRY.register()
class _TestMaskHead(_RecordingHead):
    pass


@ROI_KEYPOINT_HEAD_REGISTRY.register()
class _TestKeypointHead(_RecordingHead):
    field = "pred_keypoints"
    loss = "loss_keypoint"


def _proposals(boxes, size=(64, 64)):
    p = Instances(size)
    p.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    p.objectness_logits = torch.linspace(1, 0, len(p.proposal_boxes))
    return p


def _targets(boxes, classes, size=(64, 64)):
    t = Instances(size)
    t.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    t.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return t


def _base(**kwargs):
    args = dict(num_classes=3, batch_size_per_image=512, positive_fraction=0.25,
                proposal_matcher=Matcher([0.5], [0, 1], allow_low_quality_matches=False))
    args.update(kwargs)
    return ROIHeads(**args)


def test_add_ground_truth_to_proposals():
    proposals = [_proposals([[0, 0, 10, 10]])]
    targets = [_targets([[1, 1, 5, 5], [2, 2, 8, 8]], [0, 1])]
    (out,) = add_ground_truth_to_proposals(targets, proposals)
    assert out.proposal_boxes.tensor.tolist() == [[0, 0, 10, 10], [1, 1, 5, 5], [2, 2, 8, 8]]
    assert set(out.get_fields()) == {"proposal_boxes", "objectness_logits"}
    assert out.objectness_logits[1:].tolist() == pytest.approx([math.log((1 - 1e-10) / 1e-10)] * 2, rel=1e-3)
    with pytest.raises(ValueError, match="same length"):
        add_ground_truth_to_proposals(targets, proposals * 2)
    (only_boxes,) = add_ground_truth_to_proposals([Boxes(torch.tensor([[3.0, 3, 4, 4]]))], proposals)
    assert len(only_boxes) == 2


def test_label_and_sample_proposals_labels_and_copies_gt_fields():
    heads = _base()
    proposals = [_proposals([[0, 0, 10, 10], [0, 0, 10, 30], [40, 40, 60, 60], [41, 41, 60, 60]])]
    targets = [_targets([[0, 0, 10, 11], [40, 40, 60, 60]], [2, 1])]
    targets[0].gt_extra = torch.tensor([7, 9])
    with EventStorage(0) as storage:
        (out,) = heads.label_and_sample_proposals(proposals, targets)
        stats = {k: v[0] for k, v in storage.latest().items()}
    # 4 proposals + 2 gt boxes, everything kept (batch 512); fg first, then bg
    assert len(out) == 6
    assert stats == {"roi_head/num_fg_samples": 5, "roi_head/num_bg_samples": 1}
    by_box = {tuple(b): (c, e) for b, c, e in zip(out.proposal_boxes.tensor.tolist(), out.gt_classes.tolist(),
                                                   out.gt_extra.tolist())}
    assert by_box[(0.0, 0.0, 10.0, 10.0)] == (2, 7)
    assert by_box[(41.0, 41.0, 60.0, 60.0)] == (1, 9)
    assert by_box[(0.0, 0.0, 10.0, 30.0)][0] == 3  # IoU 0.37: background
    assert out.gt_classes[-1].item() == 3
    assert out.gt_boxes.tensor.shape == (6, 4)


def test_sampling_respects_batch_size_fraction_and_ignore_label():
    heads = _base(batch_size_per_image=4, positive_fraction=0.5, proposal_append_gt=False,
                  proposal_matcher=Matcher([0.3, 0.5], [0, -1, 1], allow_low_quality_matches=False))
    boxes = [[0, 0, 10, 10]] * 3 + [[0, 0, 10, 25]] * 2 + [[50, 50, 60, 60]] * 5
    with EventStorage(0) as storage:
        torch.manual_seed(0)
        (out,) = heads.label_and_sample_proposals([_proposals(boxes)], [_targets([[0, 0, 10, 10]], [0])])
    # IoU 0.4 regions are ignored (-1) and never sampled
    assert len(out) == 4
    assert sorted(out.gt_classes.tolist()) == [0, 0, 3, 3]
    assert (0.0, 0.0, 10.0, 25.0) not in {tuple(b) for b in out.proposal_boxes.tensor.tolist()}
    assert storage.latest()["roi_head/num_fg_samples"][0] == 2


def test_image_without_ground_truth_gets_background_only():
    heads = _base(proposal_append_gt=True)
    with EventStorage(0):
        (out,) = heads.label_and_sample_proposals([_proposals([[0, 0, 10, 10], [5, 5, 9, 9]])], [_targets([], [])])
    assert out.gt_classes.tolist() == [3, 3]
    assert not out.has("gt_boxes")


def test_select_foreground_proposals():
    p = _proposals([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3]])
    p.gt_classes = torch.tensor([3, 1, -1])
    (fg,), (mask,) = select_foreground_proposals([p], bg_label=3)
    assert mask.tolist() == [False, True, False]
    assert fg.proposal_boxes.tensor.tolist() == [[0, 0, 2, 2]]
    with pytest.raises(ValueError, match="gt_classes"):
        select_foreground_proposals([_proposals([[0, 0, 1, 1]])], bg_label=3)


def test_select_proposals_with_visible_keypoints():
    p = _proposals([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    kps = torch.zeros(3, 2, 3)
    kps[0] = torch.tensor([[5.0, 5.0, 2.0], [50.0, 50.0, 2.0]])   # one visible inside
    kps[1] = torch.tensor([[25.0, 25.0, 0.0], [1.0, 1.0, 2.0]])   # inside but invisible; visible outside
    kps[2] = torch.tensor([[10.0, 10.0, 1.0], [0.0, 0.0, 0.0]])   # on the border counts as inside
    p.gt_keypoints = Keypoints(kps)
    with EventStorage(0) as storage:
        (out,) = select_proposals_with_visible_keypoints([p])
        assert storage.latest()["keypoint_head/num_fg_samples"][0] == 2
    assert out.proposal_boxes.tensor.tolist() == [[0, 0, 10, 10], [0, 0, 10, 10]]


def _fpn_cfg(mask=True, keypoint=False, pooler_type="ROIAlignV2"):
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.MASK_ON = mask
    cfg.MODEL.ROI_MASK_HEAD.NAME = "_TestMaskHead"
    cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE = pooler_type
    cfg.MODEL.KEYPOINT_ON = keypoint
    cfg.MODEL.ROI_KEYPOINT_HEAD.NAME = "_TestKeypointHead"
    return cfg


SHAPES = {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8)}


def _features():
    torch.manual_seed(0)
    return {"p2": torch.rand(1, 8, 16, 16), "p3": torch.rand(1, 8, 8, 8)}


def _train_inputs():
    proposals = [_proposals([[0, 0, 20, 20], [30, 30, 60, 60], [2, 2, 22, 22], [40, 0, 60, 10]])]
    targets = [_targets([[0, 0, 20, 21], [30, 30, 60, 62]], [2, 0])]
    kps = torch.tensor([[[5.0, 5.0, 2.0]], [[90.0, 90.0, 2.0]]])  # second gt: keypoint outside every box
    targets[0].gt_keypoints = Keypoints(kps)
    return proposals, targets


def test_standard_roi_heads_builds_detectron2_attributes():
    heads = StandardROIHeads(_fpn_cfg(mask=True, keypoint=True), SHAPES)
    assert heads.in_features == heads.box_in_features == ["p2", "p3"]
    assert heads.mask_in_features == heads.keypoint_in_features == ["p2", "p3"]
    assert isinstance(heads.box_pooler, ROIPooler) and isinstance(heads.mask_pooler, ROIPooler)
    assert isinstance(heads.keypoint_pooler, ROIPooler)
    assert isinstance(heads.box_head, FastRCNNConvFCHead)
    assert heads.box_predictor.cls_score.in_features == 16
    assert heads.mask_head.input_shape == ShapeSpec(channels=8, height=14, width=14)
    assert heads.keypoint_head.input_shape == ShapeSpec(channels=8, height=14, width=14)
    names = set(heads.state_dict())
    assert {"box_head.fc1.weight", "box_head.fc2.weight", "box_predictor.cls_score.weight",
            "box_predictor.bbox_pred.weight", "mask_head.scale", "keypoint_head.scale"} <= names


def test_training_feeds_foreground_regions_to_mask_and_keypoint_heads():
    heads = StandardROIHeads(_fpn_cfg(mask=True, keypoint=True), SHAPES).train()
    proposals, targets = _train_inputs()
    CALLS.clear()
    with EventStorage(0) as storage:
        _sampled, losses = heads(None, _features(), proposals, targets)
        stats = storage.latest()
    assert sorted(losses) == ["loss_box_reg", "loss_cls", "loss_keypoint", "loss_mask"]
    assert {"roi_head/num_fg_samples", "fast_rcnn/cls_accuracy", "keypoint_head/num_fg_samples"} <= set(stats)
    (mask_name, mask_features, mask_instances), (kp_name, _kp_features, kp_instances) = CALLS
    assert (mask_name, kp_name) == ("_TestMaskHead", "_TestKeypointHead")
    num_fg = int(stats["roi_head/num_fg_samples"][0])
    assert len(mask_instances[0]) == num_fg
    assert (mask_instances[0].gt_classes < 3).all()
    assert mask_features.shape == (num_fg, 8, 14, 14)
    # keypoint head: only regions with a visible keypoint inside (gt 0's)
    assert len(kp_instances[0]) == stats["keypoint_head/num_fg_samples"][0]
    assert (kp_instances[0].gt_classes == 2).all()
    sum(losses.values()).backward()


def test_inference_runs_sub_heads_on_detections():
    heads = StandardROIHeads(_fpn_cfg(mask=True, keypoint=True), SHAPES).eval()
    with torch.no_grad():
        heads.box_predictor.cls_score.bias.copy_(torch.tensor([5.0, 0, 0, 0]))
    proposals, _ = _train_inputs()
    CALLS.clear()
    with torch.no_grad():
        (det,), losses = heads(None, _features(), proposals)
    assert losses == {}
    assert len(det) > 0 and (det.pred_classes == 0).all()
    assert det.pred_masks.shape == (len(det), 1, 2, 2) and det.has("pred_keypoints")
    assert CALLS[0][1].shape == (len(det), 8, 14, 14)
    # forward_with_given_boxes: other boxes, same heads
    given = Instances((64, 64))
    given.pred_boxes = Boxes(torch.tensor([[1.0, 1, 9, 9]]))
    given.pred_classes = torch.tensor([1])
    (out,) = heads.forward_with_given_boxes(_features(), [given])
    assert out.pred_masks.shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="pred_boxes"):
        heads.forward_with_given_boxes(_features(), [_proposals([[0, 0, 1, 1]])])


def test_mask_head_without_pooler_gets_the_feature_dict():
    heads = StandardROIHeads(_fpn_cfg(mask=True, pooler_type=""), SHAPES).train()
    assert heads.mask_pooler is None
    assert heads.mask_head.input_shape == SHAPES
    proposals, targets = _train_inputs()
    CALLS.clear()
    with EventStorage(0):
        heads(None, _features(), proposals, targets)
    assert sorted(CALLS[0][1]) == ["p2", "p3"]


def test_train_on_pred_boxes_moves_the_mask_regions():
    cfg = _fpn_cfg(mask=True)
    cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = True
    heads = StandardROIHeads(cfg, SHAPES).train()
    with torch.no_grad():
        heads.box_predictor.bbox_pred.bias.fill_(0.5)  # every predicted box shifts right and down
    proposals, targets = _train_inputs()
    CALLS.clear()
    with EventStorage(0):
        _sampled, _ = heads(None, _features(), proposals, targets)
    boxes = CALLS[0][2][0].proposal_boxes.tensor
    assert not any(tuple(b) in {(0.0, 0.0, 20.0, 20.0), (30.0, 30.0, 60.0, 60.0)} for b in boxes.tolist())


def test_without_sub_heads_and_errors():
    heads = StandardROIHeads(_fpn_cfg(mask=False), SHAPES)
    assert not heads.mask_on and not heads.keypoint_on
    assert not hasattr(heads, "mask_head")
    proposals, _ = _train_inputs()
    with EventStorage(0), pytest.raises(ValueError, match="targets"):
        heads.train()(None, _features(), proposals, None)
    cfg = _fpn_cfg(mask=False)
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p9"]
    with pytest.raises(ValueError, match="p9"):
        StandardROIHeads(cfg, SHAPES)
    cfg = _fpn_cfg(mask=True)
    cfg.MODEL.ROI_MASK_HEAD.NAME = "NoSuchMaskHead"
    with pytest.raises(LookupError, match="NoSuchMaskHead"):
        StandardROIHeads(cfg, SHAPES)


def test_res5_roi_heads_shares_res5_features_with_the_mask_head():
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NAME = "Res5ROIHeads"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 8
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 2
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 4
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_MASK_HEAD.NAME = "_TestMaskHead"
    heads = Res5ROIHeads(cfg, {"res4": ShapeSpec(channels=32, stride=16)}).train()
    assert heads.in_features == ["res4"]
    assert heads.mask_head.input_shape == ShapeSpec(channels=64, height=4, width=4)
    assert heads.box_predictor.cls_score.in_features == 64
    assert {"res5.0.shortcut.weight", "res5.2.conv3.norm.weight", "box_predictor.bbox_pred.weight"} <= set(heads.state_dict())
    features = {"res4": torch.rand(1, 32, 4, 4)}
    proposals, targets = _train_inputs()
    CALLS.clear()
    with EventStorage(0) as storage:
        out, losses = heads(None, features, proposals, targets)
        num_fg = int(storage.latest()["roi_head/num_fg_samples"][0])
    assert out == [] and sorted(losses) == ["loss_box_reg", "loss_cls", "loss_mask"]
    # res5 halves the 4x4 pooled map
    assert CALLS[0][1].shape == (num_fg, 64, 2, 2)
    heads.eval()
    with torch.no_grad():
        heads.box_predictor.cls_score.bias.copy_(torch.tensor([9.0, 0, 0, 0]))
        (det,), _ = heads(None, features, proposals)
    assert det.has("pred_masks") and len(det) > 0
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["res4", "res3"]
    with pytest.raises(ValueError, match="one feature map"):
        Res5ROIHeads(cfg, {"res4": ShapeSpec(channels=32, stride=16)})


def test_bad_inputs_are_clear_errors():
    heads = StandardROIHeads(_fpn_cfg(mask=False), SHAPES).eval()
    with pytest.raises(TypeError, match="list of Instances"):
        heads(None, _features(), Boxes(torch.zeros(1, 4)))
    bad = Instances((64, 64))
    bad.pred_boxes = Boxes(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="proposal_boxes"):
        heads(None, _features(), [bad])
    with pytest.raises(KeyError, match="missing"):
        heads(None, {"p2": _features()["p2"]}, [_proposals([[0, 0, 4, 4]])])


def test_images_without_ground_truth_or_proposals():
    heads = StandardROIHeads(_fpn_cfg(mask=True), SHAPES).train()
    proposals, _ = _train_inputs()
    empty_gt = _targets([], [])
    CALLS.clear()
    with EventStorage(0) as storage:
        _, losses = heads(None, _features(), proposals, [empty_gt])
        assert storage.latest()["roi_head/num_fg_samples"][0] == 0
    # no foreground: zero (but connected) box and mask losses
    assert losses["loss_box_reg"].item() == 0.0
    assert len(CALLS[0][2][0]) == 0
    sum(losses.values()).backward()

    heads.eval()
    none = _proposals([])
    with torch.no_grad():
        (det,), _ = heads(None, _features(), [none])
    assert len(det) == 0 and det.has("pred_masks")
