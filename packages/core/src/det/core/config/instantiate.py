"""``instantiate``: build the objects a LazyConfig describes (detectron2's ``config.instantiate``).

A mapping with a ``_target_`` key describes one call: ``_target_`` is the callable (a class or
function object, or its ``"module.attr"`` name) and every other key is a keyword argument. Values
are instantiated first, depth first, so a config describes a whole tree of objects::

    cfg = {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 3}
    conv = instantiate(cfg)                        # torch.nn.Conv2d(in_channels=3, ...)
    layers = instantiate([cfg, cfg])               # lists are instantiated item by item

Invariant (detectron2's): only mappings with ``_target_`` and lists are walked. A mapping without
``_target_`` is returned as it is, and so is anything else (numbers, strings, objects).

Errors name the config key whose object could not be built (``model.backbone.bottom_up``) and the
target: an ``ImportError`` when the target cannot be found, a ``TypeError`` for arguments the
target does not take; any other exception raised by the target keeps its type and gets a note
naming the key.
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import importlib
import logging
from typing import Any

__all__ = ["dump_dataclass", "instantiate", "locate"]

logger = logging.getLogger(__name__)


def locate(name: str) -> Any:
    """The object named ``"module.submodule.attr.attr"`` (the inverse of
    :func:`_convert_target_to_string`): the longest importable module prefix is imported and the
    rest is looked up as attributes. A bare name is looked up in :mod:`builtins`.

    Raises:
        ImportError: no prefix of ``name`` is a module, or the module lacks the attribute; an
            existing module that fails to import raises its own error.
    """
    if not isinstance(name, str) or not name or any(not part for part in name.split(".")):
        raise ImportError(f"Cannot locate {name!r}: expected a dotted name like 'torch.nn.Conv2d'")
    parts = name.split(".")
    module = None
    for end in range(len(parts), 0, -1):
        module_name = ".".join(parts[:end])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            # Only "this very module does not exist" means: try a shorter prefix. A module that
            # exists but imports something missing is a real error for the user to see.
            if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
                continue
            raise
        break
    else:
        import builtins

        if len(parts) == 1 and hasattr(builtins, name):
            return getattr(builtins, name)
        raise ImportError(f"Cannot locate {name!r}: no module {parts[0]!r} is installed", name=parts[0])
    obj: Any = module
    for i in range(end, len(parts)):
        try:
            obj = getattr(obj, parts[i])
        except AttributeError:
            owner = ".".join(parts[:i])
            raise ImportError(f"Cannot locate {name!r}: {owner} has no attribute {parts[i]!r}",
                              name=".".join(parts[:end])) from None
    return obj


def _convert_target_to_string(t: Any) -> str:
    """The shortest ``"package.attr"`` name that :func:`locate` resolves to ``t`` itself:
    ``det.core.modeling.meta_arch.rcnn.GeneralizedRCNN`` becomes ``det.core.GeneralizedRCNN``
    when that re-export is the same object (saved configs survive moves of private modules)."""
    module, qualname = t.__module__, t.__qualname__
    module_parts = module.split(".")
    for k in range(1, len(module_parts)):
        candidate = ".".join(module_parts[:k]) + "." + qualname
        try:
            if locate(candidate) is t:
                return candidate
        except Exception:  # any import trouble on a shorter path only means: not this one
            continue
    return f"{module}.{qualname}"


def dump_dataclass(obj: Any) -> dict[str, Any]:
    """A dataclass instance as a ``{"_target_": ..., field: value}`` dict that
    :func:`instantiate` turns back into an equal instance (nested dataclasses too)."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"dump_dataclass() needs a dataclass instance, got {obj!r}")
    ret: dict[str, Any] = {"_target_": _convert_target_to_string(type(obj))}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if dataclasses.is_dataclass(value):
            value = dump_dataclass(value)
        if isinstance(value, (list, tuple)):
            value = [dump_dataclass(x) if dataclasses.is_dataclass(x) else x for x in value]
        ret[field.name] = value
    return ret


