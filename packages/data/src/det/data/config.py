"""Config keys det-data adds to detectron2's schema (imports no torch)."""

from __future__ import annotations

from typing import Any

__all__ = ["AUGMENTATION_RNG_CHOICES", "add_data_config", "augmentation_rng"]

# DATALOADER.AUGMENTATION_RNG: where the training loader's random augmentations draw from.
AUGMENTATION_RNG_CHOICES = {
    # det's default: the element at position k of the sampler's stream is mapped with Python's,
    # numpy's and torch's generators seeded from (SEED, rank, k), whichever worker maps it, so a
    # fixed SEED gives the same batches for any NUM_WORKERS and after a resume.
    "per_image": "each image's augmentations seeded from (SEED, rank, position in the stream)",
    # detectron2's: the process's global generators (each DataLoader worker reseeded from torch's
    # seed when it starts), so the draws depend on NUM_WORKERS; with NUM_WORKERS 0 and the same
    # SEED they are detectron2's own draws, image for image.
    "process": "the process's global generators, as detectron2 draws them",
}


def add_data_config(cfg: Any) -> None:
    """Add ``DATALOADER.AUGMENTATION_RNG`` ("per_image", det's default, or "process",
    detectron2's draws; see ``AUGMENTATION_RNG_CHOICES``) to ``cfg``, a not-frozen yacs CfgNode;
    an existing value wins."""
    if "AUGMENTATION_RNG" not in cfg.DATALOADER:
        cfg.DATALOADER.AUGMENTATION_RNG = "per_image"


def augmentation_rng(cfg: Any) -> str:
    """The checked ``DATALOADER.AUGMENTATION_RNG`` of ``cfg`` ("per_image" when the key is absent,
    e.g. a config made without det-data's plugin)."""
    value = cfg.DATALOADER.get("AUGMENTATION_RNG", "per_image")
    if value not in AUGMENTATION_RNG_CHOICES:
        choices = ", ".join(f"{name!r} ({what})" for name, what in AUGMENTATION_RNG_CHOICES.items())
        raise ValueError(f"DATALOADER.AUGMENTATION_RNG is {value!r}; use one of: {choices}")
    return value
