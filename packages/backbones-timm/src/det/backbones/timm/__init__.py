"""det-backbones-timm: any timm model with ``features_only`` as a det backbone.

Importing ``det.backbones.timm`` is cheap (no torch, no timm); the names are imported on first use::

    from det.backbones.timm import TimmBackbone
    backbone = TimmBackbone("convnext_tiny")          # res2..res5, random init
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.backbones.timm.version import __version__
from det.core.lazy import exported, lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.backbones.timm.config import add_timm_config as add_timm_config
    from det.backbones.timm.timm_backbone import TimmBackbone as TimmBackbone
    from det.backbones.timm.timm_backbone import build_timm_backbone as build_timm_backbone
    from det.backbones.timm.timm_backbone import build_timm_fpn_backbone as build_timm_fpn_backbone

__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
