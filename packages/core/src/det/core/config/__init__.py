"""det's config system: detectron2's yacs schema and merge rules, and its LazyConfig Python files.

    from det.core.config import get_cfg, configurable
    cfg = get_cfg(); cfg.merge_from_file("mask_rcnn_R_50_FPN_3x.yaml")

    from det.core.config import LazyConfig, LazyCall, instantiate
    cfg = LazyConfig.load("mask_rcnn_R_50_FPN_1x.py"); model = instantiate(cfg.model)

Importing this package imports neither torch nor omegaconf: ``LazyConfig`` and ``LazyCall`` load
``det.core.config.lazy`` (and omegaconf) on first use.
"""

from typing import TYPE_CHECKING

from det.core.config.compat import downgrade_config, upgrade_config
from det.core.config.config import CfgNode, ConfigKeyError, configurable, get_cfg, global_cfg, set_global_cfg

# The function shadows its module's name on the package, as detectron2's ``config.instantiate``.
from det.core.config.instantiate import instantiate
from det.core.lazy import exported, lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.core.config.lazy import LazyCall as LazyCall
    from det.core.config.lazy import LazyConfig as LazyConfig

__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["CfgNode", "ConfigKeyError", "configurable", "downgrade_config", "get_cfg", "global_cfg", "instantiate",
           "set_global_cfg", "upgrade_config", *exported(__name__)]
