"""Boxes, masks, keypoints, Instances and ImageList for detection."""

from det.structures.version import __version__

__all__ = ["__version__"]
