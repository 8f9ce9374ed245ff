"""Keypoint R-CNN heads for det (detectron2's ``modeling.roi_heads.keypoint_head``).

Installing det-heads-keypoint makes ``MODEL.ROI_KEYPOINT_HEAD.NAME: KRCNNConvDeconvUpsampleHead``
buildable::

    from det.heads.keypoint import KRCNNConvDeconvUpsampleHead, keypoint_rcnn_loss, keypoint_rcnn_inference

Names are imported lazily, so ``import det.heads.keypoint`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.heads.keypoint.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.core.registry import ROI_KEYPOINT_HEAD_REGISTRY as ROI_KEYPOINT_HEAD_REGISTRY
    from det.heads.keypoint.keypoint_head import BaseKeypointRCNNHead as BaseKeypointRCNNHead
    from det.heads.keypoint.keypoint_head import KRCNNConvDeconvUpsampleHead as KRCNNConvDeconvUpsampleHead
    from det.heads.keypoint.keypoint_head import build_keypoint_head as build_keypoint_head
    from det.heads.keypoint.keypoint_head import keypoint_rcnn_inference as keypoint_rcnn_inference
    from det.heads.keypoint.keypoint_head import keypoint_rcnn_loss as keypoint_rcnn_loss


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
