"""det plugin declarations of det.backbones.vit: cheap to import (no torch), names components lazily."""

from typing import Any

from det.core.hookspecs import ComponentDecl, Detectron2NameDecl, hookimpl

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
def det_components() -> list[ComponentDecl]:
    return [("BACKBONE", name, f"det.backbones.vit.build:{name}") for name in _BACKBONES]


@hookimpl
def det_extend_config(cfg: Any) -> None:
    # det.backbones.vit.config imports no torch: it only adds yacs nodes.
    from det.backbones.vit.config import add_vit_config

    add_vit_config(cfg)


_CLASSES = {
    "ViT": "det.backbones.vit.vit",
    "SimpleFeaturePyramid": "det.backbones.vit.vit",
    "get_vit_lr_decay_rate": "det.backbones.vit.vit",
    "MViT": "det.backbones.vit.mvit",
    "SwinTransformer": "det.backbones.vit.swin",
}


@hookimpl
def det_detectron2_names() -> list[Detectron2NameDecl]:
    # detectron2.modeling and .modeling.backbone re-export the classes; the four files of
    # detectron2.modeling.backbone are served whole (LazyConfigs import from all of them).
    names = [(path, name, f"{module}:{name}") for path in ("detectron2.modeling", "detectron2.modeling.backbone")
             for name, module in _CLASSES.items()]
    names += [(f"detectron2.modeling.backbone.{file}", "*", f"det.backbones.vit.{file}:*")
              for file in ("vit", "mvit", "swin", "utils")]
    return names
