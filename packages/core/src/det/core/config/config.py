"""CfgNode (yacs with ``_BASE_`` inheritance and helpful key errors), get_cfg and configurable."""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import os
from ast import literal_eval
from collections.abc import Callable
from typing import Any

import yaml
from yacs.config import CfgNode as _YacsCfgNode

BASE_KEY = "_BASE_"
CURRENT_VERSION = 2


class ConfigKeyError(KeyError, ValueError):
    """A config key that the schema does not have.

    A KeyError like yacs' (so detectron2-style ``except KeyError`` keeps working) and a ValueError
    (it is bad input). The message names the key and the closest valid one, or, for a key that a
    known plugin adds (``det.core.registry.STANDARD_CONFIG_PROVIDERS``), the distribution to
    install (``distribution``).
    """

    def __init__(self, message: str, key: str, suggestion: str | None = None, distribution: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.suggestion = suggestion
        self.distribution = distribution

    def __str__(self) -> str:  # KeyError would quote the message as a repr
        return str(self.args[0])


def _suggest(full_key: str, node: _YacsCfgNode, prefix: list[str]) -> str | None:
    """The closest existing key to ``full_key`` among the keys of ``node`` (a sibling), or in the
    whole tree below the root when no sibling is close."""
    leaf = full_key.split(".")[-1]
    siblings = list(node)
    close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if close:
        return ".".join([*prefix, close[0]])
    return None


def _all_keys(node: _YacsCfgNode, prefix: str = "") -> list[str]:
    keys = []
    for k, v in node.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, _YacsCfgNode):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _unknown_key_error(full_key: str, node: _YacsCfgNode, prefix: list[str], root: _YacsCfgNode) -> ConfigKeyError:
    # a key of a known plugin (det.core.registry.STANDARD_CONFIG_PROVIDERS): name what to install
    from det.core.registry import config_key_hint

    advice, dists = config_key_hint(full_key)
    if dists:
        message = f"Non-existent config key: {full_key}.{advice}"
        return ConfigKeyError(message, full_key, None, dists[0] if len(dists) == 1 else None)
    suggestion = _suggest(full_key, node, prefix)
    if suggestion is None:
        close = difflib.get_close_matches(full_key, _all_keys(root), n=1, cutoff=0.6)
        suggestion = close[0] if close else None
    where = f"{'.'.join(prefix)}" if prefix else "the top level"
    hint = f"; did you mean {suggestion}?" if suggestion else ""
    message = (f"Non-existent config key: {full_key} (no key {full_key.split('.')[-1]!r} under {where}{hint}) "
               "If a plugin provides this option, install it; plugins add their keys through "
               "the det_extend_config hook.")
    return ConfigKeyError(message, full_key, suggestion)


def _coerce(replacement: Any, original: Any, full_key: str) -> Any:
    """yacs' type rules: same type, None on either side, or list <-> tuple; else a ValueError."""
    if type(replacement) is type(original):
        return replacement
    if replacement is None or original is None:
        return replacement
    if isinstance(original, tuple) and isinstance(replacement, list):
        return tuple(replacement)
    if isinstance(original, list) and isinstance(replacement, tuple):
        return list(replacement)
    raise ValueError(
        f"Type mismatch for config key {full_key}: expected {type(original).__name__} like the "
        f"default {original!r}, got {type(replacement).__name__} {replacement!r}")


def _decode(value: Any) -> Any:
    """Like yacs: strings that read as Python literals become those literals, others stay strings."""
    if isinstance(value, dict) and not isinstance(value, _YacsCfgNode):
        return CfgNode(value)
    if not isinstance(value, str):
        return value
    try:
        return literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _merge_into(src: _YacsCfgNode, dst: _YacsCfgNode, root: _YacsCfgNode, prefix: list[str]) -> None:
    for key, raw in src.items():
        full_key = ".".join([*prefix, key])
        value = _decode(copy.deepcopy(raw))
        if key in dst:
            current = dst[key]
            if isinstance(current, _YacsCfgNode):
                if not isinstance(value, _YacsCfgNode):
                    raise ValueError(f"Config key {full_key} is a section of options; got the value {value!r}")
                _merge_into(value, current, root, [*prefix, key])
            else:
                if isinstance(value, _YacsCfgNode):
                    raise ValueError(f"Config key {full_key} is a single option ({current!r}); got a section "
                                     f"{dict(value)!r}")
                dst[key] = _coerce(value, current, full_key)
        elif dst.is_new_allowed():
            dst[key] = value
        elif root.key_is_deprecated(full_key):
            continue
        elif root.key_is_renamed(full_key):
            root.raise_key_rename_error(full_key)
        else:
            raise _unknown_key_error(full_key, dst, prefix, root)


