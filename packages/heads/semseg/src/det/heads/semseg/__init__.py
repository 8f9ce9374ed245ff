"""Semantic segmentation and Panoptic FPN for det."""

from det.heads.semseg.version import __version__

__all__ = ["__version__"]
