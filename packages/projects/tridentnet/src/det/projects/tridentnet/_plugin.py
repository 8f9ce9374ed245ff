"""det plugin declarations of det-tridentnet: cheap to import (no torch), names components lazily."""

from typing import Any

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1

_BACKBONE = "det.projects.tridentnet.trident_backbone"
_RPN = "det.projects.tridentnet.trident_rpn"
_RCNN = "det.projects.tridentnet.trident_rcnn"


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("BACKBONE", "build_trident_resnet_backbone", f"{_BACKBONE}:build_trident_resnet_backbone"),
        ("PROPOSAL_GENERATOR", "TridentRPN", f"{_RPN}:TridentRPN"),
        ("ROI_HEADS", "TridentRes5ROIHeads", f"{_RCNN}:TridentRes5ROIHeads"),
        ("ROI_HEADS", "TridentStandardROIHeads", f"{_RCNN}:TridentStandardROIHeads"),
    ]


@hookimpl
def det_extend_config(cfg: Any) -> None:
    from det.projects.tridentnet.config import add_tridentnet_config

    add_tridentnet_config(cfg)
