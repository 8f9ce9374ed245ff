"""DeepLab for det (detectron2's ``projects/DeepLab``): ``DeepLabV3Head``, ``DeepLabV3PlusHead``,
the DeepLab ResNet (``build_resnet_deeplab_backbone``, ``DeepLabStem``), the poly LR schedule
(``WarmupPolyLR``, ``build_lr_scheduler``), ``DeepLabCE`` and ``add_deeplab_config``.

Installing det-deeplab is all it takes: its config keys are in every ``get_cfg()``, its
components are found by name, and det's trainers build ``SOLVER.LR_SCHEDULER_NAME:
"WarmupPolyLR"``. The public names load on first use::

    from det.projects.deeplab import DeepLabV3PlusHead, build_resnet_deeplab_backbone
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.projects.deeplab.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.projects.deeplab.build_solver import build_lr_scheduler as build_lr_scheduler
    from det.projects.deeplab.config import add_deeplab_config as add_deeplab_config
    from det.projects.deeplab.loss import DeepLabCE as DeepLabCE
    from det.projects.deeplab.lr_scheduler import WarmupPolyLR as WarmupPolyLR
    from det.projects.deeplab.resnet import DeepLabStem as DeepLabStem
    from det.projects.deeplab.resnet import build_resnet_deeplab_backbone as build_resnet_deeplab_backbone
    from det.projects.deeplab.semantic_seg import DeepLabV3Head as DeepLabV3Head
    from det.projects.deeplab.semantic_seg import DeepLabV3PlusHead as DeepLabV3PlusHead


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
