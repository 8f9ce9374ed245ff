"""det plugin declarations of det.backbones: cheap to import (no torch), names components lazily."""

from typing import Any

from det.core.hookspecs import ComponentDecl, ConverterDecl, hookimpl

DET_PLUGIN_API_VERSION = 1

_BACKBONES = {
    "build_resnet_backbone": "det.backbones.resnet",
    "build_resnet_fpn_backbone": "det.backbones.fpn",
    "build_retinanet_resnet_fpn_backbone": "det.backbones.fpn",
    "build_torchvision_backbone": "det.backbones.torchvision_backbone",
    "build_torchvision_fpn_backbone": "det.backbones.torchvision_backbone",
}


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [("BACKBONE", name, f"{module}:{name}") for name, module in _BACKBONES.items()]


@hookimpl
def det_extend_config(cfg: Any) -> None:
    # det.backbones.config imports no torch either: it only adds yacs nodes.
    from det.backbones.config import add_torchvision_backbone_config

    add_torchvision_backbone_config(cfg)


@hookimpl
def det_checkpoint_converters() -> list[ConverterDecl]:
    return [("torchvision_resnet", "det.backbones.convert:convert_torchvision_resnet_checkpoint")]
