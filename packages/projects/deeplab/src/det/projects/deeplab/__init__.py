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

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from det.projects.deeplab.build_solver import build_lr_scheduler  # noqa: F401
    from det.projects.deeplab.config import add_deeplab_config  # noqa: F401
    from det.projects.deeplab.loss import DeepLabCE  # noqa: F401
    from det.projects.deeplab.lr_scheduler import WarmupPolyLR  # noqa: F401
    from det.projects.deeplab.resnet import DeepLabStem, build_resnet_deeplab_backbone  # noqa: F401
    from det.projects.deeplab.semantic_seg import DeepLabV3Head, DeepLabV3PlusHead  # noqa: F401


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above


__all__ = ["__version__", *exported(__name__)]
