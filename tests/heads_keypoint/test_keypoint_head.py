"""KRCNNConvDeconvUpsampleHead, keypoint_rcnn_loss and keypoint_rcnn_inference behave as detectron2's.

Hand-made cases whose values follow from the definitions: a keypoint's target is the heatmap cell
it falls in (floor of its position scaled into the box), the loss is the cross-entropy of the
S x S softmax summed over visible keypoints and divided by the normalizer, and decoding takes the
arg-max of the box-sized upsampling, at its cell centre.
"""

from __future__ import annotations

import math

import pytest
import torch

from det.core import EventStorage, get_cfg
from det.core.layers import ShapeSpec
from det.core.registry import get_component
from det.heads.keypoint import (
    BaseKeypointRCNNHead,
    KRCNNConvDeconvUpsampleHead,
    build_keypoint_head,
    keypoint_rcnn_inference,
    keypoint_rcnn_loss,
)
from det.structures import Boxes, Instances, Keypoints


def _cfg(**keypoint_head):
    cfg = get_cfg()
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (8, 8, 8)
    for key, value in keypoint_head.items():
        cfg.MODEL.ROI_KEYPOINT_HEAD[key] = value
    return cfg


def _regions(keypoints, boxes=((0.0, 0.0, 8.0, 8.0),)) -> Instances:
    inst = Instances((16, 16))
    inst.proposal_boxes = Boxes(torch.tensor(boxes))
    inst.gt_keypoints = Keypoints(torch.tensor(keypoints))
    return inst


# --- the head ---------------------------------------------------------------------------------


def test_head_from_config_has_detectron2_parameter_names_and_shapes():
    head = KRCNNConvDeconvUpsampleHead(_cfg(), ShapeSpec(channels=16, height=14, width=14))
    assert [name for name, _ in head.named_children()] == [
        "conv_fcn1", "conv_fcn_relu1", "conv_fcn2", "conv_fcn_relu2", "conv_fcn3", "conv_fcn_relu3",
        "score_lowres"]
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "conv_fcn1.weight": (8, 16, 3, 3), "conv_fcn1.bias": (8,),
        "conv_fcn2.weight": (8, 8, 3, 3), "conv_fcn2.bias": (8,),
        "conv_fcn3.weight": (8, 8, 3, 3), "conv_fcn3.bias": (8,),
        "score_lowres.weight": (8, 17, 4, 4), "score_lowres.bias": (17,),
    }
    # 14 -> 28 (stride-2 deconv, kernel 4, padding 1) -> 56 (2x bilinear)
    assert head.layers(torch.rand(3, 16, 14, 14)).shape == (3, 17, 56, 56)
    assert head.up_scale == 2.0 and head.num_keypoints == 17 and head.loss_weight == 1.0
    assert head.loss_normalizer == "visible"


def test_head_init_follows_detectron2():
    torch.manual_seed(0)
    head = KRCNNConvDeconvUpsampleHead(ShapeSpec(channels=16), num_keypoints=17, conv_dims=[64, 64])
    assert all(torch.count_nonzero(p) == 0 for n, p in head.named_parameters() if n.endswith("bias"))
    # MSRA fill, fan_out: conv 64 * 3 * 3; the deconv's "fan_out" (dim 1) is 17 * 4 * 4
    assert head.conv_fcn2.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert head.score_lowres.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 16)), rel=0.05)


def test_loss_normalizer_from_config():
    head = KRCNNConvDeconvUpsampleHead(
        _cfg(NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS=False, LOSS_WEIGHT=4.0), ShapeSpec(channels=16)
    )
    # expected visible keypoints per image: K * BATCH_SIZE_PER_IMAGE * POSITIVE_FRACTION
    assert head.loss_normalizer == 17 * 512 * 0.25
    assert head.loss_weight == 4.0


def test_head_is_found_through_the_registry_and_built_by_name():
    assert get_component("ROI_KEYPOINT_HEAD", "KRCNNConvDeconvUpsampleHead") is KRCNNConvDeconvUpsampleHead
    head = build_keypoint_head(_cfg(), ShapeSpec(channels=16, height=14, width=14))
    assert isinstance(head, KRCNNConvDeconvUpsampleHead) and isinstance(head, BaseKeypointRCNNHead)


def test_head_rejects_bad_arguments_with_clear_errors():
    with pytest.raises(ValueError, match="loss_normalizer"):
        KRCNNConvDeconvUpsampleHead(ShapeSpec(channels=16), num_keypoints=17, conv_dims=[8], loss_normalizer="all")
    with pytest.raises(ValueError, match="num_keypoints"):
        KRCNNConvDeconvUpsampleHead(ShapeSpec(channels=16), num_keypoints=0, conv_dims=[8])
    with pytest.raises(ValueError, match="ShapeSpec"):
        KRCNNConvDeconvUpsampleHead(None, num_keypoints=17, conv_dims=[8])
    head = KRCNNConvDeconvUpsampleHead(ShapeSpec(channels=16), num_keypoints=17, conv_dims=[8])
    with pytest.raises(ValueError, match=r"\(N, 16, H, W\)"):
        head.layers(torch.rand(2, 3, 14, 14))


