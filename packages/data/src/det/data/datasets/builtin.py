"""detectron2's builtin datasets, registered under detectron2's names and folder layout.

Every model-zoo config names them (``DATASETS.TRAIN = ("coco_2017_train",)``). They are
registered the first time ``DatasetCatalog`` or ``MetadataCatalog`` is used (see
:func:`det.data.catalog.run_on_first_use`): registering reads no file, it only adds
lazy loaders and metadata (class names, ``evaluator_type``, the expected paths)::

    from det.data import DatasetCatalog, MetadataCatalog
    MetadataCatalog.get("coco_2017_val").thing_classes[:2]  # ['person', 'bicycle']
    dicts = DatasetCatalog.get("coco_2017_val")  # reads $DETECTRON2_DATASETS/coco/...

The datasets root is ``$DET_DATASETS`` if set, else ``$DETECTRON2_DATASETS``, else ``datasets``
(relative to the working directory); ``~`` is expanded. The builtin datasets follow it: when a
catalog is used and the variables name another root than the one the datasets were registered
under, they are all registered again under the new one (metadata included, so ``json_file`` &
co. always agree with what loads). :func:`register_all_builtin` with an explicit root stops
the following. A missing folder is reported when the dataset is loaded, naming the expected
paths and the variable to set.

Layout under the root (detectron2's ``datasets/README.md``)::

    coco/{train,val,test}2017/  coco/{train,val}2014/  coco/annotations/*.json
    coco/panoptic_{train,val}2017/  coco/panoptic_stuff_{train,val}2017/   (panoptic)
    VOC2007/  VOC2012/   (Annotations/, ImageSets/Main/<split>.txt, JPEGImages/)
    ADEChallengeData2016/{images,annotations_detectron2}/{training,validation}/
    lvis/, cityscapes/   (registered by det.data.datasets.lvis / .cityscapes)

LVIS and Cityscapes live in their own modules; :data:`BUILTIN_REGISTRARS` lists every
registration function (``"module:function"``, called with the root), and a listed module that
is not installed is skipped.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
from collections.abc import Callable

from det.data.catalog import DatasetCatalog, MetadataCatalog, run_on_every_use
from det.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES, get_builtin_metadata

__all__ = [
    "BUILTIN_REGISTRARS",
    "DATASETS_ROOT_ENV_VARS",
    "builtin_dataset_names",
    "follow_datasets_root",
    "get_datasets_root",
    "register_all_ade20k",
    "register_all_builtin",
    "register_all_coco",
    "register_all_pascal_voc",
]

logger = logging.getLogger(__name__)

#: Environment variables naming the datasets root, first set one wins. DET_DATASETS is det's
#: own spelling (like DET_CACHE); DETECTRON2_DATASETS is what detectron2 users already set.
DATASETS_ROOT_ENV_VARS = ("DET_DATASETS", "DETECTRON2_DATASETS")
_DEFAULT_ROOT = "datasets"

# name -> (image folder, annotation json), relative to the root; keyed by metadata family.
_PREDEFINED_SPLITS_COCO: dict[str, dict[str, tuple[str, str]]] = {
    "coco": {
        "coco_2014_train": ("coco/train2014", "coco/annotations/instances_train2014.json"),
        "coco_2014_val": ("coco/val2014", "coco/annotations/instances_val2014.json"),
        "coco_2014_minival": ("coco/val2014", "coco/annotations/instances_minival2014.json"),
        "coco_2014_valminusminival": (
            "coco/val2014",
            "coco/annotations/instances_valminusminival2014.json",
        ),
        "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
        "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json"),
        "coco_2017_test": ("coco/test2017", "coco/annotations/image_info_test2017.json"),
        "coco_2017_test-dev": ("coco/test2017", "coco/annotations/image_info_test-dev2017.json"),
        "coco_2017_val_100": ("coco/val2017", "coco/annotations/instances_val2017_100.json"),
    },
    "coco_person": {
        "keypoints_coco_2014_train": ("coco/train2014", "coco/annotations/person_keypoints_train2014.json"),
        "keypoints_coco_2014_val": ("coco/val2014", "coco/annotations/person_keypoints_val2014.json"),
        "keypoints_coco_2014_minival": (
            "coco/val2014",
            "coco/annotations/person_keypoints_minival2014.json",
        ),
        "keypoints_coco_2014_valminusminival": (
            "coco/val2014",
            "coco/annotations/person_keypoints_valminusminival2014.json",
        ),
        "keypoints_coco_2017_train": ("coco/train2017", "coco/annotations/person_keypoints_train2017.json"),
        "keypoints_coco_2017_val": ("coco/val2017", "coco/annotations/person_keypoints_val2017.json"),
        "keypoints_coco_2017_val_100": (
            "coco/val2017",
            "coco/annotations/person_keypoints_val2017_100.json",
        ),
    },
}

# panoptic name -> (panoptic PNG folder, panoptic json, semantic PNG folder made by detectron2's
# prepare_panoptic_fpn.py); the images and instance json are those of the name minus "_panoptic".
_PREDEFINED_SPLITS_COCO_PANOPTIC: dict[str, tuple[str, str, str]] = {
    "coco_2017_train_panoptic": (
        "coco/panoptic_train2017",
        "coco/annotations/panoptic_train2017.json",
        "coco/panoptic_stuff_train2017",
    ),
    "coco_2017_val_panoptic": (
        "coco/panoptic_val2017",
        "coco/annotations/panoptic_val2017.json",
        "coco/panoptic_stuff_val2017",
    ),
    "coco_2017_val_100_panoptic": (
        "coco/panoptic_val2017_100",
        "coco/annotations/panoptic_val2017_100.json",
        "coco/panoptic_stuff_val2017_100",
    ),
}

# (name, year folder, split). VOC2012's test annotations are not public: no voc_2012_test.
_PASCAL_VOC_SPLITS: tuple[tuple[str, str, str], ...] = (
    ("voc_2007_trainval", "VOC2007", "trainval"),
    ("voc_2007_train", "VOC2007", "train"),
    ("voc_2007_val", "VOC2007", "val"),
    ("voc_2007_test", "VOC2007", "test"),
    ("voc_2012_trainval", "VOC2012", "trainval"),
    ("voc_2012_train", "VOC2012", "train"),
    ("voc_2012_val", "VOC2012", "val"),
)

#: Registration functions of the builtin datasets, ``"module:function"``, each called with the
#: datasets root, in this order. A module that does not exist is skipped (LVIS and Cityscapes
#: come from their own modules); one that fails is logged and the others still register.
BUILTIN_REGISTRARS: list[str] = [
    "det.data.datasets.builtin:register_all_coco",
    "det.data.datasets.lvis:register_all_lvis",
    "det.data.datasets.cityscapes:register_all_cityscapes",
    "det.data.datasets.cityscapes_panoptic:register_all_cityscapes_panoptic",
    "det.data.datasets.builtin:register_all_pascal_voc",
    "det.data.datasets.builtin:register_all_ade20k",
]

# What loading a dataset needs on disk, for the missing-folder message. Names registered by
# other modules fall back to the path-valued metadata in _PATH_KEYS.
_NEEDED_PATHS: dict[str, tuple[str, ...]] = {}
_PATH_KEYS = (
    "json_file",
    "image_root",
    "image_dir",
    "gt_dir",
    "dirname",
    "sem_seg_root",
    "panoptic_root",
    "panoptic_json",
)

_lock = threading.RLock()
# root: what the datasets were registered under; follow_env: re-read the variables on every catalog use
# (False after an explicit register_all_builtin(root)); names: what the registrars registered.
# busy_thread: the thread registering now (its own catalog lookups must not re-register).
_state: dict = {"root": None, "follow_env": True, "names": [], "busy_thread": None}


def get_datasets_root() -> str:
    """The builtin datasets' root folder: ``$DET_DATASETS``, else ``$DETECTRON2_DATASETS``,
    else ``"datasets"``, with ``~`` expanded (empty variables count as unset)."""
    for var in DATASETS_ROOT_ENV_VARS:
        value = os.environ.get(var)
        if value:
            return os.path.expanduser(value)
    return _DEFAULT_ROOT


def _expect(name: str, *paths: str) -> None:
    _NEEDED_PATHS[name] = paths


def register_all_coco(root: str) -> None:
    """COCO instances and person keypoints (2014 and 2017 splits, ``*_val_100``), and COCO
    panoptic: ``coco_2017_{train,val,val_100}_panoptic`` (standard, evaluator
    ``coco_panoptic_seg``), ``*_panoptic_separated`` (Panoptic FPN: instance json + semantic
    PNGs) and ``*_panoptic_stuffonly`` (the semantic PNGs, evaluator ``sem_seg``)."""
    from det.data.datasets.coco import register_coco_instances
    from det.data.datasets.coco_panoptic import (
        register_coco_panoptic,
        register_coco_panoptic_separated,
    )

    instances: dict[str, tuple[str, str]] = {}
    for family, splits in _PREDEFINED_SPLITS_COCO.items():
        for name, (image_folder, json_file) in splits.items():
            image_root, json_path = os.path.join(root, image_folder), os.path.join(root, json_file)
            register_coco_instances(name, get_builtin_metadata(family), json_path, image_root)
            _expect(name, json_path, image_root)
            instances[name] = (image_root, json_path)

    for name, (panoptic_folder, panoptic_json, semantic_folder) in _PREDEFINED_SPLITS_COCO_PANOPTIC.items():
        image_root, instances_json = instances[name[: -len("_panoptic")]]
        panoptic_root = os.path.join(root, panoptic_folder)
        panoptic_json = os.path.join(root, panoptic_json)
        sem_seg_root = os.path.join(root, semantic_folder)
        register_coco_panoptic_separated(
            name,
            get_builtin_metadata("coco_panoptic_separated"),
            image_root,
            panoptic_root,
            panoptic_json,
            sem_seg_root,
            instances_json,
        )
        _expect(name + "_separated", instances_json, image_root, sem_seg_root)
        _expect(name + "_stuffonly", image_root, sem_seg_root)
        register_coco_panoptic(
            name,
            get_builtin_metadata("coco_panoptic_standard"),
            image_root,
            panoptic_root,
            panoptic_json,
            instances_json,
        )
        _expect(name, panoptic_json, panoptic_root, image_root)


def register_all_pascal_voc(root: str) -> None:
    """``voc_2007_{trainval,train,val,test}`` and ``voc_2012_{trainval,train,val}`` from
    ``<root>/VOC2007`` and ``<root>/VOC2012``, ``evaluator_type="pascal_voc"``."""
    from det.data.datasets.pascal_voc import register_pascal_voc

    for name, folder, split in _PASCAL_VOC_SPLITS:
        dirname = os.path.join(root, folder)
        register_pascal_voc(name, dirname, split, 2007 if "2007" in name else 2012)
        MetadataCatalog.get(name).set(evaluator_type="pascal_voc")
        _expect(
            name,
            os.path.join(dirname, "ImageSets", "Main", split + ".txt"),
            os.path.join(dirname, "Annotations"),
            os.path.join(dirname, "JPEGImages"),
        )


def register_all_ade20k(root: str) -> None:
    """``ade20k_sem_seg_{train,val}``: ADE20K SceneParsing's images and the label PNGs of
    detectron2's ``prepare_ade20k_sem_seg.py`` (0..149, 255 = ignore), ``evaluator_type="sem_seg"``."""
    from det.data.datasets.coco import load_sem_seg

    base = os.path.join(root, "ADEChallengeData2016")
    for split, folder in (("train", "training"), ("val", "validation")):
        name = f"ade20k_sem_seg_{split}"
        image_dir = os.path.join(base, "images", folder)
        gt_dir = os.path.join(base, "annotations_detectron2", folder)
        DatasetCatalog.register(name, functools.partial(load_sem_seg, gt_dir, image_dir, "png", "jpg"))
        MetadataCatalog.get(name).set(
            stuff_classes=list(ADE20K_SEM_SEG_CATEGORIES),
            image_root=image_dir,
            sem_seg_root=gt_dir,
            evaluator_type="sem_seg",
            ignore_label=255,
        )
        _expect(name, image_dir, gt_dir)


