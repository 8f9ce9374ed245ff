"""Mask R-CNN mask heads for det (detectron2's ``modeling.roi_heads.mask_head``).

Installing det-heads-mask makes ``MODEL.ROI_MASK_HEAD.NAME: MaskRCNNConvUpsampleHead`` buildable::

    from det.heads.mask import MaskRCNNConvUpsampleHead, mask_rcnn_loss, mask_rcnn_inference

Names are imported lazily, so ``import det.heads.mask`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.heads.mask.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    # pasting lives in det-core's op table (a plugin may replace it per device); re-exported here
    from det.core.layers import paste_masks_in_image as paste_masks_in_image
    from det.core.registry import ROI_MASK_HEAD_REGISTRY as ROI_MASK_HEAD_REGISTRY
    from det.heads.mask.mask_head import BaseMaskRCNNHead as BaseMaskRCNNHead
    from det.heads.mask.mask_head import MaskRCNNConvUpsampleHead as MaskRCNNConvUpsampleHead
    from det.heads.mask.mask_head import build_mask_head as build_mask_head
    from det.heads.mask.mask_head import mask_rcnn_inference as mask_rcnn_inference
    from det.heads.mask.mask_head import mask_rcnn_loss as mask_rcnn_loss


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
