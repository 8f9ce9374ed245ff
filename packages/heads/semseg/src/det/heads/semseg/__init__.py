"""Semantic segmentation and Panoptic FPN for det: ``SemSegFPNHead``, ``SemanticSegmentor``,
``PanopticFPN`` and ``combine_semantic_and_instance_outputs``.

Importing this package is cheap (``det plugins`` imports its ``_plugin`` module); the public
names below are imported on first use. PanopticFPN builds an RPN, ROI heads and a mask head,
which come with ``pip install 'det-heads-semseg[panoptic]'``::

    from det.heads.semseg import SemanticSegmentor, SemSegFPNHead, PanopticFPN
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import lazy_exports
from det.heads.semseg.version import __version__

_LAZY = {
    "SemSegFPNHead": "det.heads.semseg.semantic_seg",
    "SemanticSegmentor": "det.heads.semseg.semantic_seg",
    "PanopticFPN": "det.heads.semseg.panoptic_fpn",
    "combine_semantic_and_instance_outputs": "det.heads.semseg.panoptic_fpn",
    "combine_panoptic_outputs": "det.heads.semseg.panoptic_fpn",
}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from det.heads.semseg.panoptic_fpn import (  # noqa: F401
        PanopticFPN,
        combine_panoptic_outputs,
        combine_semantic_and_instance_outputs,
    )
    from det.heads.semseg.semantic_seg import SemanticSegmentor, SemSegFPNHead  # noqa: F401


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["__version__", *_LAZY]
