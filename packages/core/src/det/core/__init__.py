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

_LAZY = {
    "get_cfg": "det.core.config",
    "CfgNode": "det.core.config",
    "configurable": "det.core.config",
    "build_model": "det.core.modeling.build",
    "build_backbone": "det.core.modeling.build",
    "build_proposal_generator": "det.core.modeling.build",
    "build_roi_heads": "det.core.modeling.build",
    "build_sem_seg_head": "det.core.modeling.build",
    "EventStorage": "det.core.events",
    "get_event_storage": "det.core.events",
    "DefaultPredictor": "det.core.predictor",
    "get_plugin_manager": "det.core.plugins",
    "get_component": "det.core.registry",
    "list_components": "det.core.registry",
}

if TYPE_CHECKING:
    from det.core.config import CfgNode, configurable, get_cfg
    from det.core.events import EventStorage, get_event_storage
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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [  # noqa: RUF022 - grouped as _LAZY
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
    "DefaultPredictor",
    "get_plugin_manager",
    "get_component",
    "list_components",
]
assert set(__all__) == {"PLUGIN_API_VERSION", "__version__", "hookimpl", *_LAZY}
