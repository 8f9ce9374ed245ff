"""LazyConfig: detectron2's Python config files, and ``LazyCall`` that describes a call in them.

A LazyConfig file is plain Python whose top-level dicts (omegaconf ``DictConfig`` objects) describe
objects to build: ``LazyCall(f)(a=1)`` records the call ``f(a=1)`` without making it, and
:func:`~det.core.config.instantiate` makes it later, after the user has edited the config::

    from det.core.config import LazyCall as L, LazyConfig, instantiate
    cfg = LazyConfig.load("configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.py")
    cfg = LazyConfig.apply_overrides(cfg, ["model.roi_heads.num_classes=3", "train.max_iter=100"])
    model = instantiate(cfg.model)
    LazyConfig.save(cfg, "output/config.yaml")        # and LazyConfig.load() reads it back

Invariants (detectron2's): a config file imports other config files only relatively
(``from ..common.optim import SGD``), each load executes them afresh (no module cache, so editing a
loaded config never changes another), and the dicts a file imports become ``DictConfig`` objects.

Errors name the file and the key: a missing file, a syntax error (with its line), an import that
fails inside a config file (with the chain of config files that led to it), config files that
import each other in a cycle, an override of a key the config does not have (with the closest
key), and an interpolation cycle (``${..a}`` that refers back to itself).
"""

from __future__ import annotations

import ast
import builtins
import collections.abc as abc
import contextlib
import dataclasses
import difflib
import importlib.machinery
import importlib.util
import inspect
import logging
import os
import pickle
import threading
import uuid
from collections.abc import Iterator, Sequence
from copy import deepcopy
from types import TracebackType
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, SCMode

from det.core.config.config import ConfigKeyError
from det.core.config.instantiate import _convert_target_to_string, locate

__all__ = ["ConfigImportError", "LazyCall", "LazyConfig"]

logger = logging.getLogger(__name__)

_CFG_PACKAGE_NAME = "det._cfg_loader"
"""Package name given to executed config files; relative imports from such a module are config
imports (absolute imports, ``import torch``, are ordinary ones)."""


class ConfigImportError(ImportError):
    """An import inside a LazyConfig file failed. The message names the config file and line,
    and the config files that imported it (innermost first)."""


class LazyCall:
    """Wrap a callable so that calling the wrapper records the call instead of making it.

    Invariant: the result is a ``DictConfig`` with ``_target_`` (the callable, or its name) and
    the keyword arguments; only keyword arguments are accepted, as in detectron2.

        conv = LazyCall(torch.nn.Conv2d)(in_channels=3, out_channels=32, kernel_size=3)
        conv.out_channels = 64            # edit before building
        layer = instantiate(conv)         # torch.nn.Conv2d(in_channels=3, out_channels=64, ...)
    """

    def __init__(self, target: Any) -> None:
        if not (callable(target) or isinstance(target, (str, abc.Mapping))):
            raise TypeError(f"target of LazyCall must be a callable or define a callable (a 'module.attr' "
                            f"name or a config with _target_); got {target!r}")
        self._target = target

    def __call__(self, **kwargs: Any) -> DictConfig:
        # omegaconf cannot hold a dataclass type as a value: store its name instead
        target = _convert_target_to_string(self._target) if dataclasses.is_dataclass(self._target) else self._target
        kwargs["_target_"] = target
        return DictConfig(content=kwargs, flags={"allow_objects": True})


def _cast_to_config(obj: Any) -> Any:
    """A dict becomes a DictConfig (that may hold any object); anything else stays as it is."""
    if isinstance(obj, dict):
        return DictConfig(obj, flags={"allow_objects": True})
    return obj


def _visit_dict_config(cfg: Any, func: Any) -> None:
    """Call ``func`` on every DictConfig in ``cfg``, outermost first."""
    if isinstance(cfg, DictConfig):
        func(cfg)
        for value in cfg.values():
            _visit_dict_config(value, func)
    elif isinstance(cfg, ListConfig):
        for value in cfg:
            _visit_dict_config(value, func)


# ---------------------------------------------------------------------------------------------
# loading Python config files
# ---------------------------------------------------------------------------------------------

_state = threading.local()


def _loading_stack() -> list[str]:
    """The config files being executed on this thread, outermost first (for cycle detection)."""
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def loading_config_files() -> list[str]:
    """The config files being executed by ``LazyConfig.load`` on this thread (real paths,
    outermost first; empty outside a load). ``det.model_zoo`` uses it to find a zoo name that a
    config file asks for (``get_config("common/train.py")``) in the configs tree of that file."""
    return list(_loading_stack())


