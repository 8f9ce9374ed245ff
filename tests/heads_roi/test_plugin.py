"""det-heads-roi's plugin declarations: detectron2's names, lazy targets (what every plugin must do is checked once, in tests/integration/test_plugin_declarations.py)."""

from __future__ import annotations

from det.core.registry import get_component, list_components


def test_declared_components_resolve_to_the_classes():
    import det.heads.roi as roi

    ours = {(c.kind, c.name, c.target) for c in list_components() if c.distribution == "det-heads-roi"}
    assert ours == {
        ("ROI_HEADS", "StandardROIHeads", "det.heads.roi.roi_heads:StandardROIHeads"),
        ("ROI_HEADS", "Res5ROIHeads", "det.heads.roi.roi_heads:Res5ROIHeads"),
        ("ROI_HEADS", "CascadeROIHeads", "det.heads.roi.cascade_rcnn:CascadeROIHeads"),
        ("ROI_HEADS", "RROIHeads", "det.heads.roi.rotated_fast_rcnn:RROIHeads"),
        ("ROI_BOX_HEAD", "FastRCNNConvFCHead", "det.heads.roi.box_head:FastRCNNConvFCHead"),
    }
    for kind, name, _ in ours:
        assert get_component(kind, name) is getattr(roi, name)
