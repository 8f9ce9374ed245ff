"""Global name -> dataset and name -> metadata tables (detectron2's ``data.catalog``)."""

from __future__ import annotations

import copy
import logging
import threading
import types
from collections import UserDict
from collections.abc import Callable
from typing import Any

__all__ = ["DatasetCatalog", "Metadata", "MetadataCatalog", "run_on_every_use", "run_on_first_use"]

# Functions that fill the catalogs lazily (the builtin datasets), run once, in order, right
# before either catalog is first read or written. A function stays in the list until it has
# returned, so another thread that reaches a catalog meanwhile waits for it on the lock.
_first_use_hooks: list[Callable[[], None]] = []
_first_use_lock = threading.RLock()
_first_use_running = False


def run_on_first_use(func: Callable[[], None]) -> None:
    """Call ``func()`` once, right before ``DatasetCatalog`` or ``MetadataCatalog`` is first
    used (at once if one was used already, on the next use). ``det.data`` registers the
    builtin datasets this way, so importing it reads nothing and registers nothing heavy."""
    _first_use_hooks.append(func)


# Cheap checks run before every use of a catalog (after the first-use hooks), e.g. the builtin
# datasets following a changed $DETECTRON2_DATASETS. They guard their own re-entrance.
_every_use_hooks: list[Callable[[], None]] = []


def run_on_every_use(func: Callable[[], None]) -> None:
    """Call ``func()`` before every use of ``DatasetCatalog`` or ``MetadataCatalog``. It runs on
    every lookup, so it must be cheap; it may (re-)register entries, and must not recurse when
    doing so uses the catalogs."""
    _every_use_hooks.append(func)


def _run_first_use_hooks() -> None:
    global _first_use_running
    with _first_use_lock:
        if _first_use_running:  # a hook reading the catalog it is filling
            return
        _first_use_running = True
        try:
            while _first_use_hooks:
                func = _first_use_hooks[0]
                try:
                    func()
                finally:  # a failing hook is reported once, not on every later access
                    _first_use_hooks.pop(0)
        finally:
            _first_use_running = False


class _LazyFilledDict(UserDict):
    """A UserDict whose every access first runs the pending :func:`run_on_first_use` hooks.
    UserDict routes all its methods through ``self.data``, so that attribute is the one gate."""

    @property
    def data(self) -> dict:
        if _first_use_hooks:
            _run_first_use_hooks()
        for hook in _every_use_hooks:
            hook()
        return self.__dict__["_data"]

    @data.setter
    def data(self, value: dict) -> None:
        self.__dict__["_data"] = value

    def __copy__(self) -> _LazyFilledDict:  # UserDict's reads __dict__["data"], which is a property here
        inst = self.__class__.__new__(self.__class__)
        inst.__dict__.update(self.__dict__)
        inst.__dict__["_data"] = self.data.copy()
        return inst

    _label: str  # "registered datasets" / "registered metadata", for str()

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"{type(self).__name__.lstrip('_')}({self._label}: {', '.join(self.keys())})"

    __repr__ = __str__


class _DatasetCatalog(_LazyFilledDict):
    """Maps a dataset name to a zero-argument function returning ``list[dict]`` in detectron2's
    standard dataset format. The function is only called by :meth:`get`, so registering is cheap.

        DatasetCatalog.register("my_train", lambda: load_coco_json("a.json", "imgs/", "my_train"))
        dicts = DatasetCatalog.get("my_train")
    """

    _label = "registered datasets"

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        if not callable(func):
            raise TypeError(
                f"DatasetCatalog.register({name!r}, ...) needs a callable returning list[dict], got {type(func).__name__}"
            )
        if name in self:
            raise ValueError(
                f"Dataset {name!r} is already registered; call DatasetCatalog.remove({name!r}) first"
            )
        self[name] = func

    def get(self, name: str) -> list[dict]:  # type: ignore[override]
        try:
            func = self[name]
        except KeyError as e:
            raise KeyError(
                f"Dataset {name!r} is not registered! Available datasets are: {', '.join(sorted(self.keys()))}"
            ) from e
        return func()



DatasetCatalog = _DatasetCatalog()


class Metadata(types.SimpleNamespace):
    """Write-once attributes describing a dataset (class names, colors, json file, ...).

    An attribute can be set again only to an equal value, so two pieces of code cannot silently
    disagree about e.g. ``thing_classes``::

        meta = MetadataCatalog.get("shapes_train").set(thing_classes=["circle", "square"])
        meta.thing_classes  # ['circle', 'square']
    """

    name: str = "N/A"

    # Old names detectron2 still accepts, read and written under the new one.
    _RENAMED = {
        "class_names": "thing_classes",
        "dataset_id_to_contiguous_id": "thing_dataset_id_to_contiguous_id",
        "stuff_class_names": "stuff_classes",
    }

    def __getattr__(self, key: str) -> Any:
        if key in self._RENAMED:
            return getattr(self, self._RENAMED[key])
        # Only when the attribute is missing: keep copy/pickle protocols working.
        if len(self.__dict__) > 1:
            raise AttributeError(
                f"Attribute '{key}' does not exist in the metadata of dataset '{self.name}'. "
                f"Available keys are {self.__dict__.keys()!s}."
            )
        raise AttributeError(
            f"Attribute '{key}' does not exist in the metadata of dataset '{self.name}': metadata is empty."
        )

    def __setattr__(self, key: str, val: Any) -> None:
        if key in self._RENAMED:
            key = self._RENAMED[key]
        try:
            oldval = self.__dict__[key]
        except KeyError:
            super().__setattr__(key, val)
            return
        if not _equal(oldval, val):
            raise AssertionError(
                f"Attribute '{key}' in the metadata of '{self.name}' cannot be set to a different value!\n"
                f"{oldval} != {val}"
            )

    def as_dict(self) -> dict[str, Any]:
        return copy.copy(self.__dict__)

    def set(self, **kwargs: Any) -> Metadata:
        for k, v in kwargs.items():
            setattr(self, k, v)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            return default


def _equal(a: Any, b: Any) -> bool:
    try:
        result = a == b
        if isinstance(result, bool):
            return result
        return bool(getattr(result, "all", lambda: result)())
    except Exception:
        return a is b


class _MetadataCatalog(_LazyFilledDict):
    """Maps a dataset name to its :class:`Metadata`, created empty on first access.

    MetadataCatalog.get("shapes_train").thing_classes
    """

    _label = "registered metadata"

    def get(self, name: str) -> Metadata:  # type: ignore[override]
        if not name:
            raise ValueError("MetadataCatalog.get() needs a non-empty dataset name")
        r = super().get(name, None)
        if r is None:
            r = self[name] = Metadata(name=name)
        return r



MetadataCatalog = _MetadataCatalog()

logging.getLogger(__name__).addHandler(logging.NullHandler())