# --- the loss ---------------------------------------------------------------------------------


def test_targets_are_the_cells_the_keypoints_fall_in():
    # box 8 px wide, 4 cells: x = 3 -> cell 1, y = 5 -> cell 2: flat index 2 * 4 + 1 = 9
    kpts = Keypoints(torch.tensor([[[3.0, 5.0, 2.0], [9.0, 1.0, 2.0], [1.0, 1.0, 0.0]]]))
    heatmaps, valid = kpts.to_heatmap(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), 4)
    assert heatmaps.tolist() == [[9, 0, 0]]
    assert valid.tolist() == [[1, 0, 0]]  # outside the box; not labelled


def test_loss_is_the_heatmap_cross_entropy_of_visible_keypoints():
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 0].view(-1)[9] = 10.0  # a confident, correct prediction for keypoint 0
    logits.requires_grad_()
    regions = [_regions([[[3.0, 5.0, 2.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]])]  # v=1 counts, v=0 does not
    with EventStorage():
        loss = keypoint_rcnn_loss(logits, regions, normalizer=None)
    # keypoint 0: -log(e^10 / (e^10 + 15)); keypoint 1 (cell 0, uniform logits): log 16; two visible
    expected = (math.log1p(15 * math.exp(-10)) + math.log(16)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad[0, 2].abs().sum() == 0  # the unlabelled keypoint is not trained

    with EventStorage():
        assert keypoint_rcnn_loss(logits, regions, normalizer=4.0).item() == pytest.approx(expected * 2 / 4, rel=1e-6)


def test_head_normalizer_scales_with_images_and_loss_weight():
    head = KRCNNConvDeconvUpsampleHead(
        ShapeSpec(channels=4), num_keypoints=2, conv_dims=[], loss_weight=3.0, loss_normalizer=5.0
    )
    torch.nn.init.zeros_(head.score_lowres.weight)
    regions = [_regions([[[3.0, 5.0, 2.0], [1.0, 1.0, 2.0]]]), _regions([[[3.0, 5.0, 2.0], [1.0, 1.0, 0.0]]])]
    with EventStorage():
        losses = head(torch.rand(2, 4, 2, 2), regions)
    # logits are 0 everywhere: every visible keypoint costs log(8 * 8); 3 visible; 2 images * 5.0
    assert list(losses) == ["loss_keypoint"]
    assert losses["loss_keypoint"].item() == pytest.approx(3.0 * 3 * math.log(64) / (2 * 5.0), rel=1e-6)


def test_batch_without_visible_keypoints_is_skipped_and_counted():
    logits = torch.rand(1, 2, 4, 4, requires_grad=True)
    invisible = [_regions([[[3.0, 5.0, 0.0], [1.0, 1.0, 0.0]]])]
    with EventStorage() as storage:
        loss = keypoint_rcnn_loss(logits, invisible, normalizer=None)
        first = storage.latest()["kpts_num_skipped_batches"][0]
        keypoint_rcnn_loss(logits, invisible, normalizer=None)
        second = storage.latest()["kpts_num_skipped_batches"][0]
    assert loss.item() == 0.0 and loss.requires_grad
    assert second == first + 1  # a running count over the process, as detectron2's


def test_loss_bad_inputs_raise_clear_errors():
    regions = [_regions([[[3.0, 5.0, 2.0], [1.0, 1.0, 2.0]]])]
    with EventStorage():
        with pytest.raises(ValueError, match="2 keypoint predictions for 1 regions"):
            keypoint_rcnn_loss(torch.zeros(2, 2, 4, 4), regions, normalizer=None)
        no_kpts = Instances((8, 8), proposal_boxes=Boxes(torch.zeros(1, 4)))
        with pytest.raises(ValueError, match="gt_keypoints"):
            keypoint_rcnn_loss(torch.zeros(1, 2, 4, 4), [no_kpts], normalizer=None)
        with pytest.raises(ValueError, match=r"\(N, K, S, S\)"):
            keypoint_rcnn_loss(torch.zeros(2, 4, 4), regions, normalizer=None)


# --- inference --------------------------------------------------------------------------------


def test_inference_decodes_the_peak_at_its_cell_centre_in_image_coordinates():
    # The box is as large as the heatmap, so the upsampling is the identity.
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 0, 1, 2] = 10.0
    logits[0, 1, 3, 0] = 5.0
    detections = Instances((40, 40), pred_boxes=Boxes(torch.tensor([[10.0, 20.0, 14.0, 24.0]])))
    keypoint_rcnn_inference(logits, [detections])
    assert detections.pred_keypoints.shape == (1, 2, 3)
    torch.testing.assert_close(detections.pred_keypoints[0, :, :2], torch.tensor([[12.5, 21.5], [10.5, 23.5]]))
    # the score is the peak's softmax over the S x S map
    scores = torch.tensor([1 / (1 + 15 * math.exp(-10)), 1 / (1 + 15 * math.exp(-5))])
    torch.testing.assert_close(detections.pred_keypoints[0, :, 2], scores)
    assert torch.equal(detections.pred_keypoint_heatmaps, logits)


def test_inference_splits_per_image_and_scales_with_the_box():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 4, 4)
    first = Instances((40, 40), pred_boxes=Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 6.0, 6.0]])))
    second = Instances((40, 40), pred_boxes=Boxes(torch.tensor([[4.0, 4.0, 12.0, 12.0]])))
    keypoint_rcnn_inference(logits, [first, second])
    assert first.pred_keypoints.shape == (2, 2, 3) and second.pred_keypoints.shape == (1, 2, 3)
    assert torch.equal(second.pred_keypoint_heatmaps, logits[2:])
    # the same map in a box moved by (4, 4): the keypoints move by (4, 4), the scores stay
    origin = Instances((40, 40), pred_boxes=Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]])))
    keypoint_rcnn_inference(logits[2:], [origin])
    torch.testing.assert_close(second.pred_keypoints[..., :2], origin.pred_keypoints[..., :2] + 4)
    torch.testing.assert_close(second.pred_keypoints[..., 2], origin.pred_keypoints[..., 2])
    assert ((first.pred_keypoints[0, :, :2] >= 0) & (first.pred_keypoints[0, :, :2] <= 8)).all()


