"""det plugin declarations of det.heads.rpn: cheap to import, names components lazily."""

from det.core.hookspecs import ComponentDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_components() -> list[ComponentDecl]:
    return [
        ("PROPOSAL_GENERATOR", "RPN", "det.heads.rpn.rpn:RPN"),
        ("PROPOSAL_GENERATOR", "RRPN", "det.heads.rpn.rrpn:RRPN"),
        ("RPN_HEAD", "StandardRPNHead", "det.heads.rpn.rpn:StandardRPNHead"),
    ]
