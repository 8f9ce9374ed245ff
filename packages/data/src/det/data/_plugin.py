"""det plugin declarations of det.data: cheap to import (no torch), names its command lazily.

``det data check`` lives with the data code rather than in det-engine: checking a dataset needs
only det-data (json, PIL), so a user who installs det-data alone to prepare data has it.
"""

from typing import Any

from det.core.hookspecs import CommandDecl, hookimpl

DET_PLUGIN_API_VERSION = 1


@hookimpl
def det_cli_commands() -> list[CommandDecl]:
    return [("data", "check a COCO-format dataset before training on it (det data check)",
             "det.data.cli:register")]


@hookimpl
def det_extend_config(cfg: Any) -> None:
    # det.data.config imports no torch either: it only adds a yacs key.
    from det.data.config import add_data_config

    add_data_config(cfg)
