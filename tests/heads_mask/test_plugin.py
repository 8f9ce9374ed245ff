"""det-heads-mask's plugin declarations: detectron2's names, lazy targets, torch-free module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from det.core.registry import get_component, list_components


def test_declared_components_resolve_to_the_classes():
    import det.heads.mask as package

    ours = {(c.kind, c.name, c.target) for c in list_components() if c.distribution == "det-heads-mask"}
    assert ours == {("ROI_MASK_HEAD", "MaskRCNNConvUpsampleHead", "det.heads.mask.mask_head:MaskRCNNConvUpsampleHead")}
    assert get_component("ROI_MASK_HEAD", "MaskRCNNConvUpsampleHead") is package.MaskRCNNConvUpsampleHead


def test_every_detectron2_name_of_the_kind_is_provided(reference_dir):
    for line in (reference_dir / "detectron2_registry_names.txt").read_text().splitlines():
        kind, _, names = line.partition(":")
        if kind.strip() == "ROI_MASK_HEAD":
            wanted = {n.strip() for n in names.split(",") if n.strip()}
            break
    else:
        raise AssertionError("ROI_MASK_HEAD missing from the reference registry names")
    assert wanted == {"MaskRCNNConvUpsampleHead"}
    assert wanted <= {c.name for c in list_components("ROI_MASK_HEAD") if c.distribution == "det-heads-mask"}


def test_plugin_module_and_package_import_without_torch():
    code = (
        "import sys, det.heads.mask, det.heads.mask._plugin as p\n"
        "assert p.DET_PLUGIN_API_VERSION == 1\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(len(p.det_components()), det.heads.mask.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0.1.0"]


def test_unknown_attribute_is_an_attribute_error():
    import det.heads.mask as package

    with pytest.raises(AttributeError, match="NoSuchHead"):
        _ = package.NoSuchHead
