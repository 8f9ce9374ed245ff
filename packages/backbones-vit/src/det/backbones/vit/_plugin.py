"""det plugin declarations of det.backbones.vit: cheap to import (no torch), names components lazily."""

from det.core.hookspecs import hookimpl

DET_PLUGIN_API_VERSION = 1

_BACKBONES = (
    "build_vit_backbone",
    "build_vit_sfp_backbone",
    "build_mvit_backbone",
    "build_mvit_fpn_backbone",
    "build_swin_backbone",
    "build_swin_fpn_backbone",
)


@hookimpl
def det_components():
    return [("BACKBONE", name, f"det.backbones.vit.build:{name}") for name in _BACKBONES]


@hookimpl
def det_extend_config(cfg):
    # det.backbones.vit.config imports no torch: it only adds yacs nodes.
    from det.backbones.vit.config import add_vit_config

    add_vit_config(cfg)
