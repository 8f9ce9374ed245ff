"""Config keys of det-tridentnet: ``MODEL.TRIDENT`` (imports no torch)."""

from __future__ import annotations

from typing import Any

__all__ = ["add_tridentnet_config"]

# detectron2's defaults (projects/TridentNet/tridentnet/config.py)
_DEFAULTS: dict[str, Any] = {
    # number of branches; each branch is the same weights at its own dilation
    "NUM_BRANCH": 3,
    # the dilation (and padding) of each branch's 3x3 convolutions
    "BRANCH_DILATIONS": [1, 2, 3],
    # the ResNet stage made of trident blocks ("res2" .. "res5"; the paper uses res4)
    "TRIDENT_STAGE": "res4",
    # inference: -1 runs every branch and merges their detections with NMS; an index runs that
    # branch alone ("TridentNet Fast"; the middle branch is recommended)
    "TEST_BRANCH_IDX": 1,
}


def add_tridentnet_config(cfg: Any) -> None:
    """Add ``MODEL.TRIDENT`` (``NUM_BRANCH``, ``BRANCH_DILATIONS``, ``TRIDENT_STAGE``,
    ``TEST_BRANCH_IDX``) to ``cfg``, a not-frozen yacs CfgNode; keys already present win.

    Installing det-tridentnet is enough: its plugin adds these keys to every ``get_cfg()``. The
    function exists for detectron2 scripts (``cfg = get_cfg(); add_tridentnet_config(cfg)``), for
    which it changes nothing then.
    """
    if "TRIDENT" not in cfg.MODEL:
        cfg.MODEL.TRIDENT = type(cfg)()
    node = cfg.MODEL.TRIDENT
    for key, value in _DEFAULTS.items():
        if key not in node:
            setattr(node, key, list(value) if isinstance(value, list) else value)