def _registrar(spec: str) -> Callable[[str], None] | None:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:  # not written/installed: nothing to register
            logger.debug("builtin datasets: %s is not available, skipping", module_name)
            return None
        raise
    return getattr(module, attr)


def _root_origin() -> str:
    if not _state["follow_env"]:
        return "given to register_all_builtin()"
    for var in DATASETS_ROOT_ENV_VARS:
        if os.environ.get(var):
            return f"from ${var}"
    return (
        f"the default, as neither {' nor '.join(DATASETS_ROOT_ENV_VARS)} is set; relative to the "
        f"working directory {os.getcwd()!r}"
    )


def _how_to_fix(root: str) -> str:
    return (
        f"Builtin datasets are read under the datasets root {root!r} ({_root_origin()}). Set "
        "DETECTRON2_DATASETS (or DET_DATASETS, which wins) to the folder holding coco/, "
        "VOC2007/, ADEChallengeData2016/, ... laid out as detectron2's datasets/README.md "
        "describes, or register your own copy under another name."
    )


class _BuiltinDataset:
    """The ``DatasetCatalog`` entry of a builtin dataset: follows a changed root, checks that
    its files exist, then calls the registered loader."""

    def __init__(self, name: str, load: Callable[[], list[dict]], root: str) -> None:
        self.name, self.load, self.root = name, load, root

    def _needed(self) -> list[str]:
        if self.name in _NEEDED_PATHS:
            return list(_NEEDED_PATHS[self.name])
        meta = MetadataCatalog.get(self.name)
        values = [meta.get(key) for key in _PATH_KEYS]
        return [v for v in values if isinstance(v, str) and v and "://" not in v]

    def __call__(self) -> list[dict]:
        follow_datasets_root()
        current = DatasetCatalog.data.get(self.name)
        if current is not self and isinstance(current, _BuiltinDataset):
            return current()  # a stale entry someone kept: load the current one
        missing = [p for p in self._needed() if not os.path.exists(p)]
        if missing:
            listed = "\n".join(f"  {p}" for p in missing)
            raise FileNotFoundError(
                f"Dataset {self.name!r} cannot be loaded: these paths do not exist:\n{listed}\n"
                + _how_to_fix(self.root)
            )
        try:
            return self.load()
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e}\n{_how_to_fix(self.root)}") from e

    def __repr__(self) -> str:
        return f"<builtin dataset {self.name!r} under {self.root!r}>"


