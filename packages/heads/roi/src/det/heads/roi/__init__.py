"""ROI heads (standard, C4, cascade) and box heads for det."""

from det.heads.roi.version import __version__

__all__ = ["__version__"]
