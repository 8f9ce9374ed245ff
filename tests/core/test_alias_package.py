"""det.core.lazy.alias_package: a moved package answers to its old path with the same modules."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from det.core.lazy import alias_package


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    pkg = tmp_path / "newpkg_alias_test"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in list(sys.modules):
        if name.startswith(("newpkg_alias_test", "oldpkg_alias_test")):
            del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "old", None) != "oldpkg_alias_test"]


def test_alias_gives_the_same_module_objects(fake_packages):
    alias_package("oldpkg_alias_test", "newpkg_alias_test", warning="moved: use newpkg_alias_test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old_leaf = importlib.import_module("oldpkg_alias_test.sub.leaf")
    new_leaf = importlib.import_module("newpkg_alias_test.sub.leaf")
    assert old_leaf is new_leaf
    assert old_leaf.Thing is new_leaf.Thing
    assert sys.modules["oldpkg_alias_test"] is sys.modules["newpkg_alias_test"]
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == [
        "moved: use newpkg_alias_test"
    ]


def test_alias_is_idempotent_and_refuses_a_second_target(fake_packages):
    alias_package("oldpkg_alias_test", "newpkg_alias_test")
    alias_package("oldpkg_alias_test", "newpkg_alias_test")
    assert sum(getattr(f, "old", None) == "oldpkg_alias_test" for f in sys.meta_path) == 1
    with pytest.raises(ValueError, match="already an alias of 'newpkg_alias_test'"):
        alias_package("oldpkg_alias_test", "somewhere_else")


def test_missing_submodule_is_an_import_error_of_the_new_name(fake_packages):
    alias_package("oldpkg_alias_test", "newpkg_alias_test")
    with pytest.raises(ModuleNotFoundError, match="newpkg_alias_test.nope"):
        importlib.import_module("oldpkg_alias_test.nope")
