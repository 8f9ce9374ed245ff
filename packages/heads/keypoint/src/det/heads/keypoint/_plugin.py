"""det plugin declarations of det.heads.keypoint: cheap to import, names components lazily."""

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        (
            "ROI_KEYPOINT_HEAD",
            "KRCNNConvDeconvUpsampleHead",
            "det.heads.keypoint.keypoint_head:KRCNNConvDeconvUpsampleHead",
        ),
    ]
