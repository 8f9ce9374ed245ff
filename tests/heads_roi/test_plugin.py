"""det-heads-roi's plugin declarations: detectron2's names, lazy targets, torch-free module."""

from __future__ import annotations

import subprocess
import sys

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


def test_every_detectron2_roi_name_is_provided(reference_dir):
    # detectron2's registered ROI_HEADS / ROI_BOX_HEAD names are all ours
    wanted = {}
    for line in (reference_dir / "detectron2_registry_names.txt").read_text().splitlines():
        kind, _, names = line.partition(":")
        if kind.strip() in ("ROI_HEADS", "ROI_BOX_HEAD"):
            wanted[kind.strip()] = {n.strip() for n in names.split(",")}
    assert wanted == {"ROI_HEADS": {"CascadeROIHeads", "RROIHeads", "Res5ROIHeads", "StandardROIHeads"},
                      "ROI_BOX_HEAD": {"FastRCNNConvFCHead"}}
    for kind, names in wanted.items():
        provided = {c.name for c in list_components(kind) if c.distribution == "det-heads-roi"}
        assert names <= provided


def test_plugin_module_and_package_import_without_torch():
    code = (
        "import sys, det.heads.roi, det.heads.roi._plugin as p\n"
        "assert p.DET_PLUGIN_API_VERSION == 1\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(len(p.det_components()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"
