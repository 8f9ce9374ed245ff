"""det plugin declarations of det.projects.panoptic_deeplab: cheap to import (no torch), names
components lazily."""

from typing import Any

from det.core.hookspecs import ComponentDecl, Detectron2NameDecl, hookimpl

DET_PLUGIN_API_VERSION = 1

_MODULE = "det.projects.panoptic_deeplab.panoptic_seg"


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("META_ARCH", "PanopticDeepLab", f"{_MODULE}:PanopticDeepLab"),
        ("SEM_SEG_HEADS", "PanopticDeepLabSemSegHead", f"{_MODULE}:PanopticDeepLabSemSegHead"),
        # detectron2's INS_EMBED_BRANCHES_REGISTRY; MODEL.INS_EMBED_HEAD.NAME picks one
        ("INS_EMBED_BRANCHES", "PanopticDeepLabInsEmbedHead", f"{_MODULE}:PanopticDeepLabInsEmbedHead"),
    ]


@hookimpl
def det_extend_config(cfg: Any) -> None:
    # the config module imports no torch either: it only adds yacs keys (DeepLab's too)
    from det.projects.panoptic_deeplab.config import add_panoptic_deeplab_config

    add_panoptic_deeplab_config(cfg)


@hookimpl
def det_detectron2_names() -> list[Detectron2NameDecl]:
    return [("detectron2.projects.panoptic_deeplab", "*", "det.projects.panoptic_deeplab:*")]
