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

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from det.projects.point_rend.color_augmentation import ColorAugSSDTransform  # noqa: F401
    from det.projects.point_rend.config import add_pointrend_config  # noqa: F401
    from det.projects.point_rend.mask_head import ConvFCHead, ImplicitPointRendMaskHead, PointRendMaskHead  # noqa: F401
    from det.projects.point_rend.point_features import (  # noqa: F401
        generate_regular_grid_point_coords,
        get_point_coords_wrt_image,
        get_uncertain_point_coords_on_grid,
        get_uncertain_point_coords_with_randomness,
        point_sample,
        point_sample_fine_grained_features,
        put_point_logits,
        sample_point_labels,
    )
    from det.projects.point_rend.point_head import (  # noqa: F401
        POINT_HEAD_REGISTRY,
        ImplicitPointHead,
        StandardPointHead,
        build_point_head,
        roi_mask_point_loss,
    )
    from det.projects.point_rend.roi_heads import PointRendROIHeads  # noqa: F401
    from det.projects.point_rend.semantic_seg import PointRendSemSegHead  # noqa: F401

__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
