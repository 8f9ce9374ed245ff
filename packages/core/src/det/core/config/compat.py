"""detectron2's ``config.compat``: ``upgrade_config`` / ``downgrade_config`` between config VERSIONs.

detectron2 converts its pre-release (VERSION 0 and 1, 2019) key layouts to VERSION 2 and back. det
reads VERSION 2 only (``CfgNode.merge_from_file`` refuses another), and neither it nor any model
zoo file needs those conversions, so these functions are honest about it: converting VERSION 2 to
VERSION 2 returns a copy; anything else is a ValueError that names the versions and says det does
not provide the conversion::

    cfg = upgrade_config(get_cfg())          # a clone, VERSION 2
    downgrade_config(cfg, to_version=1)      # ValueError: det does not convert ...
"""

from __future__ import annotations

from det.core.config.config import CURRENT_VERSION, CfgNode

__all__ = ["downgrade_config", "upgrade_config"]


def _convert(cfg: CfgNode, to_version: int, action: str) -> CfgNode:
    version = cfg.get("VERSION", None)
    if version is None:
        raise ValueError(f"{action}_config: the config has no VERSION key (det's and detectron2's configs have "
                         f"VERSION: {CURRENT_VERSION}); get one from det.core.config.get_cfg()")
    if (action == "upgrade" and version > to_version) or (action == "downgrade" and version < to_version):
        raise ValueError(f"{action}_config: cannot {action} a VERSION {version} config to VERSION {to_version}")
    if version != CURRENT_VERSION or to_version != CURRENT_VERSION:
        raise ValueError(
            f"{action}_config: det reads only VERSION {CURRENT_VERSION} configs (detectron2's current format) and "
            f"does not convert VERSION {version} to VERSION {to_version}; detectron2's pre-release formats "
            "(VERSION 0 and 1) are not supported")
    return cfg.clone()


def upgrade_config(cfg: CfgNode, to_version: int | None = None) -> CfgNode:
    """A copy of ``cfg`` at ``to_version`` (default: the current VERSION, 2). det has no converter
    between versions, so ``cfg`` must already be VERSION 2 (else ValueError)."""
    return _convert(cfg, CURRENT_VERSION if to_version is None else to_version, "upgrade")


def downgrade_config(cfg: CfgNode, to_version: int) -> CfgNode:
    """A copy of ``cfg`` at ``to_version``. det has no converter between versions, so only
    ``to_version=2`` of a VERSION 2 config works (else ValueError)."""
    return _convert(cfg, to_version, "downgrade")
