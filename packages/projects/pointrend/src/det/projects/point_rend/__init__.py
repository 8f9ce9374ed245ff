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

from det.core.lazy import exported, lazy_exports
from det.projects.point_rend.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.projects.point_rend.color_augmentation import ColorAugSSDTransform as ColorAugSSDTransform
    from det.projects.point_rend.config import add_pointrend_config as add_pointrend_config
    from det.projects.point_rend.mask_head import ConvFCHead as ConvFCHead
    from det.projects.point_rend.mask_head import ImplicitPointRendMaskHead as ImplicitPointRendMaskHead
    from det.projects.point_rend.mask_head import PointRendMaskHead as PointRendMaskHead
    from det.projects.point_rend.point_features import (
        generate_regular_grid_point_coords as generate_regular_grid_point_coords,
    )
    from det.projects.point_rend.point_features import (
        get_point_coords_wrt_image as get_point_coords_wrt_image,
    )
    from det.projects.point_rend.point_features import (
        get_uncertain_point_coords_on_grid as get_uncertain_point_coords_on_grid,
    )
    from det.projects.point_rend.point_features import (
        get_uncertain_point_coords_with_randomness as get_uncertain_point_coords_with_randomness,
    )
    from det.projects.point_rend.point_features import point_sample as point_sample
    from det.projects.point_rend.point_features import (
        point_sample_fine_grained_features as point_sample_fine_grained_features,
    )
    from det.projects.point_rend.point_features import put_point_logits as put_point_logits
    from det.projects.point_rend.point_features import sample_point_labels as sample_point_labels
    from det.projects.point_rend.point_head import POINT_HEAD_REGISTRY as POINT_HEAD_REGISTRY
    from det.projects.point_rend.point_head import ImplicitPointHead as ImplicitPointHead
    from det.projects.point_rend.point_head import StandardPointHead as StandardPointHead
    from det.projects.point_rend.point_head import build_point_head as build_point_head
    from det.projects.point_rend.point_head import roi_mask_point_loss as roi_mask_point_loss
    from det.projects.point_rend.roi_heads import PointRendROIHeads as PointRendROIHeads
    from det.projects.point_rend.semantic_seg import PointRendSemSegHead as PointRendSemSegHead

__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
