"""Every det package with a lazy ``__init__`` (det.core.lazy.lazy_exports) is lazy and complete.

Lazy: importing it in a fresh interpreter imports no torch (``det plugins`` imports every plugin's
package; listing must stay cheap). Complete: every name of ``__all__`` resolves, to the very object
its table names; every table entry is in ``__all__`` and ``dir()``; and the names a package lists
under ``if TYPE_CHECKING:`` (for type checkers) are exactly its table's, from the same modules.
The packages are found from the import map, so a new one is covered without editing this file.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lazy_packages() -> dict[str, Path]:
    """package name -> its __init__.py, for every package of the tree that calls lazy_exports."""
    import tomllib

    found = {}
    for part in tomllib.loads((REPO / "import-map.toml").read_text())["parts"].values():
        src = REPO / part["folder"] / "src"
        for init in sorted(src.rglob("__init__.py")):
            if "lazy_exports(" in init.read_text():
                found[".".join(init.parent.relative_to(src).parts)] = init
    return found


PACKAGES = _lazy_packages()

PROBE = """
import importlib, json, sys
importlib.import_module({package!r})
print(json.dumps(sorted(m for m in ("torch", "torchvision", "numpy", "triton") if m in sys.modules)))
"""


def test_the_lazy_packages_are_found():
    assert {"det.core", "det.core.modeling", "det.data", "det.engine", "det.engine.train", "det.heads.rpn",
            "det.heads.roi", "det.backbones", "det.ops_cuda", "det.export"} <= set(PACKAGES)


@pytest.fixture(scope="module")
def heavy_imports() -> dict[str, list[str]]:
    """package -> heavy libraries a fresh interpreter has after importing it (all probed at once)."""
    running = {package: subprocess.Popen([sys.executable, "-c", PROBE.format(package=package)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for package in PACKAGES}
    results = {}
    for package, process in running.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"import {package} failed:\n{err}"
        results[package] = json.loads(out.strip().splitlines()[-1])
    return results


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_importing_the_package_imports_no_torch(package, heavy_imports):
    assert "torch" not in heavy_imports[package], f"import {package} imports torch: {heavy_imports[package]}"
    assert "triton" not in heavy_imports[package]


def _type_checking_names(package: str, init: Path) -> dict[str, str]:
    """name -> module of the ``from module import name`` lines under ``if TYPE_CHECKING:``
    (``from <package> import sub``: the submodule ``<package>.sub``)."""
    names = {}
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    for alias in statement.names:
                        module = statement.module
                        names[alias.asname or alias.name] = f"{package}.{alias.name}" if module == package else module
    return names


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_each_lazily_served_name_is_an_explicit_reexport(package):
    """``mypy --strict`` lets users import a name the package serves through ``__getattr__`` only
    when the package re-exports it explicitly: ``from module import X as X`` under TYPE_CHECKING
    (tests/test_typing.py checks a user's strict code)."""
    for node in ast.walk(ast.parse(PACKAGES[package].read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), f"{package}: only `from ... import` under TYPE_CHECKING"
                for alias in statement.names:
                    assert alias.asname == alias.name, (
                        f"{package}: `from {statement.module} import {alias.name}` is no re-export for "
                        f"mypy --strict: write `{alias.name} as {alias.name}`")


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_public_name_resolves_to_the_object_its_table_names(package):
    from det.core.lazy import _TABLES

    pkg = importlib.import_module(package)
    table = _TABLES[package]
    public = list(pkg.__all__)
    assert len(public) == len(set(public)), f"{package}.__all__ repeats names"
    missing = sorted(name for name in table if not name.startswith("_") and name not in public)
    assert not missing, f"{package}: table names missing from __all__: {missing}"
    assert set(public) <= set(dir(pkg))
    for name in public:
        value = getattr(pkg, name)
        module = table.get(name)
        if module == f"{package}.{name}":
            assert value is importlib.import_module(module), (package, name)
        elif module is not None:
            assert value is getattr(importlib.import_module(module), name), (package, name, module)
    typed = _type_checking_names(package, PACKAGES[package])
    if typed:  # what type checkers see is what the package serves, from the same modules
        assert typed == table, f"{package}: TYPE_CHECKING imports differ from the lazy table"
