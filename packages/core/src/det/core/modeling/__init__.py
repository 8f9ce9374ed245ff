"""det.core.modeling: detectron2's ``detectron2.modeling`` core (everything but backbones and heads).

Names are imported on first use, so ``import det.core.modeling`` stays cheap::

    from det.core.modeling import build_model, Box2BoxTransform, ROIPooler
    model = build_model(cfg)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.core.modeling.anchor_generator import DefaultAnchorGenerator as DefaultAnchorGenerator
    from det.core.modeling.anchor_generator import RotatedAnchorGenerator as RotatedAnchorGenerator
    from det.core.modeling.anchor_generator import build_anchor_generator as build_anchor_generator
    from det.core.modeling.backbone import Backbone as Backbone
    from det.core.modeling.box_regression import BOX_REG_LOSS_TYPES as BOX_REG_LOSS_TYPES
    from det.core.modeling.box_regression import Box2BoxTransform as Box2BoxTransform
    from det.core.modeling.box_regression import Box2BoxTransformLinear as Box2BoxTransformLinear
    from det.core.modeling.box_regression import Box2BoxTransformRotated as Box2BoxTransformRotated
    from det.core.modeling.box_regression import _dense_box_regression_loss as _dense_box_regression_loss
    from det.core.modeling.build import build_backbone as build_backbone
    from det.core.modeling.build import build_model as build_model
    from det.core.modeling.build import build_proposal_generator as build_proposal_generator
    from det.core.modeling.build import build_roi_heads as build_roi_heads
    from det.core.modeling.build import build_sem_seg_head as build_sem_seg_head
    from det.core.modeling.inputs import check_batched_inputs as check_batched_inputs
    from det.core.modeling.inputs import normalize_and_pad_images as normalize_and_pad_images
    from det.core.modeling.inputs import require_event_storage as require_event_storage
    from det.core.modeling.matcher import Matcher as Matcher
    from det.core.modeling.meta_arch import GeneralizedRCNN as GeneralizedRCNN
    from det.core.modeling.meta_arch import ProposalNetwork as ProposalNetwork
    from det.core.modeling.poolers import ROIPooler as ROIPooler
    from det.core.modeling.poolers import assign_boxes_to_levels as assign_boxes_to_levels
    from det.core.modeling.poolers import convert_boxes_to_pooler_format as convert_boxes_to_pooler_format
    from det.core.modeling.postprocessing import detector_postprocess as detector_postprocess
    from det.core.modeling.postprocessing import sem_seg_postprocess as sem_seg_postprocess
    from det.core.modeling.sampling import subsample_labels as subsample_labels
    from det.core.modeling.vis import draw_boxes as draw_boxes
    from det.core.modeling.vis import to_rgb_uint8 as to_rgb_uint8


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = [*exported(__name__)]
