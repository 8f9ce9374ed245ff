"""Config loading shared by the commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DATASETS_FILE = "datasets.json"
"""A file next to a config that names the COCO-format datasets it uses (``det demo`` writes one):
``{name: {"json_file": ..., "image_root": ..., "metadata": {...}}}``. The commands register the
names that are not registered yet, so a saved config works in a new process."""


class CommandError(Exception):
    """A user error: printed as ``det <command>: error: <message>`` with exit status 2."""


def setup_cfg(config_file: str, opts: Sequence[str] | None = None, *, weights: str | None = None) -> Any:
    """``get_cfg()`` + ``config_file`` + ``KEY VALUE`` overrides (+ ``MODEL.WEIGHTS``), frozen.

    ``MODEL.DEVICE`` is resolved for this machine (:func:`det.core.device.resolve_device`): a
    config asking for ``cuda`` where there is none runs on the CPU (one warning line), so the config
    the command saves and uses says ``cpu``; an unknown device is a user error naming the key."""
    from det.core.config import get_cfg
    from det.core.device import resolve_device

    if not config_file:
        raise CommandError("--config-file is required (a detectron2/det YAML file)")
    if not os.path.isfile(config_file):
        raise CommandError(f"config file {config_file!r} does not exist")
    if str(config_file).endswith(".py"):
        raise CommandError(f"{config_file} is a LazyConfig (Python) file; this command reads YAML (yacs) configs "
                           "only (det train, eval, predict and export read both)")
    opts = list(opts or [])
    if opts and opts[0] == "--":
        opts = opts[1:]
    if len(opts) % 2:
        raise CommandError(f"config overrides must be KEY VALUE pairs, got an odd number of items: {opts}")
    import det.data  # noqa: F401  (registers the built-in datasets named in configs)

    register_datasets_file(Path(config_file).parent / DATASETS_FILE)
    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    if weights is not None:
        cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = str(resolve_device(cfg.MODEL.DEVICE))
    cfg.freeze()
    return cfg


def register_datasets_file(path: str | os.PathLike) -> list[str]:
    """Register the COCO datasets listed in ``path`` (see :data:`DATASETS_FILE`) that are not
    registered yet; returns their names. A missing file registers nothing. An entry named like a
    builtin dataset (``coco_2017_val``) replaces the builtin: the file names its paths explicitly."""
    from det.data.catalog import DatasetCatalog, MetadataCatalog
    from det.data.datasets.builtin import builtin_dataset_names
    from det.data.datasets.coco import register_coco_instances

    path = Path(path)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CommandError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(entries, dict):
        raise CommandError(f"{path} must map dataset names to {{json_file, image_root}}, got {type(entries).__name__}")
    added = []
    builtin = set(builtin_dataset_names())
    for name, entry in entries.items():
        if name in builtin and name in DatasetCatalog:
            logging.getLogger(__name__).info("%s: dataset %r replaces the builtin one of that name", path, name)
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        elif name in DatasetCatalog:
            continue
        try:
            json_file, image_root = entry["json_file"], entry["image_root"]
        except (TypeError, KeyError):
            raise CommandError(f"{path}: dataset {name!r} needs 'json_file' and 'image_root'") from None
        register_coco_instances(name, dict(entry.get("metadata", {})), json_file, image_root)
        added.append(name)
    return added


def require_datasets(names: Sequence[str], key: str, *, hint: str = f"a {DATASETS_FILE} next to the config") -> list[str]:
    """``names`` (from ``key``: a config key such as ``DATASETS.TEST``, or an option) as a list,
    checked: at least one, each registered in the DatasetCatalog; a :class:`CommandError` that
    says how to register them (``hint``) otherwise."""
    from det.data.catalog import DatasetCatalog

    names = list(names)
    if not names:
        raise CommandError(f"the config names no dataset in {key}")
    for name in names:
        if name not in DatasetCatalog:
            raise CommandError(
                f"dataset {name!r} (from {key}) is not registered; register it in Python "
                f"(register_coco_instances) or list it in {hint}"
            )
    return names


def add_config_overrides(parser: argparse.ArgumentParser) -> None:
    """The trailing ``KEY VALUE`` config overrides every config-reading command takes."""
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=None,
                        help="config overrides: space-separated 'PATH.KEY VALUE' pairs")


def show_examples(parser: argparse.ArgumentParser, module_doc: str | None) -> None:
    """Print the command module's docstring, past its first paragraph (the examples), under --help."""
    parser.epilog = (module_doc or "").split("\n\n", 1)[-1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def announce_config(command: str, config_file: str) -> None:
    """The one line that says which config language a command reads (on stderr, so stdout stays
    the command's output)."""
    kind = "a LazyConfig (Python) file" if str(config_file).endswith(".py") else "a YAML (yacs) config"
    print(f"det {command}: reading {kind}: {config_file}", file=sys.stderr)


USER_ERRORS = (CommandError, FileNotFoundError, KeyError, ValueError)
"""What a command reports as a one-line error (exit status 2) instead of a traceback."""


def report_user_error(command: str, error: BaseException) -> int:
    """Print ``det <command>: error: ...`` to stderr; returns the exit status, 2."""
    print(f"det {command}: error: {error}", file=sys.stderr)
    return 2
