"""Panoptic-DeepLab for det (detectron2's ``projects/Panoptic-DeepLab``): the ``PanopticDeepLab``
meta-architecture, ``PanopticDeepLabSemSegHead``, ``PanopticDeepLabInsEmbedHead``, the target
generator and dataset mapper it trains with, the post-processing and
``add_panoptic_deeplab_config``. It builds on det-deeplab (backbone, ASPP decoder, loss, poly LR).

Installing det-panoptic-deeplab is all it takes: its config keys are in every ``get_cfg()`` and
its components are found by name. The public names load on first use::

    from det.projects.panoptic_deeplab import PanopticDeepLab, PanopticDeeplabDatasetMapper
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import lazy_exports
from det.projects.panoptic_deeplab.version import __version__

_LAZY = {
    "add_panoptic_deeplab_config": "det.projects.panoptic_deeplab.config",
    "PanopticDeepLab": "det.projects.panoptic_deeplab.panoptic_seg",
    "PanopticDeepLabSemSegHead": "det.projects.panoptic_deeplab.panoptic_seg",
    "PanopticDeepLabInsEmbedHead": "det.projects.panoptic_deeplab.panoptic_seg",
    "INS_EMBED_BRANCHES_REGISTRY": "det.projects.panoptic_deeplab.panoptic_seg",
    "build_ins_embed_branch": "det.projects.panoptic_deeplab.panoptic_seg",
    "PanopticDeepLabTargetGenerator": "det.projects.panoptic_deeplab.target_generator",
    "PanopticDeeplabDatasetMapper": "det.projects.panoptic_deeplab.dataset_mapper",
    "get_panoptic_segmentation": "det.projects.panoptic_deeplab.post_processing",
    "build_optimizer": "det.projects.panoptic_deeplab.build_solver",
}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from det.projects.panoptic_deeplab.build_solver import build_optimizer  # noqa: F401
    from det.projects.panoptic_deeplab.config import add_panoptic_deeplab_config  # noqa: F401
    from det.projects.panoptic_deeplab.dataset_mapper import PanopticDeeplabDatasetMapper  # noqa: F401
    from det.projects.panoptic_deeplab.panoptic_seg import (  # noqa: F401
        INS_EMBED_BRANCHES_REGISTRY,
        PanopticDeepLab,
        PanopticDeepLabInsEmbedHead,
        PanopticDeepLabSemSegHead,
        build_ins_embed_branch,
    )
    from det.projects.panoptic_deeplab.post_processing import get_panoptic_segmentation  # noqa: F401
    from det.projects.panoptic_deeplab.target_generator import PanopticDeepLabTargetGenerator  # noqa: F401


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["__version__", *_LAZY]
