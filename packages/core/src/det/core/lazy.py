"""Lazily imported public names for a package ``__init__`` (PEP 562), so that importing a det
package (as ``det plugins`` does for every plugin) never pulls in torch.

Invariant: a name is imported from its module on first attribute access and then stored on the
package, so later accesses are plain attribute lookups::

    _LAZY = {"RPN": "det.heads.rpn.rpn", "find_top_rpn_proposals": "det.heads.rpn.proposal_utils"}
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY)

A name whose module is the package's own submodule of that name (``"hooks":
"det.engine.train.hooks"``) is that submodule. A package that re-exports the names of others
(``det.engine`` those of ``det.data``, ``det.evaluation`` and ``det.engine.train``) names them with
``also=`` instead of copying their tables.

``alias_package(old, new)`` is the other half: a package that moved keeps answering to its old
import path (``det.engine.data`` -> ``det.data``) with the very same module objects.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["alias_package", "exported", "lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str] | None = None, *, also: Sequence[str] = (), public: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` for ``names`` (public name ->
    module that defines it).

    Without ``names``, the table is what the package's ``__init__`` imports under
    ``if TYPE_CHECKING:`` (the lines type checkers read; ``from <package> import sub`` names a
    submodule), so each name is written once. Each is imported as itself (``X as X``), the
    explicit re-export with which ``mypy --strict`` lets users import it from the package::

        if TYPE_CHECKING:
            from det.heads.rpn.rpn import RPN as RPN
            from det.heads.rpn.rpn import StandardRPNHead as StandardRPNHead
        __getattr__, __dir__ = lazy_exports(__name__)
        __all__ = ["__version__", *exported(__name__)]

    ``also``: packages whose public names (their ``__all__``, submodules excepted) ``package``
    re-exports too, without a copy of their tables: a name not in ``names`` is looked up in them,
    in order, importing them then. With ``also``, ``__all__`` is computed on first access (it
    imports those packages): ``public`` (names the package defines itself), ``names`` and theirs.
    """
    table = dict(names) if names is not None else _type_checking_imports(package)
    reexported: dict[str, str] = {}  # name -> package of ``also`` that provides it, once computed

    def provided_by_also() -> dict[str, str]:
        if not reexported:
            for other in also:
                module = importlib.import_module(other)
                own_table = _TABLES.get(other, {})
                for name in getattr(module, "__all__", ()):
                    if own_table.get(name) != f"{other}.{name}":  # not a submodule
                        reexported.setdefault(name, other)
        return reexported

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is not None:
            imported = importlib.import_module(module)
            value = imported if module == f"{package}.{name}" else getattr(imported, name)
        elif also and name == "__all__":
            value = sorted({*public, *table, *provided_by_also()})
        elif also and not name.startswith("_") and name in provided_by_also():
            value = getattr(importlib.import_module(provided_by_also()[name]), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *table, *(provided_by_also() if also else ())})

    _TABLES[package] = table
    return __getattr__, __dir__


_TABLES: dict[str, dict[str, str]] = {}
"""package -> its lazy table, for packages that re-export another's names (``also``)."""


def exported(package: str) -> list[str]:
    """The names ``package`` serves through :func:`lazy_exports`, in table order (for ``__all__``)."""
    return list(_TABLES[package])


def _type_checking_imports(package: str) -> dict[str, str]:
    """name -> module of every ``from module import name`` under ``if TYPE_CHECKING:`` in the
    package's ``__init__`` (relative imports resolved)."""
    import ast
    from pathlib import Path

    source = Path(sys.modules[package].__file__ or "").read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"):
            continue
        for statement in node.body:
            if isinstance(statement, ast.ImportFrom):
                module = importlib.util.resolve_name("." * statement.level + (statement.module or ""), package) \
                    if statement.level else statement.module or ""
                for alias in statement.names:
                    # ``from <package> import hooks``: the package's submodule ``hooks``
                    table[alias.asname or alias.name] = f"{package}.{alias.name}" if module == package else module
    if not table:
        raise ValueError(f"lazy_exports({package!r}) without names: its __init__ imports nothing under "
                         "`if TYPE_CHECKING:`")
    return table


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``old`` and every ``old.<sub>`` as the already-importable ``new`` / ``new.<sub>``."""

    def __init__(self, old: str, new: str, warning: str | None) -> None:
        self.old, self.new, self.warning = old, new, warning

    def target(self, fullname: str) -> str | None:
        if fullname == self.old or fullname.startswith(self.old + "."):
            return self.new + fullname[len(self.old) :]
        return None

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        aliased = self.target(fullname)
        if aliased is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        aliased = self.target(spec.name)
        assert aliased is not None
        if self.warning and spec.name == self.old:
            import warnings

            warnings.warn(self.warning, DeprecationWarning, stacklevel=3)
        # the very module object: importlib keeps its __name__/__spec__ and files it under both names
        return importlib.import_module(aliased)

    def exec_module(self, module: Any) -> None:
        pass  # already executed under its own name


def alias_package(old: str, new: str, *, warning: str | None = None) -> None:
    """Make ``import old`` and ``import old.x.y`` give the module objects of ``new`` and ``new.x.y``.

    One object, two names: classes keep their identity (``isinstance`` and registries work across
    both), and nothing is imported until the old name is. ``warning`` is issued as a
    DeprecationWarning when ``old`` itself is first imported. Installing the same alias twice is a
    no-op; a different target for the same name is a ValueError.
    """
    for finder in sys.meta_path:
        if isinstance(finder, _AliasFinder) and finder.old == old:
            if finder.new != new:
                raise ValueError(f"{old!r} is already an alias of {finder.new!r}, not {new!r}")
            return
    # first on the path: otherwise the real finders would load a second copy of new's submodules
    # under the old name through the aliased parent's __path__
    sys.meta_path.insert(0, _AliasFinder(old, new, warning))