def _read_source(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"Config file {path} does not exist") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"Config file {path} is a folder, not a file") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"Config file {path} is not UTF-8 text: {e}") from None


def _check_syntax(path: str, source: str) -> None:
    try:
        ast.parse(source, filename=path)
    except SyntaxError as e:
        line = f", line {e.lineno}" if e.lineno else ""
        text = f": {e.text.strip()}" if e.text and e.text.strip() else ""
        error = SyntaxError(f"Config file {path} has a syntax error{line} ({e.msg}){text}")
        error.filename, error.lineno, error.offset, error.text = path, e.lineno, e.offset, e.text
        raise error from None


def _line_in(path: str, tb: TracebackType | None) -> int | None:
    """The line of ``path`` that the traceback last passes through (the failing statement)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _find_relative_file(original_file: str, relative_import_path: str, level: int) -> str:
    """The config file that ``from <level dots><relative_import_path> import ...`` in
    ``original_file`` names (a module path becomes a ``.py`` file relative to its folder)."""
    if not relative_import_path:
        raise ConfigImportError(
            f"{original_file}: 'from {'.' * level} import ...' is not supported in config files: a relative "
            "import in a config file imports another config file; name it, e.g. 'from .coco import dataloader'")
    folder = os.path.dirname(original_file)
    for _ in range(level - 1):
        folder = os.path.dirname(folder)
    path = os.path.join(folder, *relative_import_path.split("."))
    if not path.endswith(".py"):
        path += ".py"
    if not os.path.isfile(path):
        if os.path.isdir(path[: -len(".py")]):
            raise ConfigImportError(
                f"{original_file}: cannot import {'.' * level}{relative_import_path}: {path[:-3]} is a folder; a "
                "relative import in a config file imports another config file, not a folder")
        raise ConfigImportError(
            f"{original_file}: cannot import {'.' * level}{relative_import_path}: the config file {path} does not exist")
    return os.path.normpath(path)


def _exec_config(path: str, namespace: dict[str, Any]) -> None:
    """Execute the config file ``path`` in ``namespace``; errors name the file and line."""
    source = _read_source(path)
    _check_syntax(path, source)
    stack = _loading_stack()
    real = os.path.realpath(path)
    if real in stack:
        chain = " -> ".join([*stack[stack.index(real):], real])
        raise ConfigImportError(f"Config files import each other in a cycle: {chain}")
    stack.append(real)
    try:
        exec(compile(source, path, "exec"), namespace)
    except ConfigImportError as e:
        line = _line_in(path, e.__traceback__)
        raise ConfigImportError(f"{e}\n  imported from {path}" + (f", line {line}" if line else ""),
                                name=e.name, path=e.path) from e.__cause__
    except ImportError as e:
        line = _line_in(path, e.__traceback__)
        where = f"{path}, line {line}" if line else path
        raise ConfigImportError(f"Config file {where}: {e}", name=e.name, path=e.path) from e
    except Exception as e:
        line = _line_in(path, e.__traceback__)
        e.add_note(f"(while executing config file {path}" + (f", line {line})" if line else ")"))
        raise
    finally:
        stack.pop()


def _random_package_name(filename: str) -> str:
    # a fresh name per execution: config modules are never cached
    return f"{_CFG_PACKAGE_NAME}{uuid.uuid4().hex[:8]}.{os.path.basename(filename)}"


@contextlib.contextmanager
def _patch_import() -> Iterator[None]:
    """While active, a relative import inside an executing config file loads the config file it
    names (relative to the importing file, no ``__init__.py`` needed, executed afresh) and turns
    the dicts it imports into DictConfig objects. Every other import is Python's own."""
    old_import = builtins.__import__

    def new_import(name: str, globals: dict[str, Any] | None = None, locals: Any = None,
                   fromlist: Sequence[str] | None = (), level: int = 0) -> Any:
        if not (level and globals is not None
                and (globals.get("__package__") or "").startswith(_CFG_PACKAGE_NAME)):
            return old_import(name, globals, locals, fromlist, level)
        path = _find_relative_file(globals["__file__"], name, level)
        spec = importlib.machinery.ModuleSpec(_random_package_name(path), None, origin=path)
        module = importlib.util.module_from_spec(spec)
        module.__file__ = path
        _exec_config(path, module.__dict__)
        for item in fromlist or ():
            if item == "*":
                continue
            if item not in module.__dict__:
                raise ConfigImportError(f"cannot import name {item!r} from config file {path}: it defines no "
                                        f"such top-level name", name=item, path=path)
            module.__dict__[item] = _cast_to_config(module.__dict__[item])
        return module

    builtins.__import__ = new_import  # type: ignore[assignment]
    try:
        yield
    finally:
        builtins.__import__ = old_import


