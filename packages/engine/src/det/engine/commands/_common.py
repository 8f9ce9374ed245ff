"""What the commands share: config loading, dataset registration files, input checks, errors."""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DATASETS_FILE = "datasets.json"
"""A file next to a config that names the COCO-format datasets it uses (``det train --train-json``
and ``det demo`` write one): ``{name: {"json_file": ..., "image_root": ..., "metadata": {...}}}``,
relative paths being relative to the file's own folder. The commands register these names, so a
saved config works in a new process, from any working directory."""

CONFIG_FILE = "config.yaml"
"""The merged config ``det train`` writes into its output folder."""

FINAL_WEIGHTS = "model_final.pth"
"""The weights ``det train`` leaves in its output folder at the end of training."""

_logger = logging.getLogger(__name__)


class CommandError(Exception):
    """A user error: printed as ``det <command>: error: <message>`` with exit status 2."""


def load_config(config_file: str | os.PathLike) -> Any:
    """``get_cfg()`` merged with ``config_file`` (not frozen), after registering the datasets of a
    :data:`DATASETS_FILE` next to it; a missing or unreadable file is a :class:`CommandError`."""
    from det.core.config import get_cfg

    if not config_file:
        raise CommandError("--config-file is required (a detectron2/det YAML file)")
    config_file = os.fspath(config_file)
    if not os.path.exists(config_file):
        raise CommandError(f"config file {config_file!r} does not exist")
    if os.path.isdir(config_file):
        raise CommandError(f"config file {config_file!r} is a folder; give a YAML file")
    if config_file.endswith(".py"):
        raise CommandError(f"{config_file} is a LazyConfig (Python) file; this command reads YAML (yacs) configs "
                           "only (det train, eval, predict and export read both)")
    import det.data  # noqa: F401  (registers the built-in datasets named in configs)

    register_datasets_file(Path(config_file).parent / DATASETS_FILE)
    cfg = get_cfg()
    try:
        cfg.merge_from_file(config_file)
    except FileNotFoundError as e:  # a _BASE_ file
        raise CommandError(f"{config_file}: {e}") from None
    return cfg


def split_opts(opts: Sequence[str] | None) -> list[str]:
    """Trailing ``KEY VALUE`` overrides as a list (a leading ``--`` dropped), checked for pairs."""
    opts = list(opts or [])
    if opts and opts[0] == "--":
        opts = opts[1:]
    if len(opts) % 2:
        raise CommandError(f"config overrides must be KEY VALUE pairs, got an odd number of items: {opts}")
    return opts


def setup_cfg(config_file: str, opts: Sequence[str] | None = None, *, weights: str | None = None) -> Any:
    """``get_cfg()`` + ``config_file`` + ``KEY VALUE`` overrides (+ ``MODEL.WEIGHTS``), frozen.

    ``MODEL.DEVICE`` is resolved for this machine (:func:`det.core.device.resolve_device`): a
    config asking for ``cuda`` where there is none runs on the CPU (one warning line), so the config
    the command saves and uses says ``cpu``; an unknown device is a user error naming the key."""
    from det.core.device import resolve_device

    opts = split_opts(opts)
    cfg = load_config(config_file)
    cfg.merge_from_list(opts)
    if weights is not None:
        cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = str(resolve_device(cfg.MODEL.DEVICE))
    cfg.freeze()
    return cfg


def _resolve(path: str, base: Path) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(base / path)


def register_datasets_file(path: str | os.PathLike) -> list[str]:
    """Register the COCO datasets listed in ``path`` (see :data:`DATASETS_FILE`); returns the
    names it (re-)registered. A missing file registers nothing. Relative paths are resolved from
    the file's folder. A name already registered with the same files is left alone; one
    registered otherwise (a builtin such as ``coco_2017_val``, or an earlier file's entry) is
    replaced: the file names its paths explicitly."""
    from det.data.catalog import DatasetCatalog, MetadataCatalog
    from det.data.datasets.coco import register_coco_instances

    path = Path(path)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CommandError(f"{path} is not valid JSON ({e}); it should map dataset names to "
                           "{json_file, image_root}") from None
    if not isinstance(entries, dict):
        raise CommandError(f"{path} must map dataset names to {{json_file, image_root}}, got {type(entries).__name__}")
    added = []
    for name, entry in entries.items():
        try:
            json_file, image_root = entry["json_file"], entry["image_root"]
        except (TypeError, KeyError):
            raise CommandError(f"{path}: dataset {name!r} needs 'json_file' and 'image_root'") from None
        if not isinstance(json_file, str) or not isinstance(image_root, str):
            raise CommandError(f"{path}: dataset {name!r}: 'json_file' and 'image_root' must be paths (strings)")
        json_file, image_root = _resolve(json_file, path.parent), _resolve(image_root, path.parent)
        if name in DatasetCatalog:
            meta = MetadataCatalog.get(name)
            if meta.get("json_file") == json_file and meta.get("image_root") == image_root:
                continue
            _logger.info("%s: dataset %r (%s) replaces the one registered under that name", path, name, json_file)
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        elif name in MetadataCatalog.list():
            MetadataCatalog.remove(name)  # metadata left without a dataset (e.g. a removed registration)
        register_coco_instances(name, dict(entry.get("metadata", {})), json_file, image_root)
        added.append(name)
    return added