class CfgNode(_YacsCfgNode):
    """A yacs config node whose files may inherit from others through ``_BASE_``.

    Invariant: after ``merge_from_*``, the node holds exactly its schema's keys (unknown keys are
    refused with the closest valid key named) with values of the defaults' types.

        cfg = get_cfg()
        cfg.merge_from_file("configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
        cfg.merge_from_list(["MODEL.ROI_HEADS.NUM_CLASSES", "3"])
    """

    @classmethod
    def _open_cfg(cls, filename: str | os.PathLike[str]):
        return open(filename, encoding="utf-8")

    @classmethod
    def load_yaml_with_base(cls, filename: str | os.PathLike[str], allow_unsafe: bool = False,
                            _chain: tuple[str, ...] = ()) -> dict[str, Any]:
        """Read a YAML file into a dict, first reading the file(s) its ``_BASE_`` key names
        (relative to this file's folder) and letting this file's values override theirs.
        A file that is not YAML, or a ``_BASE_`` chain that comes back to a file, is a
        ValueError naming the file(s)."""
        filename = os.fspath(filename)
        if not os.path.isfile(filename):
            if os.path.isdir(filename):
                raise FileNotFoundError(f"Config file {filename} is a folder; give a YAML file")
            raise FileNotFoundError(f"Config file not found: {filename}")
        real = os.path.realpath(filename)
        if real in _chain:
            cycle = " -> ".join([*_chain[_chain.index(real):], real])
            raise ValueError(f"_BASE_ cycle in {filename}: {cycle}; a config cannot inherit from itself")
        if filename.endswith(".py"):
            raise ValueError(f"Config file {filename} is a Python (LazyConfig) file; CfgNode reads YAML "
                             "configs (a .py config is read by LazyConfig.load)")
        with cls._open_cfg(filename) as f:
            try:
                cfg = yaml.safe_load(f)
            except yaml.constructor.ConstructorError as e:
                if not allow_unsafe:
                    raise ValueError(f"Config file {filename} uses unsafe YAML tags; pass allow_unsafe=True "
                                     "to load it anyway") from e
                f.seek(0)
                cfg = yaml.unsafe_load(f)
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
                problem = getattr(e, "problem", None) or str(e).splitlines()[0]
                raise ValueError(f"Config file {filename} is not valid YAML{where}: {problem}") from None
            except UnicodeDecodeError:
                raise ValueError(f"Config file {filename} is not a text (YAML) file") from None
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise ValueError(f"Config file {filename} must hold a mapping of keys, got {type(cfg).__name__}")

        def merge_a_into_b(a: dict[str, Any], b: dict[str, Any]) -> None:
            for k, v in a.items():
                if isinstance(v, dict) and k in b:
                    if not isinstance(b[k], dict):
                        raise ValueError(f"Cannot inherit key '{k}' from base in {filename}: the base sets a "
                                         "single value where this file has a section")
                    merge_a_into_b(v, b[k])
                else:
                    b[k] = v

        def resolve(base: str) -> str:
            base = os.path.expanduser(base)
            if "://" in base:
                raise ValueError(f"_BASE_ {base!r} in {filename} is a URL; det reads local files only")
            if not os.path.isabs(base):
                base = os.path.join(os.path.dirname(filename), base)
            return base

        if BASE_KEY in cfg:
            bases = cfg.pop(BASE_KEY)
            if isinstance(bases, str):
                bases = [bases]
            if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
                raise ValueError(f"_BASE_ in {filename} must be a path or a list of paths, got {bases!r}")
            merged: dict[str, Any] = {}
            for base in bases:
                merge_a_into_b(cls.load_yaml_with_base(resolve(base), allow_unsafe=allow_unsafe,
                                                       _chain=(*_chain, real)), merged)
            merge_a_into_b(cfg, merged)
            return merged
        return cfg

    def merge_from_file(self, cfg_filename: str | os.PathLike[str], allow_unsafe: bool = True) -> None:
        """Merge a YAML config file (and its ``_BASE_`` chain) into this node."""
        loaded = self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe)
        loaded_cfg = type(self)(loaded)
        version = loaded_cfg.get("VERSION", None)
        if version is None:
            # detectron2 guesses the version of a file without one; every model-zoo file is v2.
            loaded_cfg.VERSION = self.get("VERSION", CURRENT_VERSION)
        elif version != CURRENT_VERSION:
            raise ValueError(f"Config file {os.fspath(cfg_filename)} has VERSION: {version}; det reads "
                             f"VERSION: {CURRENT_VERSION} (detectron2's current format) only")
        self.merge_from_other_cfg(loaded_cfg)

    def merge_from_other_cfg(self, cfg_other: _YacsCfgNode) -> None:
        if self.is_frozen():
            raise AttributeError("Attempted to merge into a frozen CfgNode; call cfg.defrost() first")
        if not isinstance(cfg_other, _YacsCfgNode):
            raise TypeError(f"merge_from_other_cfg expects a CfgNode, got {type(cfg_other).__name__}")
        _merge_into(cfg_other, self, self, [])

    def merge_from_list(self, cfg_list: list[Any]) -> None:
        """Merge ``["KEY.PATH", value, ...]`` pairs (values are parsed as Python literals when they
        read as one, as on a command line)."""
        if self.is_frozen():
            raise AttributeError("Attempted to merge into a frozen CfgNode; call cfg.defrost() first")
        if len(cfg_list) % 2 != 0:
            raise ValueError(f"merge_from_list expects KEY VALUE pairs, got an odd number of items: {cfg_list!r}")
        for full_key, raw in zip(cfg_list[0::2], cfg_list[1::2]):
            if not isinstance(full_key, str):
                raise TypeError(f"Config keys are strings like 'MODEL.WEIGHTS', got {full_key!r}")
            if self.key_is_deprecated(full_key):
                continue
            if self.key_is_renamed(full_key):
                self.raise_key_rename_error(full_key)
            parts = full_key.split(".")
            node: _YacsCfgNode = self
            for i, part in enumerate(parts[:-1]):
                child = node.get(part) if part in node else None
                if not isinstance(child, _YacsCfgNode):
                    raise _unknown_key_error(".".join(parts[: i + 1]), node, parts[:i], self)
                node = child
            leaf = parts[-1]
            if leaf not in node:
                raise _unknown_key_error(full_key, node, parts[:-1], self)
            value = _decode(raw)
            if isinstance(node[leaf], _YacsCfgNode):
                raise ValueError(f"Config key {full_key} is a section of options, not a single option")
            node[leaf] = _coerce(value, node[leaf], full_key)

    def dump(self, *args: Any, **kwargs: Any) -> str:
        """The config as a YAML string (keys sorted, tuples written as lists)."""
        return super().dump(*args, **kwargs)

    def __setattr__(self, name: str, val: Any) -> None:
        if name.startswith("COMPUTED_"):
            if name in self:
                old = self[name]
                if old == val:
                    return
                raise KeyError(f"Computed attributed '{name}' already exists with a different value! "
                               f"old={old}, new={val}.")
            self[name] = val
        else:
            super().__setattr__(name, val)


