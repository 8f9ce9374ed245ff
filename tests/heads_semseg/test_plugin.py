"""det-heads-semseg's plugin declarations: names, lazy targets (what every plugin must do is checked once, in tests/integration/test_plugin_declarations.py)."""

from __future__ import annotations

from det.core import build_sem_seg_head, get_cfg
from det.core.registry import get_component, list_components


def test_declared_components_resolve_to_the_classes():
    from det.heads.semseg import PanopticFPN, SemanticSegmentor, SemSegFPNHead

    assert get_component("META_ARCH", "SemanticSegmentor") is SemanticSegmentor
    assert get_component("META_ARCH", "PanopticFPN") is PanopticFPN
    assert get_component("SEM_SEG_HEADS", "SemSegFPNHead") is SemSegFPNHead
    ours = {(c.kind, c.name, c.target) for c in list_components() if c.distribution == "det-heads-semseg"}
    assert ours == {
        ("META_ARCH", "SemanticSegmentor", "det.heads.semseg.semantic_seg:SemanticSegmentor"),
        ("META_ARCH", "PanopticFPN", "det.heads.semseg.panoptic_fpn:PanopticFPN"),
        ("SEM_SEG_HEADS", "SemSegFPNHead", "det.heads.semseg.semantic_seg:SemSegFPNHead"),
    }


def test_build_sem_seg_head_reads_the_config():
    from det.core.layers import ShapeSpec

    cfg = get_cfg()
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["p2", "p3"]
    shapes = {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8),
              "p6": ShapeSpec(channels=8, stride=64)}
    head = build_sem_seg_head(cfg, shapes)
    assert head.in_features == ["p2", "p3"]  # p6 is not read
    assert (head.ignore_value, head.common_stride, head.loss_weight) == (255, 4, 1.0)
    assert head.predictor.out_channels == 54
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["p2", "p9"]
    try:
        build_sem_seg_head(cfg, shapes)
    except ValueError as e:
        assert "MODEL.SEM_SEG_HEAD.IN_FEATURES names ['p9']" in str(e)
    else:
        raise AssertionError("an unknown IN_FEATURES must raise")


def test_public_names():
    # laziness and completeness of every lazy package: tests/test_lazy_exports.py
    import det.heads.semseg as pkg

    assert set(pkg.__all__) >= {"SemSegFPNHead", "SemanticSegmentor", "PanopticFPN",
                                "combine_semantic_and_instance_outputs", "combine_panoptic_outputs"}
