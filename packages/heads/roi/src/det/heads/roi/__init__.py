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

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.heads.roi.box_head import FastRCNNConvFCHead as FastRCNNConvFCHead
    from det.heads.roi.box_head import build_box_head as build_box_head
    from det.heads.roi.cascade_rcnn import CascadeROIHeads as CascadeROIHeads
    from det.heads.roi.fast_rcnn import FastRCNNOutputLayers as FastRCNNOutputLayers
    from det.heads.roi.fast_rcnn import fast_rcnn_inference as fast_rcnn_inference
    from det.heads.roi.fast_rcnn import fast_rcnn_inference_single_image as fast_rcnn_inference_single_image
    from det.heads.roi.proposal_utils import add_ground_truth_to_proposals as add_ground_truth_to_proposals
    from det.heads.roi.roi_heads import Res5ROIHeads as Res5ROIHeads
    from det.heads.roi.roi_heads import ROIHeads as ROIHeads
    from det.heads.roi.roi_heads import StandardROIHeads as StandardROIHeads
    from det.heads.roi.roi_heads import build_keypoint_head as build_keypoint_head
    from det.heads.roi.roi_heads import build_mask_head as build_mask_head
    from det.heads.roi.roi_heads import select_foreground_proposals as select_foreground_proposals
    from det.heads.roi.roi_heads import (
        select_proposals_with_visible_keypoints as select_proposals_with_visible_keypoints,
    )
    from det.heads.roi.rotated_fast_rcnn import RotatedFastRCNNOutputLayers as RotatedFastRCNNOutputLayers
    from det.heads.roi.rotated_fast_rcnn import RROIHeads as RROIHeads
    from det.heads.roi.rotated_fast_rcnn import fast_rcnn_inference_rotated as fast_rcnn_inference_rotated


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
