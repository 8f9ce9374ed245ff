"""The plugin manager: finds det plugins through the ``det`` entry-point group, once and lazily.

Discovery happens on first use (the first registry lookup, ``get_cfg()``, ``det plugins``), never
at import. It imports each plugin's declaration module (cheap by contract, no torch), checks the
plugin API version it declares, and collects its declarations. A plugin that fails to import,
declares another API version or raises in a hook is recorded by distribution name
(:func:`plugin_errors`) and skipped; the others keep working.

    from det.core import plugins
    plugins.disable("heads-keypoint")      # entry-point or distribution name, before first use
    [p.distribution for p in plugins.list_plugins()]

Environment:
    DET_DISABLE_PLUGINS=name1,name2   entry-point or distribution names to skip.
    DET_PREFER=KIND:Name=dist,...     which distribution provides a (kind, name) that several
                                      declare (also :func:`prefer`).
"""

from __future__ import annotations

import copy
import importlib
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from det.core import hookspecs
from det.core.hookspecs import PLUGIN_API_VERSION, PROJECT_NAME

ENTRY_POINT_GROUP = PROJECT_NAME
DISABLE_ENV = "DET_DISABLE_PLUGINS"
PREFER_ENV = "DET_PREFER"

STANDARD_KINDS = (
    "META_ARCH",
    "BACKBONE",
    "PROPOSAL_GENERATOR",
    "RPN_HEAD",
    "ANCHOR_GENERATOR",
    "ROI_HEADS",
    "ROI_BOX_HEAD",
    "ROI_MASK_HEAD",
    "ROI_KEYPOINT_HEAD",
    "SEM_SEG_HEADS",
)


@dataclass(frozen=True)
class PluginInfo:
    """One entry point of the ``det`` group and what became of it.

    ``status`` is "loaded", "disabled" or "failed" (then ``error`` says why)."""

    name: str
    distribution: str
    version: str
    value: str
    status: str
    api_version: Any = None
    error: str | None = None


@dataclass(frozen=True)
class PluginError:
    """A problem with one plugin, reported by its distribution; the rest keeps working."""

    plugin: str
    distribution: str
    message: str

    def __str__(self) -> str:
        return f"{self.distribution} (entry point {self.plugin!r}): {self.message}"


@dataclass(frozen=True)
class ComponentDeclaration:
    """(kind, name, "module:attribute") as declared by ``distribution`` through ``plugin``."""

    kind: str
    name: str
    target: str
    distribution: str
    plugin: str


@dataclass(frozen=True)
class OpDeclaration:
    """An implementation of ``op`` for one device type ("cuda", ...), as ``distribution`` declared it
    through ``plugin``; ``target`` is "module:attribute", imported only when the op first runs."""

    op: str
    device: str
    target: str
    distribution: str
    plugin: str


@dataclass(frozen=True)
class ConverterDeclaration:
    """A checkpoint converter ``name`` at ``target`` ("module:attribute"), declared by ``distribution``
    through ``plugin``."""

    name: str
    target: str
    distribution: str
    plugin: str


@dataclass(frozen=True)
class CommandDeclaration:
    """A ``det <name>`` subcommand: ``target`` ("module:attribute") is its ``register(parser) -> run``,
    imported only when the command runs."""

    name: str
    help: str
    target: str
    distribution: str
    plugin: str


@dataclass(frozen=True)
class Detectron2NameDeclaration:
    """``detectron2.<path>.<name>`` served by det-compat-detectron2 as ``target``
    ("module:attribute"; name "*" with "module:*" serves every public name of the module)."""

    path: str
    name: str
    target: str
    distribution: str
    plugin: str


@dataclass
class _State:
    manager: pluggy.PluginManager
    plugins: list[PluginInfo] = field(default_factory=list)
    components: list[ComponentDeclaration] = field(default_factory=list)
    ops: list[OpDeclaration] = field(default_factory=list)
    converters: list[ConverterDeclaration] = field(default_factory=list)
    commands: list[CommandDeclaration] = field(default_factory=list)
    detectron2_names: list[Detectron2NameDeclaration] = field(default_factory=list)
    errors: list[PluginError] = field(default_factory=list)
    # plugin (registration) name -> PluginInfo of the loaded ones
    by_name: dict[str, PluginInfo] = field(default_factory=dict)
    converters_registered: bool = False


