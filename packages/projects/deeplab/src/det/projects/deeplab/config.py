"""DeepLab's config keys (detectron2's ``add_deeplab_config``). Imports no torch: the plugin
module calls it from ``det_extend_config`` when ``get_cfg()`` builds a config."""

from __future__ import annotations

from typing import Any

__all__ = ["DEEPLAB_CONFIG_KEYS", "add_deeplab_config"]

DEEPLAB_CONFIG_KEYS: dict[str, Any] = {
    # Random crops are retried until no single category covers more than this part of the crop.
    "INPUT.CROP.SINGLE_CATEGORY_MAX_AREA": 1.0,
    # WarmupPolyLR: lr = base_lr * (1 - iter / MAX_ITER) ** POLY_LR_POWER, never below
    # base_lr * POLY_LR_CONSTANT_ENDING once warmup is over (when that is > 0).
    "SOLVER.POLY_LR_POWER": 0.9,
    "SOLVER.POLY_LR_CONSTANT_ENDING": 0.0,
    # "cross_entropy" or "hard_pixel_mining" (the top 20% hardest pixels, DeepLabCE)
    "MODEL.SEM_SEG_HEAD.LOSS_TYPE": "hard_pixel_mining",
    "MODEL.SEM_SEG_HEAD.PROJECT_FEATURES": ["res2"],
    "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS": [48],
    "MODEL.SEM_SEG_HEAD.ASPP_CHANNELS": 256,
    "MODEL.SEM_SEG_HEAD.ASPP_DILATIONS": [6, 12, 18],
    "MODEL.SEM_SEG_HEAD.ASPP_DROPOUT": 0.1,
    "MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV": False,
    "MODEL.RESNETS.RES4_DILATION": 1,
    "MODEL.RESNETS.RES5_MULTI_GRID": [1, 2, 4],
    # "basic" (BasicStem) or "deeplab" (DeepLabStem: three 3x3 convs)
    "MODEL.RESNETS.STEM_TYPE": "deeplab",
}
"""Every key ``add_deeplab_config`` adds, with detectron2's default."""


def add_config_keys(cfg: Any, keys: dict[str, Any]) -> None:
    """Add each dotted ``key: default`` of ``keys`` that ``cfg`` lacks, creating missing sections
    as empty nodes of ``cfg``'s type; keys that exist keep their value."""
    for dotted, default in keys.items():
        *sections, leaf = dotted.split(".")
        node = cfg
        for section in sections:
            if section not in node:
                node[section] = type(cfg)()
            node = node[section]
        if leaf not in node:
            node[leaf] = list(default) if isinstance(default, list) else default


def add_deeplab_config(cfg: Any) -> None:
    """Add DeepLab's config keys to ``cfg`` (detectron2's ``add_deeplab_config``).

    With det-deeplab installed ``get_cfg()`` already has them, so this only matters for a config
    built otherwise; it never changes a key that exists::

        cfg = get_cfg()
        add_deeplab_config(cfg)          # a no-op here: the plugin added the keys
        cfg.merge_from_file("deeplab_v3_plus_R_103_os16_mg124_poly_90k_bs16.yaml")
    """
    add_config_keys(cfg, DEEPLAB_CONFIG_KEYS)
