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
from det.core.lazy import exported, lazy_exports
from det.core.version import __version__

if TYPE_CHECKING:
    from det.core.config import CfgNode as CfgNode
    from det.core.config import configurable as configurable
    from det.core.config import get_cfg as get_cfg
    from det.core.events import EventStorage as EventStorage
    from det.core.events import get_event_storage as get_event_storage
    from det.core.events import has_event_storage as has_event_storage
    from det.core.modeling.build import build_backbone as build_backbone
    from det.core.modeling.build import build_model as build_model
    from det.core.modeling.build import build_proposal_generator as build_proposal_generator
    from det.core.modeling.build import build_roi_heads as build_roi_heads
    from det.core.modeling.build import build_sem_seg_head as build_sem_seg_head
    from det.core.plugins import get_plugin_manager as get_plugin_manager
    from det.core.predictor import DefaultPredictor as DefaultPredictor
    from det.core.registry import get_component as get_component
    from det.core.registry import list_components as list_components


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above


__all__ = ["PLUGIN_API_VERSION", "__version__", "hookimpl", *exported(__name__)]
