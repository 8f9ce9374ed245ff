"""det.core.modeling: detectron2's ``detectron2.modeling`` core (everything but backbones and heads).

Names are imported on first use, so ``import det.core.modeling`` stays cheap::

    from det.core.modeling import build_model, Box2BoxTransform, ROIPooler
    model = build_model(cfg)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import lazy_exports

_LAZY = {
    "Backbone": "det.core.modeling.backbone",
    "BOX_REG_LOSS_TYPES": "det.core.modeling.box_regression",
    "Box2BoxTransform": "det.core.modeling.box_regression",
    "Box2BoxTransformRotated": "det.core.modeling.box_regression",
    "Box2BoxTransformLinear": "det.core.modeling.box_regression",
    "_dense_box_regression_loss": "det.core.modeling.box_regression",
    "Matcher": "det.core.modeling.matcher",
    "subsample_labels": "det.core.modeling.sampling",
    "DefaultAnchorGenerator": "det.core.modeling.anchor_generator",
    "RotatedAnchorGenerator": "det.core.modeling.anchor_generator",
    "build_anchor_generator": "det.core.modeling.anchor_generator",
    "ROIPooler": "det.core.modeling.poolers",
    "assign_boxes_to_levels": "det.core.modeling.poolers",
    "convert_boxes_to_pooler_format": "det.core.modeling.poolers",
    "detector_postprocess": "det.core.modeling.postprocessing",
    "sem_seg_postprocess": "det.core.modeling.postprocessing",
    "check_batched_inputs": "det.core.modeling.inputs",
    "require_event_storage": "det.core.modeling.inputs",
    "normalize_and_pad_images": "det.core.modeling.inputs",
    "draw_boxes": "det.core.modeling.vis",
    "to_rgb_uint8": "det.core.modeling.vis",
    "GeneralizedRCNN": "det.core.modeling.meta_arch",
    "ProposalNetwork": "det.core.modeling.meta_arch",
    "build_model": "det.core.modeling.build",
    "build_backbone": "det.core.modeling.build",
    "build_proposal_generator": "det.core.modeling.build",
    "build_roi_heads": "det.core.modeling.build",
    "build_sem_seg_head": "det.core.modeling.build",
}

if TYPE_CHECKING:
    from det.core.modeling.anchor_generator import (
        DefaultAnchorGenerator,
        RotatedAnchorGenerator,
        build_anchor_generator,
    )
    from det.core.modeling.backbone import Backbone
    from det.core.modeling.box_regression import (
        BOX_REG_LOSS_TYPES,
        Box2BoxTransform,
        Box2BoxTransformLinear,
        Box2BoxTransformRotated,
        _dense_box_regression_loss,
    )
    from det.core.modeling.build import (
        build_backbone,
        build_model,
        build_proposal_generator,
        build_roi_heads,
        build_sem_seg_head,
    )
    from det.core.modeling.inputs import check_batched_inputs, normalize_and_pad_images, require_event_storage
    from det.core.modeling.matcher import Matcher
    from det.core.modeling.meta_arch import GeneralizedRCNN, ProposalNetwork
    from det.core.modeling.poolers import ROIPooler, assign_boxes_to_levels, convert_boxes_to_pooler_format
    from det.core.modeling.postprocessing import detector_postprocess, sem_seg_postprocess
    from det.core.modeling.sampling import subsample_labels
    from det.core.modeling.vis import draw_boxes, to_rgb_uint8


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "BOX_REG_LOSS_TYPES",
    "Backbone",
    "Box2BoxTransform",
    "Box2BoxTransformLinear",
    "Box2BoxTransformRotated",
    "DefaultAnchorGenerator",
    "GeneralizedRCNN",
    "Matcher",
    "ProposalNetwork",
    "ROIPooler",
    "RotatedAnchorGenerator",
    "_dense_box_regression_loss",
    "assign_boxes_to_levels",
    "build_anchor_generator",
    "build_backbone",
    "build_model",
    "build_proposal_generator",
    "build_roi_heads",
    "build_sem_seg_head",
    "check_batched_inputs",
    "convert_boxes_to_pooler_format",
    "detector_postprocess",
    "draw_boxes",
    "normalize_and_pad_images",
    "require_event_storage",
    "sem_seg_postprocess",
    "subsample_labels",
    "to_rgb_uint8",
]
