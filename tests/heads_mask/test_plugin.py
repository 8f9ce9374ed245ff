"""det-heads-mask's plugin declarations: detectron2's names, lazy targets (what every plugin must do is checked once, in tests/integration/test_plugin_declarations.py)."""

from __future__ import annotations

import pytest

from det.core.registry import get_component, list_components


def test_declared_components_resolve_to_the_classes():
    import det.heads.mask as package

    ours = {(c.kind, c.name, c.target) for c in list_components() if c.distribution == "det-heads-mask"}
    assert ours == {("ROI_MASK_HEAD", "MaskRCNNConvUpsampleHead", "det.heads.mask.mask_head:MaskRCNNConvUpsampleHead")}
    assert get_component("ROI_MASK_HEAD", "MaskRCNNConvUpsampleHead") is package.MaskRCNNConvUpsampleHead


def test_unknown_attribute_is_an_attribute_error():
    import det.heads.mask as package

    with pytest.raises(AttributeError, match="NoSuchHead"):
        _ = package.NoSuchHead