def register_all_builtin(root: str | os.PathLike | None = None) -> list[str]:
    """(Re-)register every builtin dataset under ``root`` and return their names.

    With ``root=None`` (what the first catalog use does) the root is :func:`get_datasets_root`
    and is followed: a dataset loaded after the variables changed is registered again under the
    new root. An explicit ``root`` is kept until the next call. Builtin datasets registered
    before are removed first, with their metadata; a builtin name that was removed and
    registered again with another loader keeps that loader and its metadata.
    """
    with _lock:
        follow_env = root is None
        root = get_datasets_root() if root is None else os.fspath(root)
        _state["busy_thread"] = threading.get_ident()
        try:
            # A builtin name the user re-registered with their own loader is set aside and put
            # back afterwards, so their entry wins and the registrars do not trip over it.
            overridden = {}
            for name in _state["names"]:
                entry = DatasetCatalog.data.pop(name, None)
                meta = MetadataCatalog.data.pop(name, None)
                if entry is not None and not isinstance(entry, _BuiltinDataset):
                    overridden[name] = (entry, meta)
            _state.update(root=root, follow_env=follow_env, names=[])
            for spec in BUILTIN_REGISTRARS:
                before = set(DatasetCatalog)
                try:
                    register = _registrar(spec)
                    if register is not None:
                        register(root)
                except Exception:
                    logger.warning("Registering builtin datasets with %s failed", spec, exc_info=True)
                for name in [n for n in DatasetCatalog if n not in before]:
                    DatasetCatalog[name] = _BuiltinDataset(name, DatasetCatalog[name], root)
                    _state["names"].append(name)
            for name, (entry, meta) in overridden.items():
                DatasetCatalog.data[name] = entry
                if meta is not None:
                    MetadataCatalog.data[name] = meta
        finally:
            _state["busy_thread"] = None
        return list(_state["names"])


def follow_datasets_root() -> None:
    """Register the builtin datasets again if ``$DET_DATASETS``/``$DETECTRON2_DATASETS`` now
    name another root than the one they were registered under. Runs before every catalog use;
    does nothing after an explicit ``register_all_builtin(root)``."""
    busy = _state["busy_thread"]
    if busy == threading.get_ident():
        return  # the registration itself looking things up
    if busy is None and (
        not _state["follow_env"] or _state["root"] is None or get_datasets_root() == _state["root"]
    ):
        return
    with _lock:  # another thread may be registering: wait for it
        if _state["follow_env"] and _state["root"] is not None and get_datasets_root() != _state["root"]:
            logger.info(
                "The datasets root changed from %r to %r: registering the builtin datasets again",
                _state["root"],
                get_datasets_root(),
            )
            register_all_builtin()


def builtin_dataset_names() -> list[str]:
    """Names of the builtin datasets registered now (registering them if nothing used the
    catalogs yet)."""
    DatasetCatalog.keys()  # runs the first-use registration
    return list(_state["names"])


run_on_every_use(follow_datasets_root)