def _load_py(filename: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__file__": filename, "__package__": _random_package_name(filename),
                                 "__name__": "__lazyconfig__"}
    with _patch_import():
        _exec_config(filename, namespace)
    return namespace


# ---------------------------------------------------------------------------------------------
# YAML: what LazyConfig.save writes
# ---------------------------------------------------------------------------------------------


class _ConfigYamlLoader(yaml.SafeLoader):
    """YAML's safe loader plus the two Python tags that :meth:`LazyConfig.save` writes: tuples and
    dataclass instances (``!!python/object:det.core.layers.shape_spec.ShapeSpec {channels: 256}``).
    Any other object tag is refused: loading a config never runs code it does not name."""


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[Any, ...]:
    return tuple(loader.construct_sequence(node, deep=True))  # type: ignore[arg-type]


def _construct_dataclass(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    try:
        cls = locate(suffix)
    except ImportError as e:
        raise yaml.constructor.ConstructorError(None, None, f"cannot import {suffix!r} ({e})", node.start_mark) from None
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise yaml.constructor.ConstructorError(
            None, None, f"!!python/object:{suffix} is not a dataclass; det's config loader builds dataclasses only",
            node.start_mark)
    fields = loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode) else {}
    return cls(**{str(k): v for k, v in fields.items()})


_ConfigYamlLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)
_ConfigYamlLoader.add_multi_constructor("tag:yaml.org,2002:python/object:", _construct_dataclass)


def _load_yaml(filename: str) -> Any:
    source = _read_source(filename)
    try:
        return yaml.load(source, Loader=_ConfigYamlLoader)
    except yaml.YAMLError as e:
        raise ValueError(f"Config file {filename} is not a valid YAML config: {e}") from None


# ---------------------------------------------------------------------------------------------
# LazyConfig
# ---------------------------------------------------------------------------------------------


