"""det plugin declarations of det.heads.semseg: cheap to import, names components lazily."""

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("META_ARCH", "SemanticSegmentor", "det.heads.semseg.semantic_seg:SemanticSegmentor"),
        # its module imports only det-core; the instance branch it builds needs the [panoptic] extra
        ("META_ARCH", "PanopticFPN", "det.heads.semseg.panoptic_fpn:PanopticFPN"),
        ("SEM_SEG_HEADS", "SemSegFPNHead", "det.heads.semseg.semantic_seg:SemSegFPNHead"),
    ]
