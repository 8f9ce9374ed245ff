"""Rotated Fast R-CNN: ROI heads for ``RotatedBoxes`` (``RROIHeads``), the partner of ``RRPN``."""

from __future__ import annotations

import torch

from det.core.config import configurable
from det.core.layers import batched_nms_rotated, box_iou_rotated
from det.core.modeling import Box2BoxTransformRotated
from det.heads.roi.fast_rcnn import FastRCNNOutputLayers, _inference_single_image
from det.heads.roi.roi_heads import StandardROIHeads
from det.structures import RotatedBoxes

__all__ = [
    "RROIHeads",
    "RotatedFastRCNNOutputLayers",
    "fast_rcnn_inference_rotated",
    "fast_rcnn_inference_single_image_rotated",
]


def fast_rcnn_inference_rotated(boxes: list[torch.Tensor], scores: list[torch.Tensor],
                                image_shapes: list[tuple[int, int]], score_thresh: float, nms_thresh: float,
                                topk_per_image: int):
    """:func:`fast_rcnn_inference` for rotated boxes: ``boxes`` are (Ri, K*5) or (Ri, 5) per image
    and NMS is rotated. Returns per-image ``Instances`` (``pred_boxes`` as RotatedBoxes) and the
    indices of the regions kept."""
    result_per_image = [
        fast_rcnn_inference_single_image_rotated(
            boxes_per_image, scores_per_image, image_shape, score_thresh, nms_thresh, topk_per_image
        )
        for scores_per_image, boxes_per_image, image_shape in zip(scores, boxes, image_shapes)
    ]
    return [x[0] for x in result_per_image], [x[1] for x in result_per_image]


def fast_rcnn_inference_single_image_rotated(boxes, scores, image_shape, score_thresh, nms_thresh, topk_per_image):
    """:func:`fast_rcnn_inference_rotated` for one image."""
    return _inference_single_image(
        boxes, scores, image_shape, score_thresh, nms_thresh, topk_per_image, RotatedBoxes, 5, batched_nms_rotated
    )


class RotatedFastRCNNOutputLayers(FastRCNNOutputLayers):
    """``FastRCNNOutputLayers`` for rotated boxes: 5 deltas per class, rotated inference.

    Invariant: ``box2box_transform`` is a ``Box2BoxTransformRotated`` (5 weights)::

        predictor = RotatedFastRCNNOutputLayers(ShapeSpec(channels=64), num_classes=3,
                                                box2box_transform=Box2BoxTransformRotated((10, 10, 5, 5, 1)))
        scores, deltas = predictor(torch.rand(8, 64))   # (8, 4), (8, 15)
    """

    @classmethod
    def from_config(cls, cfg, input_shape):
        args = super().from_config(cfg, input_shape)
        args["box2box_transform"] = Box2BoxTransformRotated(weights=cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS)
        return args

    def inference(self, predictions, proposals):
        return self._inference_with(fast_rcnn_inference_rotated, predictions, proposals)


class RROIHeads(StandardROIHeads):
    """ROI heads for rotated proposals (from ``RRPN``): rotated IoU matching, ``ROIAlignRotated``
    pooling and a rotated box predictor. Boxes only: no mask or keypoint head.

    Invariant: proposals and ground truth are ``RotatedBoxes``; detections are RotatedBoxes::

        cfg.MODEL.ROI_HEADS.NAME = "RROIHeads"
        cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignRotated"
        heads = RROIHeads(cfg, backbone.output_shape())
    """

    @configurable
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.mask_on or self.keypoint_on:
            raise ValueError("Mask/Keypoints not supported in Rotated ROIHeads (RROIHeads).")
        if self.train_on_pred_boxes:
            raise ValueError("train_on_pred_boxes not implemented for RROIHeads!")

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        pooler_type = cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE
        if pooler_type != "ROIAlignRotated":
            raise ValueError(
                f"RROIHeads pools rotated boxes: MODEL.ROI_BOX_HEAD.POOLER_TYPE must be ROIAlignRotated, got {pooler_type!r}"
            )
        return super()._init_box_head(cfg, input_shape)

    @classmethod
    def _build_box_predictor(cls, cfg, input_shape):
        return RotatedFastRCNNOutputLayers(cfg, input_shape)

    def _match_quality(self, targets_per_image, proposals_per_image):
        # label_and_sample_proposals matches with rotated IoU ...
        return box_iou_rotated(targets_per_image.gt_boxes.tensor, proposals_per_image.proposal_boxes.tensor)

    def _attach_targets(self, proposals_per_image, targets_per_image, sampled_targets):
        # ... and attaches only gt_boxes (and gt_classes), as detectron2's RROIHeads does
        proposals_per_image.gt_boxes = targets_per_image.gt_boxes[sampled_targets]
