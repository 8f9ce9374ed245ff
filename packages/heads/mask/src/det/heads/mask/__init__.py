"""Mask R-CNN mask heads for det."""

from det.heads.mask.version import __version__

__all__ = ["__version__"]
