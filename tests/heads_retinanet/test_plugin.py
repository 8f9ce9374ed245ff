"""det-heads-retinanet's plugin declarations: names, lazy targets (what every plugin must do is checked once, in tests/integration/test_plugin_declarations.py)."""

from __future__ import annotations

from det.core.registry import get_component, list_components


def test_declared_components_resolve_to_the_classes():
    from det.heads.retinanet import FCOS, RetinaNet

    assert get_component("META_ARCH", "RetinaNet") is RetinaNet
    assert get_component("META_ARCH", "FCOS") is FCOS
    ours = {(c.kind, c.name, c.target) for c in list_components() if c.distribution == "det-heads-retinanet"}
    assert ours == {("META_ARCH", "RetinaNet", "det.heads.retinanet.retinanet:RetinaNet"),
                    ("META_ARCH", "FCOS", "det.heads.retinanet.fcos:FCOS")}


def test_public_names():
    # laziness and completeness of every lazy package: tests/test_lazy_exports.py
    import det.heads.retinanet as pkg

    assert set(pkg.__all__) >= {"RetinaNet", "RetinaNetHead", "FCOS", "FCOSHead", "DenseDetector",
                                "permute_to_N_HWA_K"}
