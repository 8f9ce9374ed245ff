"""ROI heads for det: ``StandardROIHeads``, ``Res5ROIHeads`` (C4), ``CascadeROIHeads``,
``RROIHeads`` (rotated), the ``FastRCNNConvFCHead`` box head and ``FastRCNNOutputLayers``.

Importing this package is cheap (``det plugins`` imports its ``_plugin`` module); the public
names below are imported on first use::

    from det.heads.roi import StandardROIHeads, FastRCNNOutputLayers, fast_rcnn_inference
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.heads.roi.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from det.heads.roi.box_head import FastRCNNConvFCHead, build_box_head  # noqa: F401
    from det.heads.roi.cascade_rcnn import CascadeROIHeads  # noqa: F401
    from det.heads.roi.fast_rcnn import (  # noqa: F401
        FastRCNNOutputLayers,
        fast_rcnn_inference,
        fast_rcnn_inference_single_image,
    )
    from det.heads.roi.proposal_utils import add_ground_truth_to_proposals  # noqa: F401
    from det.heads.roi.roi_heads import (  # noqa: F401
        Res5ROIHeads,
        ROIHeads,
        StandardROIHeads,
        build_keypoint_head,
        build_mask_head,
        select_foreground_proposals,
        select_proposals_with_visible_keypoints,
    )
    from det.heads.roi.rotated_fast_rcnn import (  # noqa: F401
        RotatedFastRCNNOutputLayers,
        RROIHeads,
        fast_rcnn_inference_rotated,
    )


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above


__all__ = ["__version__", *exported(__name__)]
