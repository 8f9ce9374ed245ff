"""Mask R-CNN mask heads for det (detectron2's ``modeling.roi_heads.mask_head``).

Installing det-heads-mask makes ``MODEL.ROI_MASK_HEAD.NAME: MaskRCNNConvUpsampleHead`` buildable::

    from det.heads.mask import MaskRCNNConvUpsampleHead, mask_rcnn_loss, mask_rcnn_inference

Names are imported lazily, so ``import det.heads.mask`` stays cheap.
"""

from __future__ import annotations

from det.core.lazy import lazy_exports
from det.heads.mask.version import __version__

_EXPORTS = {
    "BaseMaskRCNNHead": "det.heads.mask.mask_head",
    "MaskRCNNConvUpsampleHead": "det.heads.mask.mask_head",
    "build_mask_head": "det.heads.mask.mask_head",
    "mask_rcnn_inference": "det.heads.mask.mask_head",
    "mask_rcnn_loss": "det.heads.mask.mask_head",
    # pasting lives in det-core's op table (a plugin may replace it per device); re-exported here
    "paste_masks_in_image": "det.core.layers",
    "ROI_MASK_HEAD_REGISTRY": "det.core.registry",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
