"""Keypoint R-CNN heads for det."""

from det.heads.keypoint.version import __version__

__all__ = ["__version__"]
