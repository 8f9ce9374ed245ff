"""det's config system: detectron2's schema and merge rules, torch-free.

    from det.core.config import get_cfg, configurable
    cfg = get_cfg(); cfg.merge_from_file("mask_rcnn_R_50_FPN_3x.yaml")
"""

from det.core.config.config import CfgNode, ConfigKeyError, configurable, get_cfg

__all__ = ["CfgNode", "ConfigKeyError", "configurable", "get_cfg"]
