"""det-heads-keypoint's plugin declarations: detectron2's names, lazy targets (what every plugin must do is checked once, in tests/integration/test_plugin_declarations.py)."""

from __future__ import annotations

import pytest

from det.core.registry import get_component, list_components


def test_declared_components_resolve_to_the_classes():
    import det.heads.keypoint as package

    ours = {(c.kind, c.name, c.target) for c in list_components() if c.distribution == "det-heads-keypoint"}
    assert ours == {("ROI_KEYPOINT_HEAD", "KRCNNConvDeconvUpsampleHead", "det.heads.keypoint.keypoint_head:KRCNNConvDeconvUpsampleHead")}
    assert get_component("ROI_KEYPOINT_HEAD", "KRCNNConvDeconvUpsampleHead") is package.KRCNNConvDeconvUpsampleHead


def test_unknown_attribute_is_an_attribute_error():
    import det.heads.keypoint as package

    with pytest.raises(AttributeError, match="NoSuchHead"):
        _ = package.NoSuchHead
