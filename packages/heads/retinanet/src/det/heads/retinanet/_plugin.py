"""det plugin declarations of det.heads.retinanet: cheap to import, names components lazily."""

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("META_ARCH", "RetinaNet", "det.heads.retinanet.retinanet:RetinaNet"),
        # LazyConfig-only in detectron2 (not in its registry): listed so `det plugins` shows it;
        # build_model(cfg) on it says to use the .py config
        ("META_ARCH", "FCOS", "det.heads.retinanet.fcos:FCOS"),
    ]
