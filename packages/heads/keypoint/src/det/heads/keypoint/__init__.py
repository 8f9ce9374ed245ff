"""Keypoint R-CNN heads for det (detectron2's ``modeling.roi_heads.keypoint_head``).

Installing det-heads-keypoint makes ``MODEL.ROI_KEYPOINT_HEAD.NAME: KRCNNConvDeconvUpsampleHead``
buildable::

    from det.heads.keypoint import KRCNNConvDeconvUpsampleHead, keypoint_rcnn_loss, keypoint_rcnn_inference

Names are imported lazily, so ``import det.heads.keypoint`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'det.heads.keypoint' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
