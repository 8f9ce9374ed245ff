"""Checkpoint converters: rewrite foreign checkpoints to det names before they are matched.

A converter is ``fn(checkpoint: dict) -> dict | None``. It receives the file as
:class:`~det.checkpoint.DetectionCheckpointer` read it (always ``{"model": {name: tensor or
ndarray}, ...}``) and returns the checkpoint rewritten to det/detectron2 names when it recognises
the file, else ``None`` (leaving its input untouched). The first converter that answers wins; its
result is loaded as is, so a converter that produces partial names (``res2.0.conv1.weight``) sets
``"matching_heuristics": True`` to have them suffix-matched against the model.

det-core registers the converters plugins declare through the ``det_checkpoint_converters`` hook;
user code can call :func:`register_converter` directly::

    def torchvision_resnet(ckpt):
        if "layer1.0.conv1.weight" not in ckpt["model"]:
            return None
        return {"model": rename(ckpt["model"]), "matching_heuristics": True}

    register_converter("torchvision-resnet", torchvision_resnet)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["apply_converters", "register_converter", "registered_converters", "unregister_converter"]

Converter = Callable[[dict[str, Any]], dict[str, Any] | None]

# Insertion order is the order converters are tried in.
_CONVERTERS: dict[str, Converter | str] = {}


def register_converter(name: str, fn: Converter | str) -> None:
    """Add a converter under ``name``; ``fn`` is a callable or a lazy ``"module:attribute"`` string
    (imported the first time a checkpoint is loaded, so registering costs nothing).

    Registering the same ``fn`` twice under one name is a no-op; a different ``fn`` under a taken
    name is a ValueError (unregister the old one first).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"converter name must be a non-empty str, got {name!r}")
    if isinstance(fn, str):
        if fn.count(":") != 1 or not all(fn.split(":")):
            raise ValueError(f"converter {name!r}: expected a callable or 'module:attribute', got {fn!r}")
    elif not callable(fn):
        raise TypeError(f"converter {name!r} must be callable or a 'module:attribute' string, got {type(fn).__name__}")
    existing = _CONVERTERS.get(name)
    if existing is not None and existing is not fn and existing != fn:
        raise ValueError(
            f"a checkpoint converter named {name!r} is already registered ({_describe(existing)}); "
            f"cannot also register {_describe(fn)} under that name")
    _CONVERTERS[name] = fn


def unregister_converter(name: str) -> None:
    """Remove the converter registered under ``name`` (KeyError listing the known names if absent)."""
    if name not in _CONVERTERS:
        raise KeyError(f"no checkpoint converter named {name!r}; registered: {registered_converters()}")
    del _CONVERTERS[name]


def registered_converters() -> list[str]:
    """Names of the registered converters, in the order they are tried."""
    return list(_CONVERTERS)


def _describe(fn: Converter | str) -> str:
    if isinstance(fn, str):
        return fn
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def _resolve(name: str) -> Converter:
    fn = _CONVERTERS[name]
    if isinstance(fn, str):
        module_name, attr = fn.split(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ImportError(f"checkpoint converter {name!r} points to {fn}, which cannot be imported: {e}") from e
        if not callable(obj):
            raise TypeError(f"checkpoint converter {name!r} ({fn}) is not callable")
        _CONVERTERS[name] = obj
        fn = obj
    return fn


def apply_converters(checkpoint: dict[str, Any], source: str = "") -> tuple[dict[str, Any], str | None]:
    """Try every registered converter on ``checkpoint`` (read from ``source``, for messages).

    Returns ``(checkpoint, name)``: the first converter's result and its name, or the input and
    ``None`` when no converter recognised it.
    """
    for name in list(_CONVERTERS):
        fn = _resolve(name)
        try:
            result = fn(checkpoint)
        except Exception as e:
            raise RuntimeError(f"checkpoint converter {name!r} failed on {source or 'a checkpoint'}: {e}") from e
        if result is None:
            continue
        if not isinstance(result, dict) or not isinstance(result.get("model"), Mapping):
            raise TypeError(
                f"checkpoint converter {name!r} must return None or a dict with a 'model' mapping; "
                f"got {type(result).__name__}" + (f" with keys {sorted(result)[:5]}" if isinstance(result, dict) else ""))
        return result, name
    return checkpoint, None
