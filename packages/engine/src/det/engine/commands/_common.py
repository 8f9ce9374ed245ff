"""Config loading shared by the commands."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


class CommandError(Exception):
    """A user error: printed as ``det <command>: error: <message>`` with exit status 2."""


def setup_cfg(config_file: str, opts: Sequence[str] | None = None, *, weights: str | None = None) -> Any:
    """``get_cfg()`` + ``config_file`` + ``KEY VALUE`` overrides (+ ``MODEL.WEIGHTS``), frozen."""
    from det.core.config import get_cfg

    if not config_file:
        raise CommandError("--config-file is required (a detectron2/det YAML file)")
    if not os.path.isfile(config_file):
        raise CommandError(f"config file {config_file!r} does not exist")
    opts = list(opts or [])
    if opts and opts[0] == "--":
        opts = opts[1:]
    if len(opts) % 2:
        raise CommandError(f"config overrides must be KEY VALUE pairs, got an odd number of items: {opts}")
    import det.engine.data  # noqa: F401  (registers the built-in datasets named in configs)

    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    if weights is not None:
        cfg.MODEL.WEIGHTS = weights
    cfg.freeze()
    return cfg
