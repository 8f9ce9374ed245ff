"""Cityscapes panoptic segmentation (``cityscapes_fine_panoptic_{train,val}``), read from the files
cityscapesscripts' ``createPanopticImgs.py`` writes next to the raw release.

Layout (under the datasets root, $DETECTRON2_DATASETS), as detectron2 expects it::

    cityscapes/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    cityscapes/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png   (createTrainIdLabelImgs.py)
    cityscapes/gtFine/cityscapes_panoptic_<split>.json                 (createPanopticImgs.py)
    cityscapes/gtFine/cityscapes_panoptic_<split>/<stem>_gtFine_panoptic.png

The json is COCO-panoptic style: ``annotations`` of ``{"image_id": <stem>, "file_name",
"segments_info"}`` whose ``category_id`` is the Cityscapes label id; records get it as the
contiguous train id (``thing_dataset_id_to_contiguous_id`` / ``stuff_dataset_id_to_contiguous_id``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any

from det.data.catalog import DatasetCatalog, MetadataCatalog
from det.data.datasets.builtin_meta import CITYSCAPES_CATEGORIES
from det.data.datasets.cityscapes import _IMAGE_SUFFIX, _image_files

__all__ = ["get_cityscapes_panoptic_files", "load_cityscapes_panoptic", "register_all_cityscapes_panoptic"]

logger = logging.getLogger(__name__)

# Builtin splits, relative to the datasets root: (image_dir, gt_dir, gt_json), detectron2's names.
_RAW_CITYSCAPES_PANOPTIC_SPLITS = {
    "cityscapes_fine_panoptic_train": (
        "cityscapes/leftImg8bit/train",
        "cityscapes/gtFine/cityscapes_panoptic_train",
        "cityscapes/gtFine/cityscapes_panoptic_train.json",
    ),
    "cityscapes_fine_panoptic_val": (
        "cityscapes/leftImg8bit/val",
        "cityscapes/gtFine/cityscapes_panoptic_val",
        "cityscapes/gtFine/cityscapes_panoptic_val.json",
    ),
}


def get_cityscapes_panoptic_files(
    image_dir: str | os.PathLike, gt_dir: str | os.PathLike, json_info: dict[str, Any]
) -> list[tuple[str, str, list[dict]]]:
    """``(image file, panoptic PNG, segments_info)`` for each annotation of ``json_info`` (the
    loaded ``cityscapes_panoptic_<split>.json``), in the json's order. An annotation whose image is
    not under ``image_dir/<city>/`` is an error naming both."""
    image_dir, gt_dir = os.fspath(image_dir), os.fspath(gt_dir)
    images = {os.path.basename(f)[: -len("_" + _IMAGE_SUFFIX)]: f for f in _image_files(image_dir)}
    files = []
    for ann in json_info.get("annotations", []):
        image_file = images.get(ann["image_id"])
        if image_file is None:
            raise FileNotFoundError(
                f"Cityscapes panoptic annotation {ann['file_name']!r} is of image {ann['image_id']!r}, which is "
                f"not in {image_dir} (<city>/{ann['image_id']}_{_IMAGE_SUFFIX})"
            )
        files.append((image_file, os.path.join(gt_dir, ann["file_name"]), ann["segments_info"]))
    if not files:
        raise FileNotFoundError(f"No Cityscapes panoptic annotations for the images in {image_dir}")
    return files


def _semantic_label_file(image_file: str) -> str:
    # <root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png ->
    # <root>/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png
    city_dir, name = os.path.split(image_file)
    split_dir, city = os.path.split(city_dir)
    images_dir, split = os.path.split(split_dir)
    root = os.path.dirname(images_dir)
    stem = name[: -len(_IMAGE_SUFFIX)]
    return os.path.join(root, "gtFine", split, city, stem + "gtFine_labelTrainIds.png")


def load_cityscapes_panoptic(
    image_dir: str | os.PathLike, gt_dir: str | os.PathLike, gt_json: str | os.PathLike, meta: dict[str, Any]
) -> list[dict]:
    """Panoptic records of a Cityscapes split in detectron2's standard format: ``file_name``,
    ``image_id`` (``<city>_<seq>_<frame>``), ``sem_seg_file_name`` (the ``labelTrainIds`` PNG),
    ``pan_seg_file_name`` and ``segments_info`` with contiguous ``category_id`` (from ``meta``'s
    ``thing_dataset_id_to_contiguous_id`` and ``stuff_dataset_id_to_contiguous_id``) and ``isthing``.

    ``image_dir`` e.g. ``cityscapes/leftImg8bit/train``, ``gt_dir``
    ``cityscapes/gtFine/cityscapes_panoptic_train``, ``gt_json`` the json beside it."""
    gt_json = os.fspath(gt_json)
    if not os.path.isfile(gt_json):
        raise FileNotFoundError(
            f"Cityscapes panoptic json {gt_json!r} does not exist: generate it (and the panoptic PNGs) with "
            "cityscapesscripts/preparation/createPanopticImgs.py"
        )
    with open(gt_json) as f:
        try:
            json_info = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{gt_json} is not valid JSON ({e})") from None
    thing_ids = meta["thing_dataset_id_to_contiguous_id"]
    stuff_ids = meta["stuff_dataset_id_to_contiguous_id"]

    def contiguous(segment: dict) -> dict:
        label_id = segment["category_id"]
        if label_id not in thing_ids and label_id not in stuff_ids:
            raise ValueError(f"{gt_json}: segment {segment.get('id')} has category_id {label_id}, which is no "
                             "Cityscapes label id with a train id")
        isthing = label_id in thing_ids
        # "isthing" as det's COCO panoptic records carry it (the panoptic evaluator splits PQ by it)
        return {**segment, "category_id": thing_ids[label_id] if isthing else stuff_ids[label_id], "isthing": isthing}

    records = []
    for image_file, pan_file, segments_info in get_cityscapes_panoptic_files(image_dir, gt_dir, json_info):
        records.append(
            {
                "file_name": image_file,
                "image_id": "_".join(os.path.basename(image_file).split("_")[:3]),
                "sem_seg_file_name": _semantic_label_file(image_file),
                "pan_seg_file_name": pan_file,
                "segments_info": [contiguous(s) for s in segments_info],
            }
        )
    for key, hint in (("sem_seg_file_name", "createTrainIdLabelImgs.py"), ("pan_seg_file_name", "createPanopticImgs.py")):
        if not os.path.isfile(records[0][key]):
            raise FileNotFoundError(f"{records[0][key]!r} does not exist: generate it with cityscapesscripts/"
                                    f"preparation/{hint}")
    logger.info("Loaded %d images with panoptic annotations from %s", len(records), os.fspath(image_dir))
    return records


def _cityscapes_panoptic_meta() -> dict[str, Any]:
    # detectron2's: every one of the 19 train classes is both a "thing" and a "stuff" class name
    # (Panoptic-DeepLab predicts all 19 semantically and groups the things' pixels into instances);
    # the label ids map to train ids, things and stuff apart.
    names = [c["name"] for c in CITYSCAPES_CATEGORIES]
    colors = [c["color"] for c in CITYSCAPES_CATEGORIES]
    return {
        "thing_classes": names,
        "thing_colors": colors,
        "stuff_classes": names,
        "stuff_colors": colors,
        "thing_dataset_id_to_contiguous_id": {c["id"]: c["trainId"] for c in CITYSCAPES_CATEGORIES if c["isthing"]},
        "stuff_dataset_id_to_contiguous_id": {c["id"]: c["trainId"] for c in CITYSCAPES_CATEGORIES if not c["isthing"]},
    }


def register_all_cityscapes_panoptic(root: str | os.PathLike) -> None:
    """Register ``cityscapes_fine_panoptic_train`` and ``_val`` under ``root`` with detectron2's
    metadata (``panoptic_root``, ``image_root``, ``panoptic_json``, ``gt_dir``, ``evaluator_type``
    "cityscapes_panoptic_seg", ``ignore_label`` 255, ``label_divisor`` 1000, classes and id maps).
    Reads no file."""
    root = os.fspath(root)
    meta = _cityscapes_panoptic_meta()
    for key, (image_dir, gt_dir, gt_json) in _RAW_CITYSCAPES_PANOPTIC_SPLITS.items():
        # gt_dir (of the Cityscapes evaluators): the split's raw gtFine folder, e.g. cityscapes/gtFine/train
        raw_gt_dir = os.path.join(root, gt_dir.replace("cityscapes_panoptic_", ""))
        image_dir, gt_dir, gt_json = (os.path.join(root, p) for p in (image_dir, gt_dir, gt_json))
        DatasetCatalog.register(key, functools.partial(load_cityscapes_panoptic, image_dir, gt_dir, gt_json, meta))
        MetadataCatalog.get(key).set(
            panoptic_root=gt_dir,
            image_root=image_dir,
            panoptic_json=gt_json,
            gt_dir=raw_gt_dir,
            evaluator_type="cityscapes_panoptic_seg",
            ignore_label=255,
            label_divisor=1000,
            **meta,
        )