def _full_key(cfg: Any, fallback: str) -> str:
    """The key of an omegaconf node from its root (``model.backbone``), else ``fallback``."""
    try:
        key = cfg._get_full_key(None)
    except Exception:
        return fallback
    return str(key) if key else fallback


def _target_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    try:
        return f"{target.__module__}.{target.__qualname__}"
    except AttributeError:
        return repr(target)


def instantiate(cfg: Any) -> Any:
    """Recursively build the objects that ``cfg`` describes (see the module docstring).

    Args:
        cfg: a mapping with ``_target_`` (dict or omegaconf DictConfig, e.g. made by
            :class:`~det.core.config.LazyCall`), a list of such, or anything else (returned as is).

    Returns:
        The object built by calling ``_target_(**arguments)``; a ``ListConfig`` for a ListConfig
        (a list when it holds dataclass instances, which a ListConfig would turn back into dicts)
        and a list for a list; ``cfg`` itself when there is nothing to build.
    """
    return _instantiate(cfg, _full_key(cfg, ""))


def _instantiate(cfg: Any, key: str) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    where = f"config key {key!r}" if key else "the config"
    if isinstance(cfg, ListConfig):
        items = [_instantiate(x, _join(key, i)) for i, x in enumerate(_items(cfg, key))]
        if any(dataclasses.is_dataclass(x) and not isinstance(x, type) for x in items):
            # a ListConfig would turn the dataclass instances (ShapeSpec, ...) back into dicts
            return items
        return ListConfig(items, flags={"allow_objects": True})
    if isinstance(cfg, list):
        # many components take a list of objects (ResNet's stages, DatasetMapper's augmentations)
        return [_instantiate(x, _join(key, i)) for i, x in enumerate(cfg)]
    if isinstance(cfg, DictConfig) and dataclasses.is_dataclass(cfg._metadata.object_type):
        # a dataclass value (e.g. ShapeSpec) becomes an omegaconf structured config: turn it back
        return OmegaConf.to_object(cfg)
    if not (isinstance(cfg, abc.Mapping) and "_target_" in cfg):
        return cfg
    try:
        pairs = [(k, v) for k, v in cfg.items()]
    except (InterpolationResolutionError, MissingMandatoryValue) as e:
        raise _resolution_error(where, e) from None
    arguments = {k: _instantiate(v, _join(key, k)) for k, v in pairs}
    target = arguments.pop("_target_")
    if isinstance(target, str):
        try:
            target = locate(target)
        except ImportError as e:
            raise ImportError(f"Cannot instantiate {where}: its _target_ {target!r} cannot be imported ({e})",
                              name=e.name) from e
    name = _target_name(target)
    if not callable(target):
        raise TypeError(f"Cannot instantiate {where}: its _target_ {target!r} is not callable")
    try:
        return target(**arguments)
    except TypeError as e:
        logger.error("Error when instantiating %s (%s)", name, where)
        raise TypeError(f"Cannot instantiate {where}: {name}(...) raised TypeError: {e}") from e
    except Exception as e:
        e.add_note(f"(while instantiating {where}: {name})")
        raise


def _items(cfg: Any, key: str) -> list[Any]:
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    try:
        return list(cfg)
    except (InterpolationResolutionError, MissingMandatoryValue) as e:
        raise _resolution_error(f"config key {key!r}", e) from None


def _resolution_error(where: str, error: Exception) -> Exception:
    """A KeyError (det's ConfigKeyError) for a ``${...}`` interpolation that cannot be resolved
    (missing key, cycle) or a mandatory ``???`` value, naming the key that holds it."""
    from det.core.config.config import ConfigKeyError

    full_key = getattr(error, "full_key", None) or ""
    reason = (getattr(error, "msg", None) or str(error)).strip().splitlines()[0]
    at = f" (at {full_key})" if full_key else ""
    return ConfigKeyError(f"Cannot instantiate {where}: {reason}{at}", full_key)


def _join(prefix: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]" if prefix else f"[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)
