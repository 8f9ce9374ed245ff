"""Shared pieces of det-deeplab's tests: the project's YAML files and a shrunk config of each."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[3] / "shared/detectron2-projects/projects/DeepLab/configs"
YAMLS = sorted(CONFIG_DIR.glob("*/*.yaml"))

# Small enough for a CPU step in about a second; every other key stays as the YAML sets it
# (SyncBN, the DeepLab stem, multi-grid res5, hard pixel mining, WarmupPolyLR, ...).
SHRINK = [
    "MODEL.DEVICE", "cpu",
    "MODEL.WEIGHTS", "",
    "MODEL.RESNETS.DEPTH", 50,
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 16,
    "MODEL.SEM_SEG_HEAD.ASPP_CHANNELS", 32,  # the base YAML keeps GN (32 groups)
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
    "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", [8],
    "INPUT.CROP.SIZE", (64, 128),
    "SOLVER.MAX_ITER", 10,
    "SOLVER.WARMUP_ITERS", 2,
]

