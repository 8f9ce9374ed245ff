"""PointRend's config keys (detectron2's ``add_pointrend_config``); imports no torch.

det's plugin adds them to every ``get_cfg()`` through ``det_extend_config``, so PointRend's YAMLs
merge with no call; ``add_pointrend_config(cfg)`` stays for detectron2 scripts and is idempotent
(a key already there keeps its value).
"""

from __future__ import annotations

from typing import Any

__all__ = ["add_pointrend_config"]

# (section, key, default), as detectron2's projects/PointRend/point_rend/config.py
_KEYS: tuple[tuple[str, str, Any], ...] = (
    # random crops are retried until no single category of the semantic ground truth covers more
    # than this part of the crop (RandomCrop_CategoryAreaConstraint)
    ("INPUT.CROP", "SINGLE_CATEGORY_MAX_AREA", 1.0),
    # SSD's colour augmentation for semantic segmentation training (ColorAugSSDTransform)
    ("INPUT", "COLOR_AUG_SSD", False),
    # the coarse mask head: features it reads, its FC layers, the side of its prediction
    ("MODEL.ROI_MASK_HEAD", "IN_FEATURES", ("p2",)),
    ("MODEL.ROI_MASK_HEAD", "FC_DIM", 1024),
    ("MODEL.ROI_MASK_HEAD", "NUM_FC", 2),
    ("MODEL.ROI_MASK_HEAD", "OUTPUT_SIDE_RESOLUTION", 7),
    ("MODEL.ROI_MASK_HEAD", "POINT_HEAD_ON", False),
    ("MODEL.POINT_HEAD", "NAME", "StandardPointHead"),
    ("MODEL.POINT_HEAD", "NUM_CLASSES", 80),
    # features the point head samples at each point
    ("MODEL.POINT_HEAD", "IN_FEATURES", ("p2",)),
    # points sampled per region (mask) or image (semantic) in training
    ("MODEL.POINT_HEAD", "TRAIN_NUM_POINTS", 14 * 14),
    # the paper's k: candidates are TRAIN_NUM_POINTS * OVERSAMPLE_RATIO random points
    ("MODEL.POINT_HEAD", "OVERSAMPLE_RATIO", 3),
    # the paper's beta: this share of the points are the most uncertain candidates, the rest random
    ("MODEL.POINT_HEAD", "IMPORTANCE_SAMPLE_RATIO", 0.75),
    # inference: upsampling steps, and points recomputed at each
    ("MODEL.POINT_HEAD", "SUBDIVISION_STEPS", 5),
    ("MODEL.POINT_HEAD", "SUBDIVISION_NUM_POINTS", 28 * 28),
    ("MODEL.POINT_HEAD", "FC_DIM", 256),
    ("MODEL.POINT_HEAD", "NUM_FC", 3),
    ("MODEL.POINT_HEAD", "CLS_AGNOSTIC_MASK", False),
    # the coarse prediction is concatenated to the input of every layer of the point MLP
    ("MODEL.POINT_HEAD", "COARSE_PRED_EACH_LAYER", True),
    ("MODEL.POINT_HEAD", "COARSE_SEM_SEG_HEAD_NAME", "SemSegFPNHead"),
    # Implicit PointRend: the point head's parameters are predicted per region
    ("MODEL.IMPLICIT_POINTREND", "IMAGE_FEATURE_ENABLED", True),
    ("MODEL.IMPLICIT_POINTREND", "POS_ENC_ENABLED", True),
    ("MODEL.IMPLICIT_POINTREND", "PARAMS_L2_REGULARIZER", 0.00001),
)


def add_pointrend_config(cfg: Any) -> None:
    """Add PointRend's keys (``MODEL.POINT_HEAD``, ``MODEL.IMPLICIT_POINTREND``, the coarse mask
    head's ``MODEL.ROI_MASK_HEAD.*`` and ``INPUT.COLOR_AUG_SSD`` / ``INPUT.CROP.SINGLE_CATEGORY_
    MAX_AREA``) with detectron2's defaults. Keys already present keep their values.

        cfg = get_cfg()                 # with det-pointrend installed, the keys are already there
        add_pointrend_config(cfg)       # a no-op then; detectron2 scripts call it
        cfg.MODEL.POINT_HEAD.NUM_CLASSES   # 80
    """
    node_type = type(cfg)
    for section, key, default in _KEYS:
        node = cfg
        for part in section.split("."):
            if part not in node:
                node[part] = node_type()
            node = node[part]
        if key not in node:
            node[key] = default
