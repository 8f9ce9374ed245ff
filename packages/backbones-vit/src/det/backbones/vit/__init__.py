"""det-backbones-vit: ViTDet's ViT and SimpleFeaturePyramid, MViTv2 and Swin, with detectron2's
module and parameter names (its checkpoints load strictly).

Importing ``det.backbones.vit`` is cheap (the plugin module lives in it); every public name is
imported on first use::

    from det.backbones.vit import ViT, SimpleFeaturePyramid
    from det.backbones import LastLevelMaxPool
    net = ViT(embed_dim=768, depth=12, num_heads=12, window_size=14,
              window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10], use_rel_pos=True)
    backbone = SimpleFeaturePyramid(net, "last_feat", 256, (4.0, 2.0, 1.0, 0.5),
                                    top_block=LastLevelMaxPool(), square_pad=1024)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.backbones.vit.version import __version__
from det.core.lazy import lazy_exports

_LAZY = {
    "ViT": "det.backbones.vit.vit",
    "SimpleFeaturePyramid": "det.backbones.vit.vit",
    "get_vit_lr_decay_rate": "det.backbones.vit.vit",
    "MViT": "det.backbones.vit.mvit",
    "SwinTransformer": "det.backbones.vit.swin",
    "build_vit_backbone": "det.backbones.vit.build",
    "build_vit_sfp_backbone": "det.backbones.vit.build",
    "build_mvit_backbone": "det.backbones.vit.build",
    "build_mvit_fpn_backbone": "det.backbones.vit.build",
    "build_swin_backbone": "det.backbones.vit.build",
    "build_swin_fpn_backbone": "det.backbones.vit.build",
    "add_vit_config": "det.backbones.vit.config",
}

if TYPE_CHECKING:
    from det.backbones.vit.build import (
        build_mvit_backbone,
        build_mvit_fpn_backbone,
        build_swin_backbone,
        build_swin_fpn_backbone,
        build_vit_backbone,
        build_vit_sfp_backbone,
    )
    from det.backbones.vit.config import add_vit_config
    from det.backbones.vit.mvit import MViT
    from det.backbones.vit.swin import SwinTransformer
    from det.backbones.vit.vit import SimpleFeaturePyramid, ViT, get_vit_lr_decay_rate


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "MViT",
    "SimpleFeaturePyramid",
    "SwinTransformer",
    "ViT",
    "__version__",
    "add_vit_config",
    "build_mvit_backbone",
    "build_mvit_fpn_backbone",
    "build_swin_backbone",
    "build_swin_fpn_backbone",
    "build_vit_backbone",
    "build_vit_sfp_backbone",
    "get_vit_lr_decay_rate",
]
assert set(__all__) == {"__version__", *_LAZY}
