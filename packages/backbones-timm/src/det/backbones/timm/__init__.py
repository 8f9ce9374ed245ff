"""det-backbones-timm: any timm model with ``features_only`` as a det backbone.

Importing ``det.backbones.timm`` is cheap (no torch, no timm); the names are imported on first use::

    from det.backbones.timm import TimmBackbone
    backbone = TimmBackbone("convnext_tiny")          # res2..res5, random init
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.backbones.timm.version import __version__
from det.core.lazy import lazy_exports

_LAZY = {
    "TimmBackbone": "det.backbones.timm.timm_backbone",
    "build_timm_backbone": "det.backbones.timm.timm_backbone",
    "build_timm_fpn_backbone": "det.backbones.timm.timm_backbone",
    "add_timm_config": "det.backbones.timm.config",
}

if TYPE_CHECKING:
    from det.backbones.timm.config import add_timm_config
    from det.backbones.timm.timm_backbone import TimmBackbone, build_timm_backbone, build_timm_fpn_backbone

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = ["TimmBackbone", "__version__", "add_timm_config", "build_timm_backbone", "build_timm_fpn_backbone"]
assert set(__all__) == {"__version__", *_LAZY}