class LazyConfig:
    """Load, save, override and print omegaconf configs that describe objects lazily (detectron2's
    ``LazyConfig``; see the module docstring for an example)."""

    @staticmethod
    def load_rel(filename: str, keys: str | tuple[str, ...] | None = None) -> Any:
        """:meth:`load` with ``filename`` relative to the calling file's folder (what a config file
        uses to load a file whose name is no Python identifier)."""
        caller = inspect.stack()[1].frame.f_code.co_filename
        if caller.startswith("<"):
            raise ValueError(f"LazyConfig.load_rel({filename!r}) must be called from a file; use LazyConfig.load")
        return LazyConfig.load(os.path.join(os.path.dirname(caller), filename), keys)

    @staticmethod
    def load(filename: str | os.PathLike[str], keys: str | tuple[str, ...] | list[str] | None = None) -> Any:
        """Load a ``.py`` config file (executing it) or a ``.yaml``/``.yml`` one (as saved by
        :meth:`save`).

        Args:
            filename: path of the file, absolute or relative to the working directory.
            keys: a name (or names) to return instead of the whole config.

        Returns:
            DictConfig: the file's top-level config objects (the public dicts, DictConfigs and
            ListConfigs of a ``.py`` file; the whole mapping of a YAML file); with ``keys``, that
            value (or a tuple of them), dicts turned into DictConfig.
        """
        filename = os.fspath(filename).replace("/./", "/")
        extension = os.path.splitext(filename)[1]
        if extension not in (".py", ".yaml", ".yml"):
            raise ValueError(f"Config file {filename} has to be a Python (.py) or YAML (.yaml, .yml) file")
        if not os.path.exists(filename):
            raise FileNotFoundError(f"Config file {filename} does not exist")
        ret: Any
        if extension == ".py":
            ret = _load_py(filename)
        else:
            loaded = _load_yaml(filename)
            if loaded is None:
                loaded = {}
            if not isinstance(loaded, dict):
                raise ValueError(f"Config file {filename} must hold a mapping of keys, got {type(loaded).__name__}")
            ret = OmegaConf.create(loaded, flags={"allow_objects": True})
        if keys is not None:
            names = [keys] if isinstance(keys, str) else list(keys)
            for name in names:
                if name not in ret:
                    defined = sorted(k for k in ret if not str(k).startswith("_"))
                    close = difflib.get_close_matches(name, defined, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else f"; it defines {', '.join(defined)}"
                    raise KeyError(f"Config file {filename} has no top-level {name!r}{hint}")
            if isinstance(keys, str):
                return _cast_to_config(ret[keys])
            return tuple(_cast_to_config(ret[name]) for name in names)
        if extension == ".py":
            ret = DictConfig(
                {name: _cast_to_config(value) for name, value in ret.items()
                 if isinstance(value, (DictConfig, ListConfig, dict)) and not name.startswith("_")},
                flags={"allow_objects": True})
        return ret

    @staticmethod
    def save(cfg: Any, filename: str | os.PathLike[str]) -> None:
        """Write ``cfg`` to a YAML file that :meth:`load` reads back. Callables in ``_target_``
        are written by name; interpolations (``${..x}``) are kept. A config holding objects YAML
        cannot represent (a lambda, a model) is written as far as possible, with a warning, and
        pickled to ``<filename>.pkl`` when pickle can hold it."""
        filename = os.fspath(filename)
        try:
            cfg = deepcopy(cfg)
        except Exception:  # a config holding an object that cannot be copied: write it as it is
            pass
        else:
            def replace_type_by_name(node: DictConfig) -> None:
                if "_target_" in node and callable(node._target_):
                    with contextlib.suppress(AttributeError):
                        node._target_ = _convert_target_to_string(node._target_)

            _visit_dict_config(cfg, replace_type_by_name)
        save_pkl = False
        try:
            container = OmegaConf.to_container(cfg, resolve=False, structured_config_mode=SCMode.INSTANTIATE)
            dumped = yaml.dump(container, default_flow_style=None, allow_unicode=True, width=9999)
        except Exception as e:
            logger.warning("Unable to write the config %s as YAML (%s: %s)", filename, type(e).__name__, e)
            save_pkl = True
        else:
            _write_atomically(filename, dumped.encode("utf-8"))
            try:
                yaml.load(dumped, Loader=_ConfigYamlLoader)
            except yaml.YAMLError:
                logger.warning("The config holds objects that YAML cannot represent; %s is human-readable "
                               "but cannot be loaded.", filename)
                save_pkl = True
        if save_pkl:
            try:
                _write_atomically(filename + ".pkl", pickle.dumps(cfg))
            except Exception as e:
                logger.warning("The config could not be pickled either (%s); nothing was written to %s.pkl",
                               e, filename)
            else:
                logger.warning("Config is saved using pickle at %s.pkl.", filename)

    @staticmethod
    def apply_overrides(cfg: Any, overrides: Sequence[str]) -> Any:
        """Apply command-line overrides to ``cfg`` in place, as detectron2's
        ``lazyconfig_train_net.py`` takes them: ``key=value`` in Hydra's override grammar
        (``train.max_iter=100``, ``model.pixel_std=[57.4,57.1,58.4]``, ``train.init_checkpoint=/w.pkl``,
        ``optimizer.lr=1e-3``, ``model.roi_heads.mask_in_features=null``).

        Unlike detectron2, which silently adds a key that does not exist, det refuses it
        (a :class:`~det.core.config.ConfigKeyError` naming the closest existing key): use
        ``+key=value`` to add a key on purpose, ``++key=value`` to add or override, and
        ``~key`` to delete one.

        Returns:
            ``cfg``, changed.
        """
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import HydraException

        if isinstance(overrides, str):
            raise TypeError(f"apply_overrides expects a list of 'key=value' strings, got the string {overrides!r}")
        overrides = list(overrides)
        for item in overrides:
            if not isinstance(item, str):
                raise TypeError(f"apply_overrides expects 'key=value' strings, got {item!r}")
        parser = OverridesParser.create()
        for text in overrides:
            try:
                (override,) = parser.parse_overrides([text])
            except HydraException as e:
                first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ValueError(f"Cannot parse config override {text!r}: expected key=value ({first_line})") from None
            key = override.key_or_group
            if override.package is not None:
                raise ValueError(f"Config override {text!r}: '@package' overrides are not supported")
            if override.is_sweep_override():
                raise ValueError(f"Config override {text!r} is a sweep (several values); give one value")
            exists = _select(cfg, key) is not _ABSENT
            _check_prefixes(cfg, key)
            if override.is_delete():
                if not exists:
                    raise _missing_key_error(cfg, key, text, adding_allowed=False)
                _delete(cfg, key)
                continue
            if override.is_add() and exists:
                raise ValueError(f"Config override {text!r} adds the key {key!r}, which exists already; "
                                 f"drop the '+' to change it (or use '++' to add or change)")
            if not exists and not (override.is_add() or override.is_force_add()):
                raise _missing_key_error(cfg, key, text)
            OmegaConf.update(cfg, key, override.value(), merge=True, force_add=True)
        return cfg

    @staticmethod
    def to_py(cfg: Any, prefix: str = "cfg.") -> str:
        """Python-like code that describes ``cfg`` (``cfg.model = GeneralizedRCNN(backbone=...)``),
        for reading, not necessarily for running: interpolations are resolved and objects are
        printed with ``repr``. Formatted with black when it is installed (``det-core[format]``)."""
        container = OmegaConf.to_container(cfg, resolve=True)
        code = _to_py_str(container, [prefix])
        try:
            import black
        except ImportError:
            return code + "\n" if code else code
        try:
            return black.format_str(code, mode=black.Mode())
        except black.InvalidInput:  # type: ignore[attr-defined]
            return code


def _to_py_str(obj: Any, prefix: list[str], inside_call: bool = False) -> str:
    """Top-level mappings become one ``prefix.key=value`` line each; a mapping with ``_target_``
    becomes a call; mappings inside a call become dict literals."""
    if isinstance(obj, abc.Mapping) and "_target_" in obj:
        obj = dict(obj)
        target = obj.pop("_target_")
        target_name = target if isinstance(target, str) else _convert_target_to_string(target)
        arguments = ", ".join(f"{k}={_to_py_str(v, [], inside_call=True)}" for k, v in sorted(obj.items()))
        return "".join(prefix) + f"{target_name}({arguments})"
    if isinstance(obj, abc.Mapping) and not inside_call:
        lines = []
        for k, v in sorted(obj.items()):
            if isinstance(v, abc.Mapping) and "_target_" not in v:
                lines.append(_to_py_str(v, [*prefix, f"{k}."]))
            else:
                lines.append(f"{''.join(prefix)}{k}={_to_py_str(v, [])}")
        return "\n".join(line for line in lines if line)
    if isinstance(obj, abc.Mapping):
        return "{" + ", ".join(f"{k!r}: {_to_py_str(v, [], inside_call=True)}" for k, v in sorted(obj.items())) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(_to_py_str(x, [], inside_call=inside_call) for x in obj) + "]"
    return repr(obj)


# ---------------------------------------------------------------------------------------------
# overrides: key lookups with clear errors
# ---------------------------------------------------------------------------------------------

_ABSENT = object()


def _select(cfg: Any, key: str) -> Any:
    """The value at dotted ``key`` (unresolved interpolations are fine), or ``_ABSENT``."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig):
            if part not in node:
                return _ABSENT
            node = node._get_node(part)
        elif isinstance(node, ListConfig):
            if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                return _ABSENT
            node = node._get_node(int(part))
        else:
            return _ABSENT
        if node is None:
            return _ABSENT
        if not isinstance(node, (DictConfig, ListConfig)):
            node = node._value()
    return node


def _check_prefixes(cfg: Any, key: str) -> None:
    parts = key.split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i])
        value = _select(cfg, prefix)
        if value is _ABSENT:
            return
        if not OmegaConf.is_config(value):
            raise ConfigKeyError(f"Cannot override {key!r}: {prefix!r} is a single value "
                                 f"({type(value).__name__}), not a config section", key)


def _missing_key_error(cfg: Any, key: str, text: str, adding_allowed: bool = True) -> ConfigKeyError:
    parts = key.split(".")
    node: Any = cfg
    found: list[str] = []
    for part in parts[:-1]:
        child = _select(node, part)
        if child is _ABSENT or not OmegaConf.is_config(child):
            break
        node, found = child, [*found, part]
    missing = parts[len(found)]
    where = ".".join(found) or "the top level"
    siblings = [str(k) for k in node] if isinstance(node, DictConfig) else []
    close = difflib.get_close_matches(missing, siblings, n=1, cutoff=0.6)
    suggestion = ".".join([*found, close[0]]) if close else None
    if suggestion:
        hint = f"; did you mean {suggestion}?"
    elif siblings:
        shown = ", ".join(sorted(siblings)[:12]) + (", ..." if len(siblings) > 12 else "")
        hint = f"; {where} has: {shown}"
    else:
        hint = ""
    return ConfigKeyError(f"Config override {text!r}: the config has no key {key!r} (no {missing!r} under {where}"
                          f"{hint})." + (f" Use '+{key}=...' to add a new key." if adding_allowed else ""),
                          key, suggestion)


def _delete(cfg: Any, key: str) -> None:
    parent_key, _, leaf = key.rpartition(".")
    parent = _select(cfg, parent_key) if parent_key else cfg
    if isinstance(parent, ListConfig):
        del parent[int(leaf)]
    else:
        del parent[leaf]


def _write_atomically(filename: str, data: bytes) -> None:
    """``data`` to ``filename`` via det-checkpoint's atomic_write: a reader never sees half a file."""
    from det.checkpoint.serialization import atomic_write

    os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
    with atomic_write(filename, "wb") as f:
        f.write(data)

