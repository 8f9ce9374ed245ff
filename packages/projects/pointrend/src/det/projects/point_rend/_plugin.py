"""det plugin declarations of det.projects.point_rend: cheap to import (no torch), names components lazily."""

from typing import Any

from det.core.hookspecs import ComponentDecl, Detectron2NameDecl, hookimpl

DET_PLUGIN_API_VERSION = 1

_COMPONENTS = (
    ("ROI_MASK_HEAD", "PointRendMaskHead", "det.projects.point_rend.mask_head:PointRendMaskHead"),
    ("ROI_MASK_HEAD", "ImplicitPointRendMaskHead", "det.projects.point_rend.mask_head:ImplicitPointRendMaskHead"),
    ("SEM_SEG_HEADS", "PointRendSemSegHead", "det.projects.point_rend.semantic_seg:PointRendSemSegHead"),
    ("ROI_HEADS", "PointRendROIHeads", "det.projects.point_rend.roi_heads:PointRendROIHeads"),
    # detectron2's POINT_HEAD registry (MODEL.POINT_HEAD.NAME)
    ("POINT_HEAD", "StandardPointHead", "det.projects.point_rend.point_head:StandardPointHead"),
    ("POINT_HEAD", "ImplicitPointHead", "det.projects.point_rend.point_head:ImplicitPointHead"),
)


@hookimpl
def det_components() -> list[ComponentDecl]:
    return list(_COMPONENTS)


@hookimpl
def det_extend_config(cfg: Any) -> None:
    # det.projects.point_rend.config imports no torch: it only adds yacs nodes.
    from det.projects.point_rend.config import add_pointrend_config

    add_pointrend_config(cfg)


_NAMES = {
    "add_pointrend_config": "det.projects.point_rend.config",
    "PointRendMaskHead": "det.projects.point_rend.mask_head",
    "ImplicitPointRendMaskHead": "det.projects.point_rend.mask_head",
    "PointRendSemSegHead": "det.projects.point_rend.semantic_seg",
    "ColorAugSSDTransform": "det.projects.point_rend.color_augmentation",
}


@hookimpl
def det_detectron2_names() -> list[Detectron2NameDecl]:
    # `from detectron2.projects.point_rend import add_pointrend_config, ...` (detectron2's
    # train_net.py) and its submodules, served whole
    names = [("detectron2.projects.point_rend", name, f"{module}:{name}") for name, module in _NAMES.items()]
    names += [(f"detectron2.projects.point_rend.{file}", "*", f"det.projects.point_rend.{file}:*")
              for file in ("config", "mask_head", "point_features", "point_head", "roi_heads", "semantic_seg",
                           "color_augmentation")]
    return names