def write_datasets_file(path: str | os.PathLike, entries: dict[str, dict[str, Any]]) -> None:
    """Write a :data:`DATASETS_FILE` (atomically): ``entries`` maps names to ``json_file``,
    ``image_root`` (any paths; written relative to the file's folder) and ``metadata``."""
    path = Path(path)
    base = path.parent.resolve()

    def relative(p: str) -> str:
        try:
            return os.path.relpath(os.path.abspath(p), base)
        except ValueError:  # another drive (Windows): keep it absolute
            return os.path.abspath(p)

    data = {name: {**entry, "json_file": relative(entry["json_file"]), "image_root": relative(entry["image_root"])}
            for name, entry in entries.items()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip; a pickle (.pkl, legacy .pth)


def check_weights(weights: str, option: str = "--weights") -> None:
    """Fail before anything is built when ``weights`` cannot be a checkpoint: a missing file, a
    folder, an empty file, a file that is neither a torch/pickle checkpoint nor safetensors. A
    URL (``detectron2://``, http(s)) is fetched into the cache now, so a network error comes
    first too. Empty ``weights`` (train from scratch) passes."""
    if not weights:
        return
    from det.checkpoint.file_io import get_local_path, is_url

    if is_url(weights):
        try:
            get_local_path(weights)
        except Exception as e:  # network and HTTP errors of every kind
            raise CommandError(f"cannot download {option} {weights}: {e}") from None
        return
    if not os.path.exists(weights):
        raise CommandError(f"{option} {weights!r} does not exist; give a .pth/.pkl checkpoint "
                           "(e.g. a model-zoo model_final_*.pkl)")
    if os.path.isdir(weights):
        raise CommandError(f"{option} {weights!r} is a folder; give the checkpoint file in it")
    with open(weights, "rb") as f:
        head = f.read(16)
    if not head:
        raise CommandError(f"{option} {weights!r} is empty (0 bytes); it is not a checkpoint")
    is_safetensors = weights.endswith(".safetensors") and len(head) >= 9 and head[8:9] == b"{"
    if not (head.startswith(_CHECKPOINT_MAGIC) or is_safetensors):
        raise CommandError(f"{option} {weights!r} is not a checkpoint (neither a torch/pickle file nor "
                           "safetensors)")


def run_folder_file(output: str | os.PathLike, name: str, option: str = "--output") -> Path:
    """``output/name`` of a ``det train`` output folder, which must exist."""
    folder = Path(output)
    if not folder.is_dir():
        raise CommandError(f"{option} {os.fspath(output)!r} is not a folder; give the folder `det train --output` "
                           "wrote")
    path = folder / name
    if not path.is_file():
        raise CommandError(f"{option} {os.fspath(output)!r} has no {name}; is it a `det train --output` folder?")
    return path


def require_datasets(names: Sequence[str], key: str, *, hint: str = f"a {DATASETS_FILE} next to the config") -> list[str]:
    """``names`` (from ``key``: a config key such as ``DATASETS.TEST``, or an option) as a list,
    checked: at least one, each registered in the DatasetCatalog; a :class:`CommandError` that
    lists the registered names and says how to register more (``hint``) otherwise."""
    from det.data.catalog import DatasetCatalog

    names = list(names)
    if not names:
        raise CommandError(f"the config names no dataset in {key}")
    for name in names:
        if name not in DatasetCatalog:
            raise CommandError(f"dataset {name!r} (from {key}) is not registered{_registered_names(name)}; "
                               f"register it in Python (register_coco_instances) or list it in {hint}")
    return names


def _registered_names(name: str) -> str:
    """``" (did you mean 'x'?; registered: a, b, ...)"`` for an unknown dataset name: the close
    names, and every name that is not one of detectron2's builtin datasets."""
    from det.data.catalog import DatasetCatalog
    from det.data.datasets.builtin import builtin_dataset_names

    registered = sorted(DatasetCatalog.keys())
    builtin = set(builtin_dataset_names())
    close = difflib.get_close_matches(name, registered, n=3)
    own = [n for n in registered if n not in builtin]
    parts = []
    if close:
        parts.append("did you mean " + " or ".join(repr(c) for c in close) + "?")
    parts.append(f"registered: {', '.join(own) if own else 'none of your own'}, and {len(builtin)} builtin "
                 "names such as coco_2017_val")
    return " (" + "; ".join(parts) + ")"


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


USER_ERRORS = (CommandError, OSError, KeyError, ValueError)
"""What a command reports as a one-line error (exit status 2) instead of a traceback:
CommandError, missing or unreadable files (OSError), unknown config keys and bad values."""


def report_user_error(command: str, error: BaseException) -> int:
    """Print ``det <command>: error: ...`` to stderr; returns the exit status, 2."""
    message = str(error)
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        message = error.args[0]  # str(KeyError) adds quotes around the message
    print(f"det {command}: error: {message}", file=sys.stderr)
    return 2
