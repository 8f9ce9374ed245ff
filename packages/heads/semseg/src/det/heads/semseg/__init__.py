"""Semantic segmentation and Panoptic FPN for det: ``SemSegFPNHead``, ``SemanticSegmentor``,
``PanopticFPN`` and ``combine_semantic_and_instance_outputs``.

Importing this package is cheap (``det plugins`` imports its ``_plugin`` module); the public
names below are imported on first use. PanopticFPN builds an RPN, ROI heads and a mask head,
which come with ``pip install 'det-heads-semseg[panoptic]'``::

    from det.heads.semseg import SemanticSegmentor, SemSegFPNHead, PanopticFPN
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.heads.semseg.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.heads.semseg.panoptic_fpn import PanopticFPN as PanopticFPN
    from det.heads.semseg.panoptic_fpn import combine_panoptic_outputs as combine_panoptic_outputs
    from det.heads.semseg.panoptic_fpn import (
        combine_semantic_and_instance_outputs as combine_semantic_and_instance_outputs,
    )
    from det.heads.semseg.semantic_seg import SemanticSegmentor as SemanticSegmentor
    from det.heads.semseg.semantic_seg import SemSegFPNHead as SemSegFPNHead


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