_lock = threading.RLock()
_state: _State | None = None
_disabled: set[str] = set()
# (kind, name) -> distribution chosen through prefer()
_preferences: dict[tuple[str, str], str] = {}
_reset_callbacks: list[Callable[[], None]] = []


def normalize_name(name: str) -> str:
    """Distribution/entry-point names compare like pip's: case-insensitive, ``-``, ``_``, ``.`` alike."""
    return name.strip().lower().replace("_", "-").replace(".", "-")


# ---------------------------------------------------------------------------------------------
# enabling and disabling
# ---------------------------------------------------------------------------------------------


def disable(*names: str) -> None:
    """Skip the plugins with these entry-point or distribution names.

    Meant to be called before first use. Called later, it drops what was discovered so that the
    next use rediscovers without them (components already imported stay imported)."""
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"disable() takes entry-point or distribution names (str), got {name!r}")
    with _lock:
        _disabled.update(normalize_name(n) for n in names)
        _forget()


def disabled_names() -> set[str]:
    """Normalised names disabled through :func:`disable` and ``DET_DISABLE_PLUGINS``."""
    from_env = {normalize_name(n) for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    return set(_disabled) | from_env


def prefer(kind: str, name: str, distribution: str) -> None:
    """Choose which distribution's (kind, name) is used when several provide it (``"in-process"``
    for an object registered by user code). Cleared by :func:`reset`; also
    ``det.core.registry.prefer``.

        prefer("ROI_HEADS", "StandardROIHeads", "det-heads-roi")
    """
    for label, value in (("kind", kind), ("name", name), ("distribution", distribution)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"prefer() needs a non-empty string {label}, got {value!r}")
    with _lock:
        _preferences[(kind, name)] = distribution


def preferences() -> dict[tuple[str, str], str]:
    """(kind, name) -> distribution chosen through ``DET_PREFER``, overlaid with the choices of
    :func:`prefer` (which win)."""
    chosen: dict[tuple[str, str], str] = {}
    text = os.environ.get(PREFER_ENV, "")
    for item in (part.strip() for part in text.replace(";", ",").split(",")):
        if not item:
            continue
        head, sep, dist = item.partition("=")
        kind, sep2, name = head.partition(":")
        if not (sep and sep2 and kind.strip() and name.strip() and dist.strip()):
            raise ValueError(f"{PREFER_ENV} entry {item!r} is malformed; expected KIND:Name=distribution, e.g. "
                             f"{PREFER_ENV}=ROI_HEADS:StandardROIHeads=det-heads-roi (comma-separated)")
        chosen[(kind.strip(), name.strip())] = dist.strip()
    with _lock:
        chosen.update(_preferences)
    return chosen


def reset() -> None:
    """Forget everything discovered, the names given to :func:`disable` and the choices given to
    :func:`prefer`; the next use rediscovers (and re-reads the environment).
    In-process registrations (``REGISTRY.register()``) are kept."""
    with _lock:
        _disabled.clear()
        _preferences.clear()
        _forget()


def on_reset(callback: Callable[[], None]) -> None:
    """Call ``callback()`` whenever discovered state is dropped (caches built from declarations,
    e.g. an op table, use this to rebuild themselves)."""
    _reset_callbacks.append(callback)


def _forget() -> None:
    global _state
    _state = None
    for callback in list(_reset_callbacks):
        callback()


# ---------------------------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------------------------


def _entry_points() -> list[metadata.EntryPoint]:
    """The ``det`` entry points, each (distribution, name) once: a distribution seen twice on
    sys.path counts once, the first one found winning as for imports."""
    seen: set[tuple[str, str]] = set()
    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = _dist_name(ep)
        key = (normalize_name(dist), ep.name)
        if key in seen:
            continue
        seen.add(key)
        found.append(ep)
    # Sorted, so listings and hook order do not depend on the file system's order.
    return sorted(found, key=lambda ep: (normalize_name(_dist_name(ep)), ep.name))


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "<unknown distribution>"


def _dist_version(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else "?"


def _make_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def _load() -> _State:
    state = _State(manager=_make_manager())
    disabled = disabled_names()
    for ep in _entry_points():
        dist, version = _dist_name(ep), _dist_version(ep)
        info = dict(name=ep.name, distribution=dist, version=version, value=ep.value)
        if normalize_name(ep.name) in disabled or normalize_name(dist) in disabled:
            state.plugins.append(PluginInfo(**info, status="disabled"))
            continue
        try:
            module = ep.load()
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            message = f"failed to import {ep.value}: {type(e).__name__}: {e}"
            state.plugins.append(PluginInfo(**info, status="failed", error=message))
            state.errors.append(PluginError(ep.name, dist, message))
            continue
        api = getattr(module, "DET_PLUGIN_API_VERSION", None)
        if api != PLUGIN_API_VERSION:
            if api is None:
                message = (f"{ep.value} declares no DET_PLUGIN_API_VERSION; this det-core speaks plugin API "
                           f"{PLUGIN_API_VERSION} (set DET_PLUGIN_API_VERSION = {PLUGIN_API_VERSION} in it)")
            else:
                message = (f"{ep.value} was written for det plugin API {api!r}, but this det-core speaks "
                           f"{PLUGIN_API_VERSION}; install a version of {dist} made for it")
            state.plugins.append(PluginInfo(**info, status="failed", api_version=api, error=message))
            state.errors.append(PluginError(ep.name, dist, message))
            continue
        registration = f"{dist}:{ep.name}"
        try:
            state.manager.register(module, name=registration)
        except Exception as e:  # pluggy validates hook signatures here
            message = f"{ep.value} does not implement det's hooks correctly: {e}"
            state.plugins.append(PluginInfo(**info, status="failed", api_version=api, error=message))
            state.errors.append(PluginError(ep.name, dist, message))
            continue
        plugin = PluginInfo(**info, status="loaded", api_version=api)
        state.plugins.append(plugin)
        state.by_name[registration] = plugin
    _check_unknown_hooks(state)
    _collect(state)
    # Said once, at discovery: a broken plugin should not go unnoticed just because nothing
    # asked for its components yet.
    for error in state.errors:
        warnings.warn(f"det plugin {error}; ignored (see `det plugins`)", RuntimeWarning, stacklevel=4)
    return state


def _check_unknown_hooks(state: _State) -> None:
    """Hook implementations that match no hookspec are most likely typos: report them."""
    for hook_name in dir(state.manager.hook):
        caller = getattr(state.manager.hook, hook_name, None)
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            plugin = state.by_name[impl.plugin_name]
            known = ", ".join(hookspecs.HOOK_NAMES)
            state.errors.append(PluginError(plugin.name, plugin.distribution,
                                            f"implements unknown hook {hook_name!r} (det's hooks: {known})"))


def _call_each(state: _State, hook_name: str) -> Iterable[tuple[PluginInfo, list[Any]]]:
    """Call one declaration hook of every plugin separately, so results carry their distribution
    and one plugin's failure does not lose the others' declarations."""
    caller = getattr(state.manager.hook, hook_name)
    # get_hookimpls() is in registration (entry-point) order; pluggy would call them reversed.
    for impl in caller.get_hookimpls():
        plugin = state.by_name[impl.plugin_name]
        try:
            result = impl.function()
            items = [] if result is None else list(result)
        except Exception as e:
            state.errors.append(PluginError(plugin.name, plugin.distribution,
                                            f"{hook_name}() raised {type(e).__name__}: {e}"))
            continue
        yield plugin, items


def _valid_target(target: Any) -> bool:
    if not isinstance(target, str) or target.count(":") != 1:
        return False
    module, attr = target.split(":")
    return bool(module.strip()) and bool(attr.strip())


def _check_decl(state: _State, plugin: PluginInfo, hook: str, item: Any, size: int, what: str) -> bool:
    ok = (isinstance(item, (tuple, list)) and len(item) == size and all(isinstance(x, str) and x for x in item)
          and _valid_target(item[-1]))
    if not ok:
        state.errors.append(PluginError(plugin.name, plugin.distribution,
                                        f"{hook}() returned {item!r}; expected {what}"))
    return ok


def _collect(state: _State) -> None:
    for plugin, items in _call_each(state, "det_components"):
        for item in items:
            if _check_decl(state, plugin, "det_components", item, 3, '(kind, name, "module:attribute")'):
                kind, name, target = item
                state.components.append(ComponentDeclaration(kind, name, target, plugin.distribution, plugin.name))
    for plugin, items in _call_each(state, "det_ops"):
        for item in items:
            if _check_decl(state, plugin, "det_ops", item, 3, '(op name, device type, "module:attribute")'):
                op, device, target = item
                state.ops.append(OpDeclaration(op, device, target, plugin.distribution, plugin.name))
    for plugin, items in _call_each(state, "det_checkpoint_converters"):
        for item in items:
            if _check_decl(state, plugin, "det_checkpoint_converters", item, 2, '(name, "module:attribute")'):
                name, target = item
                state.converters.append(ConverterDeclaration(name, target, plugin.distribution, plugin.name))
    for plugin, items in _call_each(state, "det_cli_commands"):
        for item in items:
            if _check_decl(state, plugin, "det_cli_commands", item, 3, '(name, one-line help, "module:attribute")'):
                name, help_text, target = item
                state.commands.append(CommandDeclaration(name, help_text, target, plugin.distribution, plugin.name))
    for plugin, items in _call_each(state, "det_detectron2_names"):
        for item in items:
            if not _check_decl(state, plugin, "det_detectron2_names", item, 3,
                               '(detectron2 module path, name, "module:attribute")'):
                continue
            path, name, target = item
            if not (path == "detectron2" or path.startswith("detectron2.")) or ((name == "*") != target.endswith(":*")):
                state.errors.append(PluginError(plugin.name, plugin.distribution,
                                                f"det_detectron2_names() returned {item!r}; the path must start with "
                                                "'detectron2' and name '*' goes with a 'module:*' target"))
                continue
            state.detectron2_names.append(Detectron2NameDeclaration(path, name, target, plugin.distribution,
                                                                    plugin.name))


def _get_state() -> _State:
    global _state
    state = _state
    if state is None:
        with _lock:
            if _state is None:
                _state = _load()
            state = _state
    return state


def get_plugin_manager() -> pluggy.PluginManager:
    """The pluggy manager with every loaded plugin registered (discovering them on first call)."""
    return _get_state().manager


def list_plugins() -> list[PluginInfo]:
    """Every ``det`` entry point found, loaded, disabled or failed, in discovery order."""
    return list(_get_state().plugins)


def plugin_errors() -> list[PluginError]:
    """Problems found while loading plugins or reading their declarations."""
    return list(_get_state().errors)


def component_declarations() -> list[ComponentDeclaration]:
    """Every component declared by a loaded plugin (nothing is imported)."""
    return list(_get_state().components)


def op_declarations() -> list[tuple[str, str, str, str]]:
    """(op name, device type, "module:attribute", distribution) of every op a plugin declares.
    For det.core.layers.ops, which keeps core's reference implementations as the fallback."""
    return [(d.op, d.device, d.target, d.distribution) for d in _get_state().ops]


def converter_declarations() -> list[ConverterDeclaration]:
    return list(_get_state().converters)


def command_declarations() -> list[CommandDeclaration]:
    return list(_get_state().commands)


def detectron2_name_declarations() -> list[Detectron2NameDeclaration]:
    """The ``detectron2.*`` names plugins declare for det-compat-detectron2 (nothing imported)."""
    return list(_get_state().detectron2_names)


# ---------------------------------------------------------------------------------------------
# importing declared objects
# ---------------------------------------------------------------------------------------------


def load_target(target: str, distribution: str | None = None, what: str = "object") -> Any:
    """Import ``"module:attribute"`` (the attribute may be dotted), with an error that names the
    distribution that declared it."""
    if not _valid_target(target):
        raise ValueError(f"{what} target must be 'module:attribute', got {target!r}")
    module_name, attr = target.split(":")
    source = f" (declared by {distribution})" if distribution else ""
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:
        raise ImportError(f"Cannot import {what} {target!r}{source}: {type(e).__name__}: {e}") from e
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as e:
        raise ImportError(f"Cannot import {what} {target!r}{source}: module {module_name!r} has no "
                          f"attribute {attr!r}") from e
    return obj


class _LazyConverter:
    """A checkpoint converter that imports its implementation on first call."""

    def __init__(self, name: str, target: str, distribution: str) -> None:
        self.name = name
        self.target = target
        self.distribution = distribution
        self._fn: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._fn is None:
            self._fn = load_target(self.target, self.distribution, what=f"checkpoint converter {self.name!r}")
        return self._fn(*args, **kwargs)

    # Equal declarations are one converter: registering again after reset() is then a no-op for
    # det.checkpoint, which refuses a *different* function under a taken name.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _LazyConverter):
            return NotImplemented
        return (self.name, self.target, self.distribution) == (other.name, other.target, other.distribution)

    def __hash__(self) -> int:
        return hash((self.name, self.target, self.distribution))

    def __repr__(self) -> str:
        return f"<lazy checkpoint converter {self.name} = {self.target} from {self.distribution}>"


def register_checkpoint_converters() -> None:
    """Hand the declared checkpoint converters to ``det.checkpoint.register_converter``, each
    wrapped so that its module is imported on first call. Idempotent; done on first component
    lookup (det.checkpoint imports torch, which listing plugins must not)."""
    state = _get_state()
    if state.converters_registered or not state.converters:
        state.converters_registered = True
        return
    with _lock:
        if state.converters_registered:
            return
        state.converters_registered = True
        try:
            from det.checkpoint import register_converter
        except ImportError as e:
            warnings.warn(f"det plugins declare checkpoint converters but det.checkpoint.register_converter "
                          f"is unavailable ({e}); they are not registered", RuntimeWarning, stacklevel=2)
            return
        for decl in state.converters:
            try:
                register_converter(decl.name, _LazyConverter(decl.name, decl.target, decl.distribution))
            except Exception as e:
                state.errors.append(PluginError(decl.plugin, decl.distribution,
                                                f"registering checkpoint converter {decl.name!r} failed: {e}"))


# ---------------------------------------------------------------------------------------------
# config extension
# ---------------------------------------------------------------------------------------------


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def extend_config(cfg: Any) -> None:
    """Let every loaded plugin add its keys to ``cfg`` (``det_extend_config``), one at a time.

    A plugin that raises or changes an existing key is reported by name (warning and
    :func:`plugin_errors`) and its changes are undone; the other plugins' keys stay."""
    state = _get_state()
    caller = state.manager.hook.det_extend_config
    for impl in caller.get_hookimpls():
        plugin = state.by_name[impl.plugin_name]
        before = copy.deepcopy(cfg)
        flat_before = _flatten(before)
        problem = None
        try:
            impl.function(cfg=cfg)
        except Exception as e:
            problem = f"det_extend_config() raised {type(e).__name__}: {e}"
        else:
            flat_after = _flatten(cfg)
            changed = sorted(k for k, v in flat_before.items() if k not in flat_after or flat_after[k] != v)
            if changed:
                problem = (f"det_extend_config() changed existing config keys {', '.join(changed)}; a plugin "
                           "may only add keys")
        if problem is not None:
            cfg.clear()
            cfg.update(before)
            error = PluginError(plugin.name, plugin.distribution, problem)
            if error not in state.errors:
                state.errors.append(error)
            warnings.warn(f"det plugin {plugin.distribution}: {problem}; its config keys are ignored",
                          RuntimeWarning, stacklevel=3)


__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "PREFER_ENV",
    "STANDARD_KINDS",
    "CommandDeclaration",
    "ComponentDeclaration",
    "ConverterDeclaration",
    "Detectron2NameDeclaration",
    "OpDeclaration",
    "PluginError",
    "PluginInfo",
    "command_declarations",
    "component_declarations",
    "converter_declarations",
    "detectron2_name_declarations",
    "disable",
    "disabled_names",
    "extend_config",
    "get_plugin_manager",
    "list_plugins",
    "load_target",
    "normalize_name",
    "on_reset",
    "op_declarations",
    "plugin_errors",
    "prefer",
    "preferences",
    "register_checkpoint_converters",
    "reset",
]