def test_inference_with_no_detections_gives_empty_fields():
    detections = Instances((40, 40), pred_boxes=Boxes(torch.zeros(0, 4)))
    keypoint_rcnn_inference(torch.zeros(0, 17, 56, 56), [detections])
    assert detections.pred_keypoints.shape == (0, 17, 3)
    assert detections.pred_keypoint_heatmaps.shape == (0, 17, 56, 56)


def test_inference_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="2 keypoint predictions for 1 regions"):
        keypoint_rcnn_inference(torch.zeros(2, 2, 4, 4), [Instances((5, 5), pred_boxes=Boxes(torch.zeros(1, 4)))])
    with pytest.raises(ValueError, match="pred_boxes"):
        keypoint_rcnn_inference(torch.zeros(1, 2, 4, 4), [Instances((5, 5), scores=torch.zeros(1))])


# --- inside StandardROIHeads ------------------------------------------------------------------


def _roi_heads():
    from det.core import build_roi_heads

    cfg = get_cfg()
    cfg.MODEL.KEYPOINT_ON = True
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC, cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 1, 16
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (8,)
    torch.manual_seed(0)
    shapes = {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8)}
    return build_roi_heads(cfg, shapes)


def test_roi_heads_train_the_keypoint_head_on_foreground_with_visible_keypoints():
    heads = _roi_heads().train()
    features = {"p2": torch.rand(1, 8, 16, 16), "p3": torch.rand(1, 8, 8, 8)}
    proposals = Instances((64, 64), proposal_boxes=Boxes(torch.tensor([[0.0, 0.0, 30.0, 30.0], [40.0, 40.0, 60.0, 60.0]])),
                          objectness_logits=torch.zeros(2))
    target = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[2.0, 2.0, 30.0, 30.0], [40.0, 40.0, 62.0, 62.0]])),
                       gt_classes=torch.tensor([0, 0]))
    kpts = torch.zeros(2, 17, 3)
    kpts[0, :, :2], kpts[0, :3, 2] = 10.0, 2.0  # person 0: three visible keypoints
    kpts[1, :, :2] = 50.0                       # person 1: nothing labelled
    target.gt_keypoints = Keypoints(kpts)
    with EventStorage() as storage:
        _, losses = heads(None, features, [proposals], [target])
        stats = {k: v[0] for k, v in storage.latest().items()}
    assert isinstance(heads.keypoint_head, KRCNNConvDeconvUpsampleHead)
    assert sorted(losses) == ["loss_box_reg", "loss_cls", "loss_keypoint"]
    # foreground: 2 proposals + 2 appended gt boxes; only those matched to person 0 are kept
    assert stats["keypoint_head/num_fg_samples"] == 2
    assert losses["loss_keypoint"].item() > 0


def test_roi_heads_batch_without_visible_keypoints_gives_a_zero_keypoint_loss():
    heads = _roi_heads().train()
    features = {"p2": torch.rand(1, 8, 16, 16), "p3": torch.rand(1, 8, 8, 8)}
    proposals = Instances((64, 64), proposal_boxes=Boxes(torch.tensor([[0.0, 0.0, 30.0, 30.0]])),
                          objectness_logits=torch.zeros(1))
    target = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[2.0, 2.0, 30.0, 30.0]])), gt_classes=torch.tensor([0]),
                       gt_keypoints=Keypoints(torch.full((1, 17, 3), 10.0) * torch.tensor([1.0, 1.0, 0.0])))
    with EventStorage() as storage:
        _, losses = heads(None, features, [proposals], [target])
        stats = storage.latest()
    assert losses["loss_keypoint"].item() == 0.0 and losses["loss_keypoint"].requires_grad
    assert stats["keypoint_head/num_fg_samples"][0] == 0
    assert stats["kpts_num_skipped_batches"][0] >= 1