def get_cfg() -> CfgNode:
    """A fresh copy of the standard config (every key of detectron2's defaults), extended with
    the keys installed plugins add through ``det_extend_config``.

        cfg = get_cfg()
        cfg.MODEL.DEVICE = "cpu"
    """
    from det.core.config.defaults import _C

    cfg = _C.clone()
    from det.core import plugins

    plugins.extend_config(cfg)
    return cfg


global_cfg = CfgNode()
"""A config visible from anywhere (detectron2's ``config.global_cfg``), empty until
:func:`set_global_cfg`: code deep inside a model can read an option without it being passed down.
It is always this one object, so ``from det.core.config import global_cfg`` sees later updates."""


def set_global_cfg(cfg: CfgNode) -> None:
    """Make :data:`global_cfg` hold the keys of ``cfg`` (cleared first, updated in place)::

        set_global_cfg(cfg)
        if global_cfg.MODEL.MASK_ON: ...
    """
    global_cfg.clear()
    global_cfg.update(cfg)


# --------------------------------------------------------------------------------------------
# configurable
# --------------------------------------------------------------------------------------------


def _called_with_cfg(*args: Any, **kwargs: Any) -> bool:
    """Whether a call's first argument (or ``cfg=``) is a config, so from_config should run."""
    if args and isinstance(args[0], _YacsCfgNode):
        return True
    return isinstance(kwargs.get("cfg"), _YacsCfgNode)


