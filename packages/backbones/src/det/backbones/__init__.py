"""ResNet/ResNeXt and FPN backbones for det, detectron2-compatible."""

from det.backbones.version import __version__

__all__ = ["__version__"]
