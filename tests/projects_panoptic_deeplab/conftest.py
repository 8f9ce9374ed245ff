"""Shared pieces of det-panoptic-deeplab's tests: the project's YAML files, a shrunk config of
each, and the dataset metadata the model reads."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIG_DIR = Path(__file__).resolve().parents[3] / "shared/detectron2-projects/projects/Panoptic-DeepLab/configs"
YAMLS = sorted(CONFIG_DIR.glob("*/*.yaml"))

# Small enough for a CPU step in seconds; every other key stays as the YAML sets it (SyncBN, the
# DeepLab stem, multi-grid res5, depthwise-separable convs, hard pixel mining, WarmupPolyLR, ADAM).
SHRINK = [
    "MODEL.DEVICE", "cpu",
    "MODEL.WEIGHTS", "",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 16,
    "MODEL.SEM_SEG_HEAD.ASPP_CHANNELS", 16,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", 16,
    "MODEL.SEM_SEG_HEAD.HEAD_CHANNELS", 16,
    "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", [8, 8],
    "MODEL.INS_EMBED_HEAD.ASPP_CHANNELS", 16,
    "MODEL.INS_EMBED_HEAD.CONVS_DIM", 16,
    "MODEL.INS_EMBED_HEAD.HEAD_CHANNELS", 8,
    "MODEL.INS_EMBED_HEAD.PROJECT_CHANNELS", [8, 8],
    "INPUT.CROP.SIZE", (64, 64),
    "MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY", 64,  # COCO pads to 640: the crop, shrunk likewise
    "SOLVER.MAX_ITER", 10,
    "SOLVER.WARMUP_ITERS", 2,
]


@pytest.fixture
def cityscapes_panoptic_metadata():
    """The metadata of cityscapes_fine_panoptic_train, which the model reads (thing ids, label
    divisor): det-data registers it as detectron2 does."""
    from det.data import MetadataCatalog

    return MetadataCatalog.get("cityscapes_fine_panoptic_train")
