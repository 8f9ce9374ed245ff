"""The ``detectron2.*`` modules: built from the alias table (``_table``) and plugin declarations.

Invariant: every name a ``detectron2.*`` module serves *is* det's object (``is``, not a copy);
a module det matches file for file *is* det's module (``det.core.lazy.alias_package``). Modules
are created on first import and names are looked up on first access, so ``import detectron2``
imports no torch.

A public name det does not provide raises :class:`NotProvidedError` (an ImportError, also from
``from detectron2.x import name``) that says so, names the det distribution to install when one
that would be searched is missing, and suggests close names.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

from detectron2 import _table

__all__ = ["NotProvidedError", "install", "module_paths", "provided_names", "resolve"]


class NotProvidedError(ImportError):
    """A detectron2 name that det does not provide (or whose det distribution is not installed)."""


_lock = threading.RLock()
_plugin_sources: dict[str, list[str]] | None = None  # path -> extra source modules ("*" declarations)
_plugin_names: dict[str, dict[str, str]] | None = None  # path -> {name: "module:attr"}


def _distribution_of(module: str) -> str | None:
    best = None
    for prefix, dist in _table.DISTRIBUTIONS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, dist)
    return best[1] if best else None


def _load_plugin_declarations() -> None:
    global _plugin_sources, _plugin_names
    with _lock:
        if _plugin_names is not None:
            return
        sources: dict[str, list[str]] = {}
        names: dict[str, dict[str, str]] = {}
        try:
            from det.core.plugins import detectron2_name_declarations

            declarations = detectron2_name_declarations()
        except ImportError:  # an older det-core without the hook
            declarations = []
        for decl in declarations:
            if decl.name == "*":
                sources.setdefault(decl.path, []).append(decl.target[: -len(":*")])
            else:
                names.setdefault(decl.path, {})[decl.name] = decl.target
        _plugin_sources, _plugin_names = sources, names


def _plugin_paths() -> set[str]:
    _load_plugin_declarations()
    assert _plugin_sources is not None and _plugin_names is not None
    return set(_plugin_sources) | set(_plugin_names)


def module_paths() -> list[str]:
    """Every ``detectron2.*`` module path det serves (the table's and the plugins')."""
    return sorted(set(_table.MODULES) | set(_table.ALIASED_MODULES) | _plugin_paths())


def _children(path: str) -> list[str]:
    prefix = path + "."
    return sorted({p[len(prefix):].split(".")[0] for p in module_paths() if p.startswith(prefix)})


def _sources(path: str) -> list[str]:
    _load_plugin_declarations()
    assert _plugin_sources is not None
    return [*_table.MODULES.get(path, ()), *_plugin_sources.get(path, [])]


def _explicit(path: str) -> dict[str, str]:
    _load_plugin_declarations()
    assert _plugin_names is not None
    return {**_table.NAMES.get(path, {}), **_plugin_names.get(path, {})}


def _import_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolve(path: str, name: str) -> Any:
    """The det object served as ``detectron2.<path>.<name>``, or NotProvidedError."""
    explicit = _explicit(path).get(name)
    missing: list[str] = []
    if explicit is not None:
        try:
            return _import_target(explicit)
        except ModuleNotFoundError as e:
            missing.append(e.name or explicit)
        except AttributeError:
            raise _not_provided(path, name, []) from None
    if name in _children(path):
        return importlib.import_module(f"{path}.{name}")
    for source in _sources(path):
        try:
            module = importlib.import_module(source)
        except ModuleNotFoundError as e:
            if e.name and source.startswith(e.name):
                missing.append(source)
                continue
            raise
        try:
            value = getattr(module, name)
        except AttributeError:
            continue
        if _incidental_submodule(module, name, value):
            continue
        return value
    raise _not_provided(path, name, missing)


def _incidental_submodule(package: types.ModuleType, name: str, value: Any) -> bool:
    """Whether ``value`` is a submodule of ``package`` that it does not export: Python sets it as
    an attribute only once something has imported it, so serving it would make what
    ``detectron2.<path>`` provides depend on the import history (``det.export.api`` is not
    detectron2's ``export.api``)."""
    return (isinstance(value, types.ModuleType) and value.__name__ == f"{package.__name__}.{name}"
            and name not in getattr(package, "__all__", ()))


def _not_provided(path: str, name: str, missing: Sequence[str]) -> NotProvidedError:
    full = f"{path}.{name}"
    dists = sorted({d for d in (_distribution_of(m) for m in missing) if d})
    if dists:
        hint = (f" It may come from {', '.join(dists)}, which is not installed: pip install {' '.join(dists)}"
                " (from det's repository).")
    else:
        close = difflib.get_close_matches(name, provided_names(path), n=3, cutoff=0.7)
        hint = f" Close names it has: {', '.join(close)}." if close else ""
    return NotProvidedError(f"det does not provide {full} (det-compat-detectron2 serves detectron2's names that "
                            f"det implements; see docs/coming_from_detectron2.md).{hint}", name=path)


def provided_names(path: str, *, importing: bool = True) -> list[str]:
    """The names ``detectron2.<path>`` serves. With ``importing=False`` only those known without
    importing a det module (explicit entries and submodules)."""
    names = set(_explicit(path)) | set(_children(path))
    if importing:
        for source in _sources(path):
            try:
                module = importlib.import_module(source)
            except ModuleNotFoundError:
                continue
            public = getattr(module, "__all__", None) or [
                n for n in dir(module) if not _incidental_submodule(module, n, getattr(module, n, None))]
            names.update(n for n in public if not n.startswith("_"))
    return sorted(names)


class _CompatModule(types.ModuleType):
    """A ``detectron2.*`` module made from the table: names resolve on first access."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or (name.startswith("_") and name not in _explicit(self.__name__)):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = resolve(self.__name__, name)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(provided_names(self.__name__)))

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing a submodule sets it on its package; where the package exports an object of
        # that name instead (detectron2.engine.launch, the function), the object stays.
        if isinstance(value, types.ModuleType) and not name.startswith("_") and name in _explicit(self.__name__):
            return
        super().__setattr__(name, value)


class _CompatFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Creates the ``detectron2.*`` modules of ``_table.MODULES`` and of plugin declarations."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("detectron2.") or fullname in _table.ALIASED_MODULES:
            return None
        # a parent of declared paths is a package too (detectron2.projects for detectron2.projects.point_rend)
        if fullname not in _table.MODULES and fullname not in _plugin_paths() and not _children(fullname):
            return None
        is_package = bool(_children(fullname))
        return importlib.util.spec_from_loader(fullname, self, is_package=is_package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _CompatModule(spec.name)
        module.__doc__ = f"detectron2's {spec.name} served by det (det-compat-detectron2)."
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__spec__ is not None and module.__spec__.submodule_search_locations is not None:
            module.__path__ = []  # a package: its children come from this finder or alias_package


_finder = _CompatFinder()


def install() -> None:
    """Put the finder on ``sys.meta_path`` and alias the file-for-file modules (once)."""
    from det.core.lazy import alias_package

    with _lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        for old, new in _table.ALIASED_MODULES.items():
            alias_package(old, new)
