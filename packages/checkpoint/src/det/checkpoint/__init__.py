"""Safe loading and atomic saving of detectron2-style checkpoints."""

from det.checkpoint.version import __version__

__all__ = ["__version__"]
