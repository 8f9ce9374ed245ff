"""det-heads-rpn's plugin declarations: names, lazy targets (what every plugin must do is checked once, in tests/integration/test_plugin_declarations.py)."""

from __future__ import annotations

from det.core.registry import get_component, list_components


def test_declared_components_resolve_to_the_classes():
    from det.heads.rpn import RPN, RRPN, StandardRPNHead

    assert get_component("PROPOSAL_GENERATOR", "RPN") is RPN
    assert get_component("PROPOSAL_GENERATOR", "RRPN") is RRPN
    assert get_component("RPN_HEAD", "StandardRPNHead") is StandardRPNHead
    ours = {(c.kind, c.name, c.target) for c in list_components() if c.distribution == "det-heads-rpn"}
    assert ours == {
        ("PROPOSAL_GENERATOR", "RPN", "det.heads.rpn.rpn:RPN"),
        ("PROPOSAL_GENERATOR", "RRPN", "det.heads.rpn.rrpn:RRPN"),
        ("RPN_HEAD", "StandardRPNHead", "det.heads.rpn.rpn:StandardRPNHead"),
    }


def test_public_names():
    # laziness and completeness of every lazy package: tests/test_lazy_exports.py
    import det.heads.rpn as pkg

    assert set(pkg.__all__) >= {"RPN", "StandardRPNHead", "RRPN", "find_top_rpn_proposals", "build_rpn_head"}
