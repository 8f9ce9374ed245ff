"""det-heads-retinanet's plugin declarations: names, lazy targets, a torch-free plugin module."""

from __future__ import annotations

import subprocess
import sys

from det.core.registry import get_component, list_components


def test_declared_components_resolve_to_the_classes():
    from det.heads.retinanet import RetinaNet

    assert get_component("META_ARCH", "RetinaNet") is RetinaNet
    ours = {(c.kind, c.name, c.target) for c in list_components() if c.distribution == "det-heads-retinanet"}
    assert ours == {("META_ARCH", "RetinaNet", "det.heads.retinanet.retinanet:RetinaNet")}


def test_plugin_module_and_package_import_without_torch():
    code = (
        "import sys, det.heads.retinanet, det.heads.retinanet._plugin as p\n"
        "assert p.DET_PLUGIN_API_VERSION == 1\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(len(p.det_components()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_public_names_are_lazy_and_complete():
    import det.heads.retinanet as pkg

    assert set(pkg.__all__) >= {"RetinaNet", "RetinaNetHead", "DenseDetector", "permute_to_N_HWA_K"}
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None
