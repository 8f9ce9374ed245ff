"""Panoptic-DeepLab's config keys (detectron2's ``add_panoptic_deeplab_config``). Imports no
torch: the plugin module calls it from ``det_extend_config``."""

from __future__ import annotations

from typing import Any

from det.projects.deeplab.config import add_config_keys, add_deeplab_config

__all__ = ["PANOPTIC_DEEPLAB_CONFIG_KEYS", "add_panoptic_deeplab_config"]

PANOPTIC_DEEPLAB_CONFIG_KEYS: dict[str, Any] = {
    # target generation (PanopticDeepLabTargetGenerator)
    "INPUT.GAUSSIAN_SIGMA": 10,
    "INPUT.IGNORE_STUFF_IN_OFFSET": True,
    "INPUT.SMALL_INSTANCE_AREA": 4096,
    "INPUT.SMALL_INSTANCE_WEIGHT": 3,
    "INPUT.IGNORE_CROWD_IN_SEMANTIC": False,
    # "ADAM" or "SGD": what det.projects.panoptic_deeplab.build_optimizer builds
    "SOLVER.OPTIMIZER": "ADAM",
    # the semantic head's extra conv before its predictor; the hard-pixel-mining fraction
    "MODEL.SEM_SEG_HEAD.HEAD_CHANNELS": 256,
    "MODEL.SEM_SEG_HEAD.LOSS_TOP_K": 0.2,
    # the instance (center + offset) head
    "MODEL.INS_EMBED_HEAD.NAME": "PanopticDeepLabInsEmbedHead",
    "MODEL.INS_EMBED_HEAD.IN_FEATURES": ["res2", "res3", "res5"],
    "MODEL.INS_EMBED_HEAD.PROJECT_FEATURES": ["res2", "res3"],
    "MODEL.INS_EMBED_HEAD.PROJECT_CHANNELS": [32, 64],
    "MODEL.INS_EMBED_HEAD.ASPP_CHANNELS": 256,
    "MODEL.INS_EMBED_HEAD.ASPP_DILATIONS": [6, 12, 18],
    "MODEL.INS_EMBED_HEAD.ASPP_DROPOUT": 0.1,
    "MODEL.INS_EMBED_HEAD.HEAD_CHANNELS": 32,
    "MODEL.INS_EMBED_HEAD.CONVS_DIM": 128,
    "MODEL.INS_EMBED_HEAD.COMMON_STRIDE": 4,
    "MODEL.INS_EMBED_HEAD.NORM": "SyncBN",
    "MODEL.INS_EMBED_HEAD.CENTER_LOSS_WEIGHT": 200.0,
    "MODEL.INS_EMBED_HEAD.OFFSET_LOSS_WEIGHT": 0.01,
    # post-processing: stuff segments below STUFF_AREA pixels are dropped; centers are heatmap
    # peaks above CENTER_THRESHOLD (NMS by NMS_KERNEL max-pooling), at most TOP_K_INSTANCE
    "MODEL.PANOPTIC_DEEPLAB.STUFF_AREA": 2048,
    "MODEL.PANOPTIC_DEEPLAB.CENTER_THRESHOLD": 0.1,
    "MODEL.PANOPTIC_DEEPLAB.NMS_KERNEL": 7,
    "MODEL.PANOPTIC_DEEPLAB.TOP_K_INSTANCE": 200,
    # False: no "instances" output (instance segmentation evaluation)
    "MODEL.PANOPTIC_DEEPLAB.PREDICT_INSTANCES": True,
    "MODEL.PANOPTIC_DEEPLAB.USE_DEPTHWISE_SEPARABLE_CONV": False,
    # pad every image to a multiple of this (e.g. 640 for COCO) so ASPP's pooling window fits;
    # -1: the backbone's size_divisibility
    "MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY": -1,
    # return no outputs in eval (time the network without post-processing)
    "MODEL.PANOPTIC_DEEPLAB.BENCHMARK_NETWORK_SPEED": False,
}
"""Every key ``add_panoptic_deeplab_config`` adds beyond DeepLab's, with detectron2's default."""


def add_panoptic_deeplab_config(cfg: Any) -> None:
    """Add Panoptic-DeepLab's config keys (and DeepLab's, which it reuses) to ``cfg`` (detectron2's
    ``add_panoptic_deeplab_config``). With det-panoptic-deeplab installed ``get_cfg()`` already has
    them; keys that exist keep their value::

        cfg = get_cfg()
        add_panoptic_deeplab_config(cfg)   # a no-op here
        cfg.merge_from_file("panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024.yaml")
    """
    add_deeplab_config(cfg)
    add_config_keys(cfg, PANOPTIC_DEEPLAB_CONFIG_KEYS)
