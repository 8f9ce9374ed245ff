"""MaskRCNNConvUpsampleHead, mask_rcnn_loss and mask_rcnn_inference behave as detectron2's.

Small hand-made cases whose exact values follow from the definitions: targets are the gt masks
cropped to each region's box (ROIAlign for BitMasks, rasterization for PolygonMasks) at the
prediction's resolution, the loss is the mean per-pixel BCE of the gt class' channel, and the
statistics count pixels with logit > 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from det.core import EventStorage, get_cfg
from det.core.layers import ShapeSpec
from det.core.registry import get_component
from det.heads.mask import (
    BaseMaskRCNNHead,
    MaskRCNNConvUpsampleHead,
    build_mask_head,
    mask_rcnn_inference,
    mask_rcnn_loss,
)
from det.structures import BitMasks, Boxes, Instances, PolygonMasks


def _cfg(**mask_head):
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 4  # the model zoo's value (the default is 0)
    for key, value in mask_head.items():
        cfg.MODEL.ROI_MASK_HEAD[key] = value
    return cfg


def _left_half_and_full_bitmasks() -> BitMasks:
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :, :4] = True  # left half
    masks[1] = True
    return BitMasks(masks)


def _left_half_and_full_polygons() -> PolygonMasks:
    return PolygonMasks([
        [np.array([0.0, 0.0, 4.0, 0.0, 4.0, 8.0, 0.0, 8.0])],
        [np.array([0.0, 0.0, 8.0, 0.0, 8.0, 8.0, 0.0, 8.0])],
    ])


def _regions(gt_masks, gt_classes=(2, 0)) -> Instances:
    inst = Instances((8, 8))
    inst.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2))
    inst.gt_classes = torch.tensor(gt_classes)
    inst.gt_masks = gt_masks
    return inst


# --- the head ---------------------------------------------------------------------------------


def test_head_from_config_has_detectron2_parameter_names_and_shapes():
    head = MaskRCNNConvUpsampleHead(_cfg(), ShapeSpec(channels=16, height=14, width=14))
    assert [name for name, _ in head.named_children()] == [
        "mask_fcn1", "mask_fcn2", "mask_fcn3", "mask_fcn4", "deconv", "deconv_relu", "predictor"]
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "mask_fcn1.weight": (8, 16, 3, 3), "mask_fcn1.bias": (8,),
        "mask_fcn2.weight": (8, 8, 3, 3), "mask_fcn2.bias": (8,),
        "mask_fcn3.weight": (8, 8, 3, 3), "mask_fcn3.bias": (8,),
        "mask_fcn4.weight": (8, 8, 3, 3), "mask_fcn4.bias": (8,),
        "deconv.weight": (8, 8, 2, 2), "deconv.bias": (8,),
        "predictor.weight": (3, 8, 1, 1), "predictor.bias": (3,),
    }
    assert head.layers(torch.rand(5, 16, 14, 14)).shape == (5, 3, 28, 28)
    assert head.vis_period == 0 and head.loss_weight == 1.0


def test_head_init_follows_detectron2():
    torch.manual_seed(0)
    head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=16), num_classes=80, conv_dims=[64, 64])
    # MSRA fill (fan_out, ReLU gain) on convs and deconv, zero biases; predictor N(0, 0.001)
    assert torch.count_nonzero(head.mask_fcn1.bias) == 0 and torch.count_nonzero(head.predictor.bias) == 0
    assert head.mask_fcn1.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert head.predictor.weight.std().item() == pytest.approx(0.001, rel=0.1)


def test_head_class_agnostic_norm_and_num_conv_from_config():
    head = MaskRCNNConvUpsampleHead(
        _cfg(CLS_AGNOSTIC_MASK=True, NORM="GN", NUM_CONV=2, CONV_DIM=32), ShapeSpec(channels=16)
    )
    keys = set(head.state_dict())
    assert "mask_fcn1.norm.weight" in keys and "mask_fcn1.bias" not in keys  # norm replaces the bias
    assert "mask_fcn3.weight" not in keys
    assert head.predictor.out_channels == 1
    assert head.layers(torch.rand(2, 16, 7, 7)).shape == (2, 1, 14, 14)


def test_head_is_found_through_the_registry_and_built_by_name():
    assert get_component("ROI_MASK_HEAD", "MaskRCNNConvUpsampleHead") is MaskRCNNConvUpsampleHead
    head = build_mask_head(_cfg(), ShapeSpec(channels=16, height=14, width=14))
    assert isinstance(head, MaskRCNNConvUpsampleHead) and isinstance(head, BaseMaskRCNNHead)


def test_head_rejects_bad_arguments_with_clear_errors():
    with pytest.raises(ValueError, match="conv_dims must be non-empty"):
        MaskRCNNConvUpsampleHead(ShapeSpec(channels=16), num_classes=3, conv_dims=[])
    with pytest.raises(ValueError, match="num_classes"):
        MaskRCNNConvUpsampleHead(ShapeSpec(channels=16), num_classes=0, conv_dims=[8])
    with pytest.raises(ValueError, match="ShapeSpec"):
        MaskRCNNConvUpsampleHead(16, num_classes=3, conv_dims=[8])
    head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=16), num_classes=3, conv_dims=[8, 8])
    with pytest.raises(ValueError, match=r"\(N, 16, H, W\)"):
        head.layers(torch.rand(2, 4, 14, 14))


def test_head_empty_batch_gives_empty_predictions():
    head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=16), num_classes=3, conv_dims=[8, 8]).eval()
    detections = Instances((20, 20), pred_boxes=Boxes(torch.zeros(0, 4)), pred_classes=torch.zeros(0, dtype=torch.long))
    (out,) = head(torch.zeros(0, 16, 14, 14), [detections])
    assert out.pred_masks.shape == (0, 1, 28, 28)


# --- the loss ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gt_masks", [_left_half_and_full_bitmasks(), _left_half_and_full_polygons()],
                         ids=["BitMasks", "PolygonMasks"])
def test_targets_are_gt_masks_cropped_to_the_box(gt_masks):
    targets = gt_masks.crop_and_resize(torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2), 4)
    expected = torch.zeros(2, 4, 4, dtype=torch.bool)
    expected[0, :, :2] = True
    expected[1] = True
    assert torch.equal(targets, expected)


@pytest.mark.parametrize("gt_masks", [_left_half_and_full_bitmasks(), _left_half_and_full_polygons()],
                         ids=["BitMasks", "PolygonMasks"])
def test_loss_uses_the_gt_class_channel_and_reports_pixel_statistics(gt_masks):
    # channel c holds the constant logit c: region 0 (class 2) predicts 2 everywhere, region 1
    # (class 0) predicts 0 everywhere.
    logits = torch.arange(3.0).view(1, 3, 1, 1).expand(2, 3, 4, 4).clone().requires_grad_()
    with EventStorage() as storage:
        loss = mask_rcnn_loss(logits, [_regions(gt_masks)])
    # region 0: 8 positives and 8 negatives at logit 2; region 1: 16 positives at logit 0
    expected = (8 * math.log1p(math.exp(-2)) + 8 * math.log1p(math.exp(2)) + 16 * math.log(2)) / 32
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    latest = {k: v[0] for k, v in storage.latest().items()}
    # wrong: region 0's 8 negatives (false positives) and region 1's 16 positives (false negatives)
    assert latest == pytest.approx({"mask_rcnn/accuracy": 1 - 24 / 32, "mask_rcnn/false_positive": 8 / 8,
                                    "mask_rcnn/false_negative": 16 / 24})
    loss.backward()
    assert logits.grad[:, 1].abs().sum() == 0  # only the gt class' channel is trained


def test_loss_class_agnostic_and_loss_weight():
    head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=4), num_classes=1, conv_dims=[4], loss_weight=3.0)
    torch.nn.init.zeros_(head.predictor.weight)
    with EventStorage() as storage:
        losses = head(torch.rand(2, 4, 2, 2), [_regions(_left_half_and_full_bitmasks())])
    assert list(losses) == ["loss_mask"]
    assert losses["loss_mask"].item() == pytest.approx(3 * math.log(2), rel=1e-6)  # logits 0: BCE = log 2
    assert storage.latest()["mask_rcnn/accuracy"][0] == pytest.approx(1 - 24 / 32)


def test_loss_without_foreground_is_a_connected_zero():
    logits = torch.rand(0, 3, 28, 28, requires_grad=True)
    empty = Instances((8, 8), proposal_boxes=Boxes(torch.zeros(0, 4)), gt_classes=torch.zeros(0, dtype=torch.long))
    with EventStorage() as storage:
        loss = mask_rcnn_loss(logits, [empty, empty])
    assert loss.item() == 0.0 and loss.requires_grad
    assert "mask_rcnn/accuracy" not in storage.latest()


def test_loss_puts_visualisations_every_vis_period():
    logits = torch.zeros(2, 3, 4, 4)
    with EventStorage(start_iter=10) as storage:
        mask_rcnn_loss(logits, [_regions(_left_half_and_full_bitmasks())], vis_period=5)
    names = [name for name, _, _ in storage._vis_data]
    assert names == ["Left: mask prediction;   Right: mask GT (0)", "Left: mask prediction;   Right: mask GT (1)"]
    assert storage._vis_data[0][1].shape == (3, 4, 8)  # prediction | target side by side


def test_loss_bad_inputs_raise_clear_errors():
    regions = [_regions(_left_half_and_full_bitmasks())]
    with EventStorage():
        with pytest.raises(ValueError, match="3 mask predictions for 2 regions"):
            mask_rcnn_loss(torch.zeros(3, 3, 4, 4), regions)
        with pytest.raises(ValueError, match="square"):
            mask_rcnn_loss(torch.zeros(2, 3, 4, 5), regions)
        no_masks = Instances((8, 8), proposal_boxes=Boxes(torch.zeros(1, 4)), gt_classes=torch.tensor([1]))
        with pytest.raises(ValueError, match="gt_masks"):
            mask_rcnn_loss(torch.zeros(1, 3, 4, 4), [no_masks])
        with pytest.raises(TypeError, match="list of Instances"):
            mask_rcnn_loss(torch.zeros(2, 3, 4, 4), regions[0])


def test_loss_needs_an_event_storage():
    with pytest.raises(Exception, match="EventStorage"):
        mask_rcnn_loss(torch.zeros(2, 3, 4, 4), [_regions(_left_half_and_full_bitmasks())])


# --- inference --------------------------------------------------------------------------------


def test_inference_takes_the_predicted_class_channel_per_image():
    logits = torch.arange(3.0).view(1, 3, 1, 1).expand(3, 3, 2, 2).clone()
    first = Instances((10, 10), pred_classes=torch.tensor([2, 0]))
    second = Instances((10, 10), pred_classes=torch.tensor([1]))
    mask_rcnn_inference(logits, [first, second])
    assert first.pred_masks.shape == (2, 1, 2, 2) and second.pred_masks.shape == (1, 1, 2, 2)
    torch.testing.assert_close(first.pred_masks[:, 0, 0, 0], torch.sigmoid(torch.tensor([2.0, 0.0])))
    torch.testing.assert_close(second.pred_masks[0, 0], torch.full((2, 2), torch.sigmoid(torch.tensor(1.0)).item()))


def test_inference_class_agnostic_ignores_pred_classes():
    logits = torch.tensor([[[[0.0, 10.0], [-10.0, 0.0]]]])
    detections = Instances((10, 10), pred_boxes=Boxes(torch.zeros(1, 4)))
    mask_rcnn_inference(logits, [detections])
    torch.testing.assert_close(detections.pred_masks, torch.sigmoid(logits))


def test_inference_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="2 mask predictions for 1 detections"):
        mask_rcnn_inference(torch.zeros(2, 3, 4, 4), [Instances((5, 5), pred_classes=torch.tensor([0]))])
    with pytest.raises(ValueError, match="pred_classes"):
        mask_rcnn_inference(torch.zeros(1, 3, 4, 4), [Instances((5, 5), pred_boxes=Boxes(torch.zeros(1, 4)))])
    with pytest.raises(ValueError, match=r"\(B, C, M, M\)"):
        mask_rcnn_inference(torch.zeros(3, 4, 4), [Instances((5, 5), pred_classes=torch.tensor([0]))])
