"""det-core: the hub that det's other distributions plug into.

Importing ``det.core`` is cheap: every public name below is imported on first use, so that
``det plugins`` and plugin declarations never pull in torch.

    from det.core import get_cfg, build_model
    cfg = get_cfg(); cfg.merge_from_file("mask_rcnn_R_50_FPN_3x.yaml")
    model = build_model(cfg)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.hookspecs import PLUGIN_API_VERSION, hookimpl
from det.core.lazy import lazy_exports
from det.core.version import __version__

if TYPE_CHECKING:
    from det.core.config import CfgNode, configurable, get_cfg
    from det.core.events import EventStorage, get_event_storage, has_event_storage
    from det.core.modeling.build import (
        build_backbone,
        build_model,
        build_proposal_generator,
        build_roi_heads,
        build_sem_seg_head,
    )
    from det.core.plugins import get_plugin_manager
    from det.core.predictor import DefaultPredictor
    from det.core.registry import get_component, list_components


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above


__all__ = [  # noqa: RUF022 - grouped as the TYPE_CHECKING imports (mypy --strict reads a literal list)
    "PLUGIN_API_VERSION",
    "__version__",
    "hookimpl",
    "get_cfg",
    "CfgNode",
    "configurable",
    "build_model",
    "build_backbone",
    "build_proposal_generator",
    "build_roi_heads",
    "build_sem_seg_head",
    "EventStorage",
    "get_event_storage",
    "has_event_storage",
    "DefaultPredictor",
    "get_plugin_manager",
    "get_component",
    "list_components",
]