def _get_args_from_config(from_config_func: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``from_config`` with the call's arguments: those it does not accept are passed
    through unchanged to the wrapped function."""
    signature = inspect.signature(from_config_func)
    params = list(signature.parameters.values())
    if not params or params[0].name != "cfg":
        name = getattr(from_config_func, "__qualname__", repr(from_config_func))
        raise TypeError(f"{name} must take 'cfg' as its first argument (from_config(cfg, ...))")
    takes_var = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
    if takes_var:
        result = from_config_func(*args, **kwargs)
        extra: dict[str, Any] = {}
    else:
        supported = {p.name for p in params}
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in supported}
        result = from_config_func(*args, **kwargs)
    if not isinstance(result, dict):
        name = getattr(from_config_func, "__qualname__", repr(from_config_func))
        raise TypeError(f"{name} must return a dict of keyword arguments, got {type(result).__name__}")
    result.update(extra)
    return result


def configurable(init_func: Callable[..., Any] | None = None, *,
                 from_config: Callable[..., dict[str, Any]] | None = None) -> Any:
    """Let a class ``__init__`` (or a function) be called either with explicit arguments or with a
    config as first argument, which ``from_config(cfg, ...)`` turns into those arguments.

    Invariant: the wrapped callable only ever receives explicit arguments; config parsing lives in
    ``from_config`` alone.

        class A:
            @configurable
            def __init__(self, a, b=2): ...
            @classmethod
            def from_config(cls, cfg): return {"a": cfg.A, "b": cfg.B}

        A(a=1); A(cfg); A(cfg, b=3)      # extra kwargs override / complete from_config's

        @configurable(from_config=lambda cfg, x: {"a": cfg.A, "x": x})
        def f(a, x): ...
        f(1, x=2); f(cfg, x=2)
    """
    if init_func is not None:
        if not (inspect.isfunction(init_func) and from_config is None and init_func.__name__ == "__init__"):
            raise TypeError("@configurable without arguments decorates a class's __init__; for a function "
                            "use @configurable(from_config=...)")

        @functools.wraps(init_func)
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
            from_config_func = getattr(type(self), "from_config", None)
            if from_config_func is None:
                raise AttributeError(f"{type(self).__name__} uses @configurable and must define a "
                                     "'from_config' classmethod")
            if not inspect.ismethod(from_config_func):
                raise TypeError(f"{type(self).__name__}.from_config must be a classmethod")
            if _called_with_cfg(*args, **kwargs):
                init_func(self, **_get_args_from_config(from_config_func, *args, **kwargs))
            else:
                init_func(self, *args, **kwargs)

        return wrapped

    if from_config is None:
        # @configurable() behaves as @configurable
        return configurable
    if not inspect.isfunction(from_config):
        raise TypeError(f"from_config of @configurable must be a function, got {type(from_config).__name__}")

    def wrapper(orig_func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(orig_func)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if _called_with_cfg(*args, **kwargs):
                return orig_func(**_get_args_from_config(from_config, *args, **kwargs))
            return orig_func(*args, **kwargs)

        wrapped.from_config = from_config  # type: ignore[attr-defined]
        return wrapped

    return wrapper


__all__ = ["CfgNode", "ConfigKeyError", "configurable", "get_cfg", "global_cfg", "set_global_cfg"]
