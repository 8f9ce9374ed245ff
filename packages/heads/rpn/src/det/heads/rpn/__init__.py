"""Region proposal networks for det: ``RPN`` with ``StandardRPNHead``, and ``RRPN`` (rotated).

Importing this package is cheap (``det plugins`` imports its ``_plugin`` module); the public
names below are imported on first use::

    from det.heads.rpn import RPN, StandardRPNHead, find_top_rpn_proposals
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.heads.rpn.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.heads.rpn.proposal_utils import find_top_rpn_proposals as find_top_rpn_proposals
    from det.heads.rpn.rpn import RPN as RPN
    from det.heads.rpn.rpn import StandardRPNHead as StandardRPNHead
    from det.heads.rpn.rpn import build_rpn_head as build_rpn_head
    from det.heads.rpn.rrpn import RRPN as RRPN
    from det.heads.rpn.rrpn import find_top_rrpn_proposals as find_top_rrpn_proposals


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
