"""Keypoint R-CNN heads for det (detectron2's ``modeling.roi_heads.keypoint_head``).

Installing det-heads-keypoint makes ``MODEL.ROI_KEYPOINT_HEAD.NAME: KRCNNConvDeconvUpsampleHead``
buildable::

    from det.heads.keypoint import KRCNNConvDeconvUpsampleHead, keypoint_rcnn_loss, keypoint_rcnn_inference

Names are imported lazily, so ``import det.heads.keypoint`` stays cheap.
"""

from __future__ import annotations

from det.core.lazy import lazy_exports
from det.heads.keypoint.version import __version__

_EXPORTS = {
    "BaseKeypointRCNNHead": "det.heads.keypoint.keypoint_head",
    "KRCNNConvDeconvUpsampleHead": "det.heads.keypoint.keypoint_head",
    "build_keypoint_head": "det.heads.keypoint.keypoint_head",
    "keypoint_rcnn_inference": "det.heads.keypoint.keypoint_head",
    "keypoint_rcnn_loss": "det.heads.keypoint.keypoint_head",
    "ROI_KEYPOINT_HEAD_REGISTRY": "det.core.registry",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
