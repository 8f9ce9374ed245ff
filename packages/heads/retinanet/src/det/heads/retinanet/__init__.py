"""RetinaNet and one-stage dense detectors for det."""

from det.heads.retinanet.version import __version__

__all__ = ["__version__"]
