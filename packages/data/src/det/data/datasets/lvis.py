"""LVIS (v0.5 and v1) json -> detectron2's standard dataset dicts, and the builtin LVIS splits.

det reads LVIS jsons with the standard library (the ``lvis`` package is needed only by
:class:`~det.evaluation.LVISEvaluator`).

Class names: detectron2 ships the 1230 (v0.5) and 1203 (v1) category tables as Python code. det
does not: the names come from the json's own ``categories`` when the dataset is loaded (each
category's first synonym, as detectron2's tables hold, ordered by id). So before the first
``DatasetCatalog.get(name)`` an LVIS dataset's metadata has no ``thing_classes`` (and no
``class_image_count``, which the federated loss reads: load the training set first). The
cocofied splits use COCO's 80-class metadata (``builtin_meta``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import defaultdict
from typing import Any

from det.data.catalog import DatasetCatalog, MetadataCatalog

__all__ = ["get_lvis_instances_meta", "load_lvis_json", "register_all_lvis", "register_lvis_instances"]

logger = logging.getLogger(__name__)

# Builtin splits: dataset family -> {name: (image root, json file)}, relative to the datasets root
# ($DETECTRON2_DATASETS, default "datasets"), exactly as detectron2 lays them out.
_PREDEFINED_SPLITS_LVIS = {
    "lvis_v1": {
        "lvis_v1_train": ("coco/", "lvis/lvis_v1_train.json"),
        "lvis_v1_val": ("coco/", "lvis/lvis_v1_val.json"),
        "lvis_v1_test_dev": ("coco/", "lvis/lvis_v1_image_info_test_dev.json"),
        "lvis_v1_test_challenge": ("coco/", "lvis/lvis_v1_image_info_test_challenge.json"),
    },
    "lvis_v0.5": {
        "lvis_v0.5_train": ("coco/", "lvis/lvis_v0.5_train.json"),
        "lvis_v0.5_val": ("coco/", "lvis/lvis_v0.5_val.json"),
        "lvis_v0.5_val_rand_100": ("coco/", "lvis/lvis_v0.5_val_rand_100.json"),
        "lvis_v0.5_test": ("coco/", "lvis/lvis_v0.5_image_info_test.json"),
    },
    "lvis_v0.5_cocofied": {
        "lvis_v0.5_train_cocofied": ("coco/", "lvis/lvis_v0.5_train_cocofied.json"),
        "lvis_v0.5_val_cocofied": ("coco/", "lvis/lvis_v0.5_val_cocofied.json"),
    },
}


def register_lvis_instances(
    name: str, metadata: dict[str, Any], json_file: str | os.PathLike, image_root: str | os.PathLike
) -> None:
    """Register an LVIS-format instance dataset under ``name`` (loaded lazily, no file is read
    here) and set its metadata: ``json_file``, ``image_root``, ``evaluator_type="lvis"`` and
    ``metadata``::

        register_lvis_instances("my_lvis_val", {}, "lvis/lvis_v1_val.json", "coco/")
    """
    if not isinstance(name, str):
        raise TypeError(f"register_lvis_instances: name must be a str, got {type(name).__name__}")
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    DatasetCatalog.register(name, lambda: load_lvis_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="lvis", **metadata
    )


def get_lvis_instances_meta(dataset_name: str) -> dict[str, Any]:
    """The metadata det knows about an LVIS dataset without reading its json.

    ``dataset_name`` contains "cocofied" (COCO's 80 classes and id mapping, when det-data's
    ``builtin_meta`` provides them), "v0.5" or "v1" (an empty dict: the class names are read from
    the json when the dataset loads, see the module docstring). Anything else is a ValueError.
    """
    if "cocofied" in dataset_name:
        return _coco_instances_meta()
    if "v0.5" in dataset_name or "v1" in dataset_name:
        return {}
    raise ValueError(f"No built-in metadata for dataset {dataset_name}")


def _coco_instances_meta() -> dict[str, Any]:
    try:
        from det.data.datasets.builtin_meta import get_builtin_metadata
    except ImportError:
        # Without the table, load_lvis_json maps the json's (COCO) category ids in sorted order.
        return {}
    return get_builtin_metadata("coco")


def _missing_file_message(kind: str, path: str) -> str:
    return (
        f"{kind} {path!r} does not exist. Builtin datasets are looked up under the folder named by "
        "the environment variable DETECTRON2_DATASETS (or DET_DATASETS, which wins; default: "
        "./datasets), laid out as detectron2's datasets/README.md describes."
    )


def _lvis_file_name(image_root: str, img_dict: dict[str, Any]) -> str:
    if "coco_url" in img_dict:
        # The split folder comes from the url, e.g. http://images.cocodataset.org/train2017/x.jpg
        # -> <image_root>train2017/x.jpg. As detectron2, image_root is joined by string
        # concatenation (the builtin roots end with "/").
        split_folder, file_name = img_dict["coco_url"].split("/")[-2:]
        return os.path.join(image_root + split_folder, file_name)
    # LVIS v0.5 also has "file_name" (e.g. COCO_val2014_000000001268.jpg); v1 has only coco_url.
    return os.path.join(image_root, img_dict["file_name"])


def load_lvis_json(json_file: str | os.PathLike, image_root: str | os.PathLike,
                   dataset_name: str | None = None,
                   extra_annotation_keys: list[str] | None = None) -> list[dict]:
    """Load an LVIS json into detectron2's standard dataset dicts.

    Each record: ``file_name`` (``image_root`` + the split folder and file of ``coco_url``),
    ``height``, ``width``, ``image_id``, ``not_exhaustive_category_ids`` and ``neg_category_ids``
    (the json's category ids, unmapped, ``[]`` when absent) and ``annotations``: ``bbox``
    (XYWH_ABS), ``bbox_mode``, ``category_id`` (contiguous: LVIS id - 1, or the metadata's
    ``thing_dataset_id_to_contiguous_id`` when it has one, as for the cocofied splits),
    ``segmentation`` (polygons; one with fewer than 3 points is a ValueError, as in detectron2)
    and the ``extra_annotation_keys``. A ``dataset_name`` without "v0.5", "v1" or "cocofied" is
    accepted (detectron2 raises: det needs no builtin table).

    With ``dataset_name``, that dataset's metadata gets ``thing_classes`` (first synonym of each
    json category, by id) unless it already has them, and ``class_image_count`` when the
    categories carry ``image_count`` (LVIS v1).
    """
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    if not os.path.isfile(json_file):
        raise FileNotFoundError(_missing_file_message("LVIS annotation file", json_file))
    with open(json_file) as f:
        dataset = json.load(f)

    meta = None
    id_map = None
    if dataset_name is not None:
        meta = MetadataCatalog.get(dataset_name)
        # A user's own LVIS-format dataset has no builtin metadata: everything comes from the json.
        with contextlib.suppress(ValueError):
            meta.set(**get_lvis_instances_meta(dataset_name))
        categories = sorted(dataset.get("categories", []), key=lambda c: c["id"])
        if categories and meta.get("thing_classes") is None:
            names = [(c.get("synonyms") or [c["name"]])[0] for c in categories]
            meta.thing_classes = names
            if "cocofied" in dataset_name:
                meta.thing_dataset_id_to_contiguous_id = {c["id"]: i for i, c in enumerate(categories)}
        if categories and all("image_count" in c for c in categories):
            meta.class_image_count = [{"id": c["id"], "image_count": c["image_count"]} for c in categories]
        id_map = meta.get("thing_dataset_id_to_contiguous_id")

    num_categories = len(dataset.get("categories", []))
    imgs = sorted(dataset["images"], key=lambda img: img["id"])  # sorted for reproducible order
    anns_per_image: dict[Any, list[dict]] = defaultdict(list)
    for ann in dataset.get("annotations", []):
        anns_per_image[ann["image_id"]].append(ann)
    ann_ids = [ann["id"] for ann in dataset.get("annotations", [])]
    if len(set(ann_ids)) != len(ann_ids):
        raise ValueError(f"Annotation ids in '{json_file}' are not unique")
    logger.info("Loaded %d images in the LVIS format from %s", len(imgs), json_file)

    extra_annotation_keys = list(extra_annotation_keys or [])
    from det.structures import BoxMode

    dataset_dicts = []
    for img_dict in imgs:
        image_id = img_dict["id"]
        record: dict[str, Any] = {
            "file_name": _lvis_file_name(image_root, img_dict),
            "height": img_dict["height"],
            "width": img_dict["width"],
            "not_exhaustive_category_ids": img_dict.get("not_exhaustive_category_ids", []),
            "neg_category_ids": img_dict.get("neg_category_ids", []),
            "image_id": image_id,
        }
        objs = []
        for anno in anns_per_image.get(image_id, []):
            obj: dict[str, Any] = {"bbox": anno["bbox"], "bbox_mode": BoxMode.XYWH_ABS}
            category_id = anno["category_id"]
            if id_map is not None:
                if category_id not in id_map:
                    raise KeyError(
                        f"annotation {anno['id']} of {json_file!r} has category_id={category_id}, "
                        f"which the metadata of {dataset_name!r} does not map"
                    )
                obj["category_id"] = id_map[category_id]
            else:
                if num_categories and not 1 <= category_id <= num_categories:
                    raise ValueError(
                        f"annotation {anno['id']} of {json_file!r} has category_id={category_id}; LVIS ids "
                        f"must be 1..{num_categories} (the json's number of categories)"
                    )
                obj["category_id"] = category_id - 1  # LVIS ids are 1..K
            segm = anno["segmentation"]
            valid = [poly for poly in segm if len(poly) % 2 == 0 and len(poly) >= 6]
            if len(valid) != len(segm) or not segm:
                raise ValueError(
                    f"annotation {anno['id']} of {json_file!r} contains an invalid polygon with < 3 points"
                )
            obj["segmentation"] = segm
            for key in extra_annotation_keys:
                obj[key] = anno[key]
            objs.append(obj)
        record["annotations"] = objs
        dataset_dicts.append(record)
    return dataset_dicts


def register_all_lvis(root: str | os.PathLike) -> None:
    """Register detectron2's builtin LVIS splits (``lvis_v1_train``, ``lvis_v1_val``,
    ``lvis_v1_test_dev``, ``lvis_v1_test_challenge``, ``lvis_v0.5_train``, ``lvis_v0.5_val``,
    ``lvis_v0.5_val_rand_100``, ``lvis_v0.5_test``, ``lvis_v0.5_train_cocofied``,
    ``lvis_v0.5_val_cocofied``) under ``root``. Reads no file; a missing one is reported when the
    dataset is loaded."""
    root = os.fspath(root)
    for family, splits in _PREDEFINED_SPLITS_LVIS.items():
        for name, (image_root, json_file) in splits.items():
            register_lvis_instances(
                name,
                get_lvis_instances_meta(family),
                os.path.join(root, json_file) if "://" not in json_file else json_file,
                os.path.join(root, image_root),
            )
