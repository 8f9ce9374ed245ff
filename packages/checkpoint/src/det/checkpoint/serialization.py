"""Reading checkpoint files without running their code, and writing them atomically.

Three readers, one per on-disk format, each turning any failure into a
:class:`~det.checkpoint.errors.CheckpointLoadError` that names the file:

- :func:`load_torch_file`: ``torch.load(weights_only=True)``; a pickle that needs anything beyond
  tensors and plain containers is refused by torch itself.
- :func:`load_pickle_file`: model-zoo and Caffe2 ``.pkl`` files through :class:`RestrictedUnpickler`,
  which can rebuild numpy arrays and nothing else.
- :func:`load_safetensors_file` (optional ``safetensors`` package).

Writers go through :func:`atomic_write`: a temporary file in the target's folder is filled, flushed,
fsynced and then renamed over the target, so a reader (or a process killed mid-write) sees either
the old file or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

import torch

from det.checkpoint.errors import CheckpointLoadError, UnsafeCheckpointError

__all__ = [
    "SAFE_PICKLE_GLOBALS",
    "RestrictedUnpickler",
    "atomic_write",
    "load_pickle_file",
    "load_safetensors_file",
    "load_torch_file",
    "save_safetensors_file",
    "save_torch_file",
]

SAFE_PICKLE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        # How numpy pickles an array: _reconstruct(ndarray, shape, dtype) then __setstate__.
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # numpy scalars (e.g. a float32 stored next to the arrays).
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("collections", "OrderedDict"),
        # Protocol-2 pickles written by Python 3 store an array's raw bytes as
        # _codecs.encode(latin1 text); it only turns a str into bytes.
        ("_codecs", "encode"),
    }
)
"""The only ``(module, name)`` pairs a ``.pkl`` checkpoint may reference."""

_SAFETENSORS_HINT = "pip install 'det-checkpoint[safetensors]'"
_DET_EXTRA_KEY = "det.extra"


def _import_numpy_global(module: str, name: str) -> Any:
    # numpy 2 renamed numpy.core to numpy._core (the old name warns); numpy 1 has only numpy.core.
    # Pickles made with either must load with either, so try the current spelling first.
    candidates = [module]
    if module.startswith("numpy.core."):
        candidates.insert(0, "numpy._core." + module[len("numpy.core.") :])
    elif module.startswith("numpy._core."):
        candidates.append("numpy.core." + module[len("numpy._core.") :])
    for candidate in candidates:
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot find {module}.{name} in the installed numpy")


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays, dicts, lists and scalars, and nothing else.

    Invariant: ``find_class`` only ever returns an object named in :data:`SAFE_PICKLE_GLOBALS`; any
    other global (``os.system``, ``builtins.eval``, a torch tensor rebuild, ...) is refused before it
    is imported, so loading a hostile file cannot run code. Usage::

        with open("R-50.pkl", "rb") as f:
            data = RestrictedUnpickler(f, encoding="latin1").load()
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in SAFE_PICKLE_GLOBALS:
            raise _RefusedGlobal(f"{module}.{name}")
        if module == "collections":
            import collections

            return collections.OrderedDict
        if module == "_codecs":
            import codecs

            return codecs.encode
        return _import_numpy_global(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise _RefusedGlobal(f"persistent id {pid!r}")


def load_pickle_file(path: str) -> Any:
    """Unpickle ``path`` (latin1 for Python 2 era files) with :class:`RestrictedUnpickler`.

    Raises:
        UnsafeCheckpointError: the pickle references a global outside :data:`SAFE_PICKLE_GLOBALS`.
        CheckpointLoadError: the file is missing, truncated or not a pickle.
    """
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except _RefusedGlobal as e:
        raise UnsafeCheckpointError(
            f"Refusing to load {path}: the pickle asks to import {e}, but a checkpoint .pkl may only "
            "contain numpy arrays, dicts, lists, strings and numbers. Nothing from the file was run."
        ) from None
    except OSError as e:
        raise CheckpointLoadError(f"Cannot read checkpoint {path}: {e}") from e
    except Exception as e:  # pickle raises many types on bad bytes: EOFError, ValueError, KeyError...
        raise CheckpointLoadError(
            f"Checkpoint {path} is truncated or corrupt (unpickling failed with "
            f"{type(e).__name__}: {e})"
        ) from e


def load_torch_file(path: str) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors that name the file.

    Zip-format files (everything ``torch.save`` wrote since torch 1.6) are memory-mapped
    (``mmap=True``): tensors are read from the page cache when first touched instead of being read
    into a second buffer, and a tensor assigned into a model (``load_state_dict(assign=True)``) keeps
    using those pages (private, copy-on-write: writing to it never changes the file). Legacy
    (pre-zip) files are read as before.
    """
    try:
        mmap = zipfile.is_zipfile(path)
    except OSError as e:
        raise CheckpointLoadError(f"Cannot read checkpoint {path}: {e}") from e
    try:
        with warnings.catch_warnings():
            # torch warns about any pickle protocol but 2 before failing or succeeding on its own.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=torch.device("cpu"), weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise UnsafeCheckpointError(
                f"Refusing to load {path}: it needs objects beyond tensors and plain containers, "
                "which torch.load(weights_only=True) does not run. Re-save it as a state dict of "
                f"tensors. (torch: {str(e).splitlines()[0]})"
            ) from None
        raise CheckpointLoadError(f"Checkpoint {path} is truncated or corrupt: {e}") from e
    except OSError as e:
        raise CheckpointLoadError(f"Cannot read checkpoint {path}: {e}") from e
    except Exception as e:  # zip reader RuntimeError, EOFError, ... all mean a damaged file
        raise CheckpointLoadError(
            f"Checkpoint {path} is truncated or corrupt (torch.load failed with "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from e


def _require_safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError(
            "Reading or writing .safetensors checkpoints needs the safetensors package: "
            f"{_SAFETENSORS_HINT}"
        ) from None
    return safetensors


def load_safetensors_file(path: str) -> dict[str, Any]:
    """Read a ``.safetensors`` file as a checkpoint dict ``{"model": {name: tensor}, **extra}``.

    ``extra`` is what :func:`save_safetensors_file` stored in the file's metadata (JSON), e.g.
    ``iteration``; a file written by another tool gives just ``{"model": ...}``.
    """
    safetensors = _require_safetensors()
    try:
        with safetensors.safe_open(path, framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
            metadata = f.metadata() or {}
    except OSError as e:
        raise CheckpointLoadError(f"Cannot read checkpoint {path}: {e}") from e
    except Exception as e:  # SafetensorError for bad headers / truncated data
        raise CheckpointLoadError(
            f"Checkpoint {path} is truncated or corrupt (safetensors: {type(e).__name__}: {e})"
        ) from e
    checkpoint: dict[str, Any] = {"model": tensors}
    if _DET_EXTRA_KEY in metadata:
        try:
            extra = json.loads(metadata[_DET_EXTRA_KEY])
        except ValueError as e:
            raise CheckpointLoadError(f"Checkpoint {path} has unreadable {_DET_EXTRA_KEY!r} metadata: {e}") from e
        checkpoint.update(extra)
    return checkpoint


# --- writing ----------------------------------------------------------------------------------


@functools.cache
def _default_file_mode() -> int:
    # mkstemp creates 0600 files; give the final file the mode open() would have given it.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; not possible on every OS/filesystem, hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success fsync it and rename it to ``path``.

    If the body raises (or the process dies), ``path`` keeps its previous content and the
    temporary file (``.<name>.<random>.tmp``) is removed when possible.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.chmod(tmp, _default_file_mode())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def save_torch_file(data: Any, path: str) -> None:
    """``torch.save(data, path)``, atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        torch.save(data, f)


def save_safetensors_file(data: Mapping[str, Any], path: str) -> None:
    """Write a checkpoint dict ``{"model": state_dict, **extra}`` as ``.safetensors``, atomically.

    The model's tensors are stored under their own names (so other tools read them directly);
    ``extra`` (checkpointables' states and ``save(**kwargs)``) goes into the metadata as JSON and
    therefore must be JSON-serialisable: an optimizer state holding tensors needs the ``.pth`` format.
    """
    safetensors = _require_safetensors()
    tensors: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name, value in data["model"].items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"safetensors can only store tensors; model entry {name!r} is {type(value).__name__}")
        value = value.detach().cpu().contiguous()
        # safetensors refuses tensors that share memory (tied weights): store a copy of the second.
        ptr = value.untyped_storage().data_ptr()
        if ptr in seen_storages and value.numel() > 0:
            value = value.clone()
        seen_storages.add(value.untyped_storage().data_ptr())
        tensors[name] = value
    extra = {k: v for k, v in data.items() if k != "model"}
    try:
        extra_json = json.dumps(extra)
    except (TypeError, ValueError) as e:
        raise TypeError(
            "A .safetensors checkpoint holds the model's tensors plus JSON-serialisable extra data "
            f"only; got extra entries {sorted(extra)} that are not JSON-serialisable ({e}). "
            "Use save_format='pth' to save optimizer or scheduler states."
        ) from None
    blob = safetensors.torch.save(tensors, metadata={"format": "pt", _DET_EXTRA_KEY: extra_json})
    with atomic_write(path, "wb") as f:
        f.write(blob)
