"""det plugin declarations of det.heads.mask: cheap to import, names components lazily."""

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("ROI_MASK_HEAD", "MaskRCNNConvUpsampleHead", "det.heads.mask.mask_head:MaskRCNNConvUpsampleHead"),
    ]
