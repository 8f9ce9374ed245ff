"""``PointRendROIHeads``: StandardROIHeads that also load PointRend checkpoints of the old layout."""

from __future__ import annotations

import logging

from det.heads.roi.roi_heads import StandardROIHeads
from det.projects.point_rend.mask_head import _rename_prefixed

__all__ = ["PointRendROIHeads"]

logger = logging.getLogger(__name__)


class PointRendROIHeads(StandardROIHeads):
    """Identical to ``StandardROIHeads`` except for two upgrades of old PointRend models:
    weights named ``mask_point_head.*`` / ``mask_coarse_head.*`` load as ``mask_head.point_head.*``
    / ``mask_head.coarse_head.*``, and ``ROI_MASK_HEAD.NAME: CoarseMaskHead`` becomes
    ``PointRendMaskHead`` (with ``POOLER_TYPE: ""``)."""

    _version = 2

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        version = local_metadata.get("version", None)
        renames = [(prefix + "mask_point_head", prefix + "mask_head.point_head"),
                   (prefix + "mask_coarse_head", prefix + "mask_head.coarse_head")]
        if (version is None or version < 2) and _rename_prefixed(state_dict, renames):
            logger.warning("Weight format of PointRend models has changed: renamed mask_point_head / "
                           "mask_coarse_head to mask_head.point_head / mask_head.coarse_head; re-save the model")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        if cfg.MODEL.MASK_ON and cfg.MODEL.ROI_MASK_HEAD.NAME != "PointRendMaskHead":
            if cfg.MODEL.ROI_MASK_HEAD.NAME != "CoarseMaskHead":
                raise ValueError("PointRendROIHeads builds PointRendMaskHead (or upgrades the old CoarseMaskHead); "
                                 f"MODEL.ROI_MASK_HEAD.NAME is {cfg.MODEL.ROI_MASK_HEAD.NAME!r}")
            logger.warning("Config of PointRend models has changed: using ROI_MASK_HEAD.NAME PointRendMaskHead "
                           "with POOLER_TYPE \"\" instead of CoarseMaskHead")
            cfg = cfg.clone()
            cfg.defrost()
            cfg.MODEL.ROI_MASK_HEAD.NAME = "PointRendMaskHead"
            cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE = ""
        return super()._init_mask_head(cfg, input_shape)
