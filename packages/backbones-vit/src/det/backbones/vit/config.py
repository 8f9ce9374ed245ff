"""Config keys of det-backbones-vit's yacs builders (imports no torch).

detectron2 configures ViTDet, MViTv2 and Swin only through LazyConfig; these keys let a plain
YAML name them too. Every key is the uppercased argument of the class it feeds.
"""

from __future__ import annotations

from typing import Any

__all__ = ["add_vit_config"]

# ViTDet-B as detectron2's common/models/mask_rcnn_vitdet.py builds it.
_VIT = {
    "IMG_SIZE": 1024,
    "PATCH_SIZE": 16,
    "EMBED_DIM": 768,
    "DEPTH": 12,
    "NUM_HEADS": 12,
    "MLP_RATIO": 4.0,
    "QKV_BIAS": True,
    "DROP_PATH_RATE": 0.1,
    "LN_EPS": 1e-6,  # norm_layer=partial(nn.LayerNorm, eps=LN_EPS)
    "USE_ABS_POS": True,
    "USE_REL_POS": True,
    "REL_POS_ZERO_INIT": True,
    "WINDOW_SIZE": 14,
    "WINDOW_BLOCK_INDEXES": [0, 1, 3, 4, 6, 7, 9, 10],
    "RESIDUAL_BLOCK_INDEXES": [],
    "USE_ACT_CHECKPOINT": False,
    "PRETRAIN_IMG_SIZE": 224,
    "PRETRAIN_USE_CLS_TOKEN": True,
    "OUT_FEATURE": "last_feat",
    # SimpleFeaturePyramid (build_vit_sfp_backbone); its channels and norm are MODEL.FPN's
    # OUT_CHANNELS and NORM (ViTDet: 256, "LN").
    "SCALE_FACTORS": [4.0, 2.0, 1.0, 0.5],
    "SQUARE_PAD": 0,
}

# MViTv2-T as detectron2's projects/MViTv2/configs/mask_rcnn_mvitv2_t_3x.py builds it.
_MVIT = {
    "IMG_SIZE": 224,
    "PATCH_KERNEL": [7, 7],
    "PATCH_STRIDE": [4, 4],
    "PATCH_PADDING": [3, 3],
    "EMBED_DIM": 96,
    "DEPTH": 10,
    "NUM_HEADS": 1,
    "LAST_BLOCK_INDEXES": [0, 2, 7, 9],
    "QKV_POOL_KERNEL": [3, 3],
    "ADAPTIVE_KV_STRIDE": 4,
    "ADAPTIVE_WINDOW_SIZE": 56,
    "RESIDUAL_POOLING": True,
    "MLP_RATIO": 4.0,
    "QKV_BIAS": True,
    "DROP_PATH_RATE": 0.2,
    "LN_EPS": 1e-6,
    "USE_ABS_POS": False,
    "USE_REL_POS": True,
    "REL_POS_ZERO_INIT": True,
    "USE_ACT_CHECKPOINT": False,
    "PRETRAIN_IMG_SIZE": 224,
    "PRETRAIN_USE_CLS_TOKEN": True,
    "OUT_FEATURES": ["scale2", "scale3", "scale4", "scale5"],
    "SQUARE_PAD": 0,
}

# SwinTransformer's own defaults (Swin-T); the keys are those Mask2Former's MODEL.SWIN uses.
_SWIN = {
    "PRETRAIN_IMG_SIZE": 224,
    "PATCH_SIZE": 4,
    "EMBED_DIM": 96,
    "DEPTHS": [2, 2, 6, 2],
    "NUM_HEADS": [3, 6, 12, 24],
    "WINDOW_SIZE": 7,
    "MLP_RATIO": 4.0,
    "QKV_BIAS": True,
    "QK_SCALE": None,
    "DROP_RATE": 0.0,
    "ATTN_DROP_RATE": 0.0,
    "DROP_PATH_RATE": 0.2,
    "APE": False,
    "PATCH_NORM": True,
    "OUT_FEATURES": ["p0", "p1", "p2", "p3"],
    "FROZEN_STAGES": -1,
    "USE_CHECKPOINT": False,
    "SQUARE_PAD": 0,
}


def add_vit_config(cfg: Any) -> None:
    """Add ``MODEL.VIT`` (ViTDet-B defaults), ``MODEL.MVIT`` (MViTv2-T) and ``MODEL.SWIN``
    (Swin-T) to ``cfg``, a not-frozen yacs CfgNode; keys already present win.

    The FPN builders read ``MODEL.FPN.{IN_FEATURES, OUT_CHANNELS, NORM, FUSE_TYPE}`` (empty
    ``IN_FEATURES`` = every output of the bottom-up network); ``SQUARE_PAD`` > 0 pads inputs to
    that square size, as ViTDet's 1024 px configs do.
    """
    node_type = type(cfg)
    for name, defaults in (("VIT", _VIT), ("MVIT", _MVIT), ("SWIN", _SWIN)):
        if name not in cfg.MODEL:
            setattr(cfg.MODEL, name, node_type())
        node = getattr(cfg.MODEL, name)
        for key, value in defaults.items():
            if key not in node:
                setattr(node, key, list(value) if isinstance(value, list) else value)
