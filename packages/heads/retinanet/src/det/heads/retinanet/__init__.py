"""RetinaNet, FCOS and one-stage dense detectors for det: ``RetinaNet``, ``RetinaNetHead``,
``FCOS``, ``FCOSHead`` and the ``DenseDetector`` base other one-stage detectors build on.

Importing this package is cheap (``det plugins`` imports its ``_plugin`` module); the public
names below are imported on first use::

    from det.heads.retinanet import RetinaNet, RetinaNetHead, FCOS, DenseDetector
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.heads.retinanet.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.core.layers import CycleBatchNormList as CycleBatchNormList
    from det.heads.retinanet.dense_detector import DenseDetector as DenseDetector
    from det.heads.retinanet.dense_detector import permute_to_N_HWA_K as permute_to_N_HWA_K
    from det.heads.retinanet.fcos import FCOS as FCOS
    from det.heads.retinanet.fcos import FCOSHead as FCOSHead
    from det.heads.retinanet.retinanet import RetinaNet as RetinaNet
    from det.heads.retinanet.retinanet import RetinaNetHead as RetinaNetHead


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
