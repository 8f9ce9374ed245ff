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

from det.core.lazy import exported, lazy_exports
from det.projects.panoptic_deeplab.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.projects.panoptic_deeplab.build_solver import build_optimizer as build_optimizer
    from det.projects.panoptic_deeplab.config import (
        add_panoptic_deeplab_config as add_panoptic_deeplab_config,
    )
    from det.projects.panoptic_deeplab.dataset_mapper import (
        PanopticDeeplabDatasetMapper as PanopticDeeplabDatasetMapper,
    )
    from det.projects.panoptic_deeplab.panoptic_seg import (
        INS_EMBED_BRANCHES_REGISTRY as INS_EMBED_BRANCHES_REGISTRY,
    )
    from det.projects.panoptic_deeplab.panoptic_seg import PanopticDeepLab as PanopticDeepLab
    from det.projects.panoptic_deeplab.panoptic_seg import (
        PanopticDeepLabInsEmbedHead as PanopticDeepLabInsEmbedHead,
    )
    from det.projects.panoptic_deeplab.panoptic_seg import (
        PanopticDeepLabSemSegHead as PanopticDeepLabSemSegHead,
    )
    from det.projects.panoptic_deeplab.panoptic_seg import build_ins_embed_branch as build_ins_embed_branch
    from det.projects.panoptic_deeplab.post_processing import (
        get_panoptic_segmentation as get_panoptic_segmentation,
    )
    from det.projects.panoptic_deeplab.target_generator import (
        PanopticDeepLabTargetGenerator as PanopticDeepLabTargetGenerator,
    )


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
