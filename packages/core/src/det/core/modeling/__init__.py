"""det.core.modeling: detectron2's ``detectron2.modeling`` core (everything but backbones and heads).

Names are imported on first use, so ``import det.core.modeling`` stays cheap::

    from det.core.modeling import build_model, Box2BoxTransform, ROIPooler
    model = build_model(cfg)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports

if TYPE_CHECKING:  # for type checkers; at run time the names load lazily
    from det.core.modeling.anchor_generator import (  # noqa: F401
        DefaultAnchorGenerator,
        RotatedAnchorGenerator,
        build_anchor_generator,
    )
    from det.core.modeling.backbone import Backbone  # noqa: F401
    from det.core.modeling.box_regression import (  # noqa: F401
        BOX_REG_LOSS_TYPES,
        Box2BoxTransform,
        Box2BoxTransformLinear,
        Box2BoxTransformRotated,
        _dense_box_regression_loss,
    )
    from det.core.modeling.build import (  # noqa: F401
        build_backbone,
        build_model,
        build_proposal_generator,
        build_roi_heads,
        build_sem_seg_head,
    )
    from det.core.modeling.inputs import check_batched_inputs, normalize_and_pad_images, require_event_storage  # noqa: F401
    from det.core.modeling.matcher import Matcher  # noqa: F401
    from det.core.modeling.meta_arch import GeneralizedRCNN, ProposalNetwork  # noqa: F401
    from det.core.modeling.poolers import ROIPooler, assign_boxes_to_levels, convert_boxes_to_pooler_format  # noqa: F401
    from det.core.modeling.postprocessing import detector_postprocess, sem_seg_postprocess  # noqa: F401
    from det.core.modeling.sampling import subsample_labels  # noqa: F401
    from det.core.modeling.vis import draw_boxes, to_rgb_uint8  # noqa: F401


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above


__all__ = exported(__name__)
