"""det-mmdet-wrapper: mmdetection backbones and detectors inside det, as detectron2's
``detectron2.modeling.mmdet_wrapper`` (``MMDetBackbone``, ``MMDetDetector``).

Importing this package imports neither torch nor mmdet; the names load on first use::

    from det.mmdet_wrapper import MMDetDetector
    model = MMDetDetector(detector=mmdet_config_dict, pixel_mean=[...], pixel_std=[...])

Building from mmdet config dicts needs ``pip install 'det-mmdet-wrapper[mmdet]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.mmdet_wrapper.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.mmdet_wrapper.wrappers import MMDET_INSTALL as MMDET_INSTALL
    from det.mmdet_wrapper.wrappers import MMDetBackbone as MMDetBackbone
    from det.mmdet_wrapper.wrappers import MMDetDetector as MMDetDetector


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
