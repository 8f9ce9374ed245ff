"""det plugin declarations of det.heads.roi: cheap to import, names components lazily."""

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("ROI_HEADS", "StandardROIHeads", "det.heads.roi.roi_heads:StandardROIHeads"),
        ("ROI_HEADS", "Res5ROIHeads", "det.heads.roi.roi_heads:Res5ROIHeads"),
        ("ROI_HEADS", "CascadeROIHeads", "det.heads.roi.cascade_rcnn:CascadeROIHeads"),
        ("ROI_HEADS", "RROIHeads", "det.heads.roi.rotated_fast_rcnn:RROIHeads"),
        ("ROI_BOX_HEAD", "FastRCNNConvFCHead", "det.heads.roi.box_head:FastRCNNConvFCHead"),
    ]
