"""det-pointrend: PointRend (detectron2's ``projects/PointRend``, ``detectron2.projects.point_rend``).

Installing it is all it takes: its plugin declares the components (``ROI_MASK_HEAD``
``PointRendMaskHead`` / ``ImplicitPointRendMaskHead``, ``SEM_SEG_HEADS`` ``PointRendSemSegHead``,
``ROI_HEADS`` ``PointRendROIHeads``, ``POINT_HEAD`` ``StandardPointHead`` / ``ImplicitPointHead``)
and adds the config keys, so PointRend's YAMLs merge into a plain ``get_cfg()``::

    from det.core.config import get_cfg
    cfg = get_cfg()
    cfg.merge_from_file("projects/PointRend/configs/InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml")

Importing ``det.projects.point_rend`` is cheap; every public name is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import lazy_exports
from det.projects.point_rend.version import __version__

_LAZY = {
    "add_pointrend_config": "det.projects.point_rend.config",
    "ColorAugSSDTransform": "det.projects.point_rend.color_augmentation",
    "ConvFCHead": "det.projects.point_rend.mask_head",
    "PointRendMaskHead": "det.projects.point_rend.mask_head",
    "ImplicitPointRendMaskHead": "det.projects.point_rend.mask_head",
    "PointRendSemSegHead": "det.projects.point_rend.semantic_seg",
    "PointRendROIHeads": "det.projects.point_rend.roi_heads",
    "POINT_HEAD_REGISTRY": "det.projects.point_rend.point_head",
    "StandardPointHead": "det.projects.point_rend.point_head",
    "ImplicitPointHead": "det.projects.point_rend.point_head",
    "build_point_head": "det.projects.point_rend.point_head",
    "roi_mask_point_loss": "det.projects.point_rend.point_head",
    "point_sample": "det.projects.point_rend.point_features",
    "point_sample_fine_grained_features": "det.projects.point_rend.point_features",
    "generate_regular_grid_point_coords": "det.projects.point_rend.point_features",
    "get_uncertain_point_coords_with_randomness": "det.projects.point_rend.point_features",
    "get_uncertain_point_coords_on_grid": "det.projects.point_rend.point_features",
    "get_point_coords_wrt_image": "det.projects.point_rend.point_features",
    "sample_point_labels": "det.projects.point_rend.point_features",
    "put_point_logits": "det.projects.point_rend.point_features",
}

if TYPE_CHECKING:
    from det.projects.point_rend.color_augmentation import ColorAugSSDTransform
    from det.projects.point_rend.config import add_pointrend_config
    from det.projects.point_rend.mask_head import ConvFCHead, ImplicitPointRendMaskHead, PointRendMaskHead
    from det.projects.point_rend.point_features import (
        generate_regular_grid_point_coords,
        get_point_coords_wrt_image,
        get_uncertain_point_coords_on_grid,
        get_uncertain_point_coords_with_randomness,
        point_sample,
        point_sample_fine_grained_features,
        put_point_logits,
        sample_point_labels,
    )
    from det.projects.point_rend.point_head import (
        POINT_HEAD_REGISTRY,
        ImplicitPointHead,
        StandardPointHead,
        build_point_head,
        roi_mask_point_loss,
    )
    from det.projects.point_rend.roi_heads import PointRendROIHeads
    from det.projects.point_rend.semantic_seg import PointRendSemSegHead

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "POINT_HEAD_REGISTRY",
    "ColorAugSSDTransform",
    "ConvFCHead",
    "ImplicitPointHead",
    "ImplicitPointRendMaskHead",
    "PointRendMaskHead",
    "PointRendROIHeads",
    "PointRendSemSegHead",
    "StandardPointHead",
    "__version__",
    "add_pointrend_config",
    "build_point_head",
    "generate_regular_grid_point_coords",
    "get_point_coords_wrt_image",
    "get_uncertain_point_coords_on_grid",
    "get_uncertain_point_coords_with_randomness",
    "point_sample",
    "point_sample_fine_grained_features",
    "put_point_logits",
    "roi_mask_point_loss",
    "sample_point_labels",
]
assert set(__all__) == {"__version__", *_LAZY}
