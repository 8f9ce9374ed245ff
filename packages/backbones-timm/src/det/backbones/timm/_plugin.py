"""det plugin declarations of det-backbones-timm.

This module is what the ``det`` entry point names (see pyproject.toml): det imports it to list
the plugin, so it imports neither torch nor timm. Components are named as "module:attribute"
strings, imported only when a model is built from them.
"""

from typing import Any

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("BACKBONE", "build_timm_backbone", "det.backbones.timm.timm_backbone:build_timm_backbone"),
        ("BACKBONE", "build_timm_fpn_backbone", "det.backbones.timm.timm_backbone:build_timm_fpn_backbone"),
    ]


@hookimpl
def det_extend_config(cfg: Any) -> None:
    from det.backbones.timm.config import add_timm_config

    add_timm_config(cfg)
