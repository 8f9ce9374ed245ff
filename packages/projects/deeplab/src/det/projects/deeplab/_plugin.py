"""det plugin declarations of det.projects.deeplab: cheap to import (no torch), names components
lazily."""

from typing import Any

from det.core.hookspecs import ComponentDecl, Detectron2NameDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("BACKBONE", "build_resnet_deeplab_backbone", "det.projects.deeplab.resnet:build_resnet_deeplab_backbone"),
        ("SEM_SEG_HEADS", "DeepLabV3Head", "det.projects.deeplab.semantic_seg:DeepLabV3Head"),
        ("SEM_SEG_HEADS", "DeepLabV3PlusHead", "det.projects.deeplab.semantic_seg:DeepLabV3PlusHead"),
        # SOLVER.LR_SCHEDULER_NAME: det-engine's build_lr_scheduler looks up names it lacks here
        ("LR_SCHEDULER", "WarmupPolyLR", "det.projects.deeplab.build_solver:build_warmup_poly_lr"),
    ]


@hookimpl
def det_extend_config(cfg: Any) -> None:
    # det.projects.deeplab.config imports no torch either: it only adds yacs keys.
    from det.projects.deeplab.config import add_deeplab_config

    add_deeplab_config(cfg)


@hookimpl
def det_detectron2_names() -> list[Detectron2NameDecl]:
    # detectron2 ships the project as detectron2.projects.deeplab
    return [
        ("detectron2.projects.deeplab", "*", "det.projects.deeplab:*"),
        ("detectron2.projects.deeplab.loss", "*", "det.projects.deeplab.loss:*"),
    ]
