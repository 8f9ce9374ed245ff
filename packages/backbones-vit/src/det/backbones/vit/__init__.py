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
from det.core.lazy import exported, lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.backbones.vit.build import build_mvit_backbone as build_mvit_backbone
    from det.backbones.vit.build import build_mvit_fpn_backbone as build_mvit_fpn_backbone
    from det.backbones.vit.build import build_swin_backbone as build_swin_backbone
    from det.backbones.vit.build import build_swin_fpn_backbone as build_swin_fpn_backbone
    from det.backbones.vit.build import build_vit_backbone as build_vit_backbone
    from det.backbones.vit.build import build_vit_sfp_backbone as build_vit_sfp_backbone
    from det.backbones.vit.config import add_vit_config as add_vit_config
    from det.backbones.vit.mvit import MViT as MViT
    from det.backbones.vit.swin import SwinTransformer as SwinTransformer
    from det.backbones.vit.vit import SimpleFeaturePyramid as SimpleFeaturePyramid
    from det.backbones.vit.vit import ViT as ViT
    from det.backbones.vit.vit import get_vit_lr_decay_rate as get_vit_lr_decay_rate


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
