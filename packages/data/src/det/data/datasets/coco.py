"""COCO-format json <-> detectron2's standard dataset dicts, and semantic-segmentation folders."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import os
import shutil
from typing import Any

import numpy as np
import pycocotools.mask as mask_util

from det.data.catalog import DatasetCatalog, MetadataCatalog

__all__ = [
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "load_coco_json",
    "load_sem_seg",
    "register_coco_instances",
]

logger = logging.getLogger(__name__)


def load_coco_json(json_file: str | os.PathLike, image_root: str | os.PathLike,
                   dataset_name: str | None = None,
                   extra_annotation_keys: list[str] | None = None) -> list[dict]:
    """Load a COCO instances/keypoints json into detectron2's standard dataset dicts.

    Boxes stay XYWH_ABS (``bbox_mode``); instances whose box has zero or negative width or
    height are dropped (detectron2 keeps them: a negative size becomes a flipped box); polygons
    with fewer than 3 points are dropped (an instance left without a valid polygon is dropped); uncompressed RLE is compressed; keypoint
    x/y get +0.5 (COCO's integer pixel indices -> det's continuous coordinates). When
    ``dataset_name`` is given, its metadata gets ``thing_classes`` and
    ``thing_dataset_id_to_contiguous_id`` and category ids are mapped to contiguous ``0..K-1``.
    """
    from pycocotools.coco import COCO

    from det.structures import BoxMode

    json_file = os.fspath(json_file)
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"load_coco_json: annotation file {json_file!r} does not exist")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_api = COCO(json_file)

    id_map = None
    if dataset_name is not None:
        meta = MetadataCatalog.get(dataset_name)
        cat_ids = sorted(coco_api.getCatIds())
        cats = coco_api.loadCats(cat_ids)
        # Sorted by id: the contiguous id i is the i-th smallest dataset id.
        thing_classes = [c["name"] for c in sorted(cats, key=lambda x: x["id"])]
        meta.thing_classes = thing_classes
        if (
            cat_ids
            and not (min(cat_ids) == 1 and max(cat_ids) == len(cat_ids))
            and "coco" not in dataset_name
        ):
            logger.warning(
                "Category ids in annotations are not in [1, #categories]! We'll apply a mapping for you."
            )
        id_map = {v: i for i, v in enumerate(cat_ids)}
        meta.thing_dataset_id_to_contiguous_id = id_map

    img_ids = sorted(coco_api.imgs.keys())
    imgs = coco_api.loadImgs(img_ids)
    anns = [coco_api.imgToAnns[img_id] for img_id in img_ids]
    total_num_valid_anns = sum(len(x) for x in anns)
    total_num_anns = len(coco_api.anns)
    if total_num_valid_anns < total_num_anns:
        logger.warning(
            "%s contains %d annotations, but only %d of them match to images in the file.",
            json_file,
            total_num_anns,
            total_num_valid_anns,
        )
    ann_ids = [ann["id"] for anns_per_image in anns for ann in anns_per_image]
    if len(set(ann_ids)) != len(ann_ids):
        raise ValueError(f"Annotation ids in '{json_file}' are not unique!")

    ann_keys = ["iscrowd", "bbox", "keypoints", "category_id", *(extra_annotation_keys or [])]
    num_instances_without_valid_segmentation = 0
    num_instances_with_bad_box = 0
    dataset_dicts = []
    for img_dict, anno_dict_list in zip(imgs, anns):
        record = {
            "file_name": os.path.join(os.fspath(image_root), img_dict["file_name"]),
            "height": img_dict["height"],
            "width": img_dict["width"],
            "image_id": img_dict["id"],
        }
        image_id = record["image_id"]
        objs = []
        for anno in anno_dict_list:
            if anno["image_id"] != image_id:
                raise ValueError(
                    f"annotation {anno.get('id')} is filed under image {image_id} but says {anno['image_id']}"
                )
            if anno.get("ignore", 0) != 0:
                raise ValueError('"ignore" in COCO json file is not supported.')
            obj = {key: anno[key] for key in ann_keys if key in anno}
            if "bbox" in obj and len(obj["bbox"]) == 0:
                raise ValueError(
                    f"One annotation of image {image_id} contains empty 'bbox' value! "
                    "This json does not have valid COCO format."
                )
            if "bbox" in obj and len(obj["bbox"]) == 4 and (obj["bbox"][2] <= 0 or obj["bbox"][3] <= 0):
                # XYWH with a negative size would turn into a flipped XYXY box downstream and be
                # trained on as if it were valid (detectron2 does that); a zero size is empty
                num_instances_with_bad_box += 1
                continue
            segm = anno.get("segmentation", None)
            if segm:  # list[list[float]] (polygons) or dict (RLE)
                if isinstance(segm, dict):
                    if isinstance(segm["counts"], list):
                        segm = mask_util.frPyObjects(segm, *segm["size"])
                else:
                    segm = [poly for poly in segm if len(poly) % 2 == 0 and len(poly) >= 6]
                    if len(segm) == 0:
                        num_instances_without_valid_segmentation += 1
                        continue
                obj["segmentation"] = segm
            keypts = anno.get("keypoints", None)
            if keypts:
                keypts = [v + 0.5 if idx % 3 != 2 else v for idx, v in enumerate(keypts)]
                obj["keypoints"] = keypts
            obj["bbox_mode"] = BoxMode.XYWH_ABS
            if id_map is not None:
                annotation_category_id = obj["category_id"]
                try:
                    obj["category_id"] = id_map[annotation_category_id]
                except KeyError as e:
                    raise KeyError(
                        f"Encountered category_id={annotation_category_id} "
                        "but this id does not exist in 'categories' of the json file."
                    ) from e
            objs.append(obj)
        record["annotations"] = objs
        dataset_dicts.append(record)

    if num_instances_without_valid_segmentation > 0:
        logger.warning(
            "Filtered out %d instances without valid segmentation.", num_instances_without_valid_segmentation
        )
    if num_instances_with_bad_box > 0:
        logger.warning(
            "Filtered out %d instances whose box has zero or negative width or height (in %s).",
            num_instances_with_bad_box,
            json_file,
        )
    return dataset_dicts


def register_coco_instances(
    name: str, metadata: dict[str, Any], json_file: str | os.PathLike, image_root: str | os.PathLike
) -> None:
    """Register a COCO-format instance/keypoint dataset under ``name`` (loaded lazily) and set its
    metadata (``json_file``, ``image_root``, ``evaluator_type="coco"`` plus ``metadata``)."""
    if not isinstance(name, str):
        raise TypeError(f"register_coco_instances: name must be a str, got {type(name).__name__}")
    if not isinstance(json_file, (str, os.PathLike)) or not isinstance(image_root, (str, os.PathLike)):
        raise TypeError("register_coco_instances: json_file and image_root must be paths")
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata
    )


def load_sem_seg(gt_root: str, image_root: str, gt_ext: str = "png", image_ext: str = "jpg") -> list[dict]:
    """Pair every image in ``image_root`` with the label file of the same relative name in
    ``gt_root``: ``[{"file_name", "sem_seg_file_name"}]``, sorted by file name."""

    def file2id(folder_path: str, file_path: str) -> str:
        image_id = os.path.normpath(os.path.relpath(file_path, start=folder_path))
        return os.path.splitext(image_id)[0]

    def list_files(root: str, ext: str) -> list[str]:
        found = []
        for dirpath, _, files in os.walk(root):
            found += [os.path.join(dirpath, f) for f in files if f.endswith(ext)]
        return sorted(found, key=lambda p: file2id(root, p))

    input_files = list_files(image_root, image_ext)
    gt_files = list_files(gt_root, gt_ext)
    if len(gt_files) == 0:
        raise ValueError(f"No annotations found in {gt_root}.")
    if len(input_files) != len(gt_files):
        logger.warning(
            "Directory %s and %s has %d and %d files, respectively.",
            image_root,
            gt_root,
            len(input_files),
            len(gt_files),
        )
        input_basenames = [file2id(image_root, f) for f in input_files]
        gt_basenames = [file2id(gt_root, f) for f in gt_files]
        intersect = sorted(set(input_basenames) & set(gt_basenames))
        logger.warning("Will use their intersection of %d files.", len(intersect))
        input_files = [os.path.join(image_root, f + "." + image_ext.lstrip(".")) for f in intersect]
        gt_files = [os.path.join(gt_root, f + "." + gt_ext.lstrip(".")) for f in intersect]
    return [{"file_name": img, "sem_seg_file_name": gt} for img, gt in zip(input_files, gt_files)]


def convert_to_coco_dict(dataset_name: str) -> dict:
    """The COCO-json dict of a registered dataset in standard format (for the COCO evaluator)."""
    from det.structures import Boxes, BoxMode, PolygonMasks

    dataset_dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    if hasattr(metadata, "thing_dataset_id_to_contiguous_id"):
        reverse_id_mapping = {v: k for k, v in metadata.thing_dataset_id_to_contiguous_id.items()}
        reverse_id_mapper = lambda contiguous_id: reverse_id_mapping[contiguous_id]  # noqa: E731
    else:
        reverse_id_mapper = lambda contiguous_id: contiguous_id  # noqa: E731
    categories = [
        {"id": reverse_id_mapper(id), "name": name} for id, name in enumerate(metadata.thing_classes)
    ]

    coco_images: list[dict] = []
    coco_annotations: list[dict] = []
    for image_id, image_dict in enumerate(dataset_dicts):
        coco_image = {
            "id": image_dict.get("image_id", image_id),
            "width": int(image_dict["width"]),
            "height": int(image_dict["height"]),
            "file_name": str(image_dict["file_name"]),
        }
        coco_images.append(coco_image)
        for annotation in image_dict.get("annotations", []):
            coco_annotation: dict[str, Any] = {}
            bbox = annotation["bbox"]
            if isinstance(bbox, np.ndarray):
                bbox = bbox.tolist()
            if len(bbox) != 4:
                raise ValueError(f"convert_to_coco_dict supports only 4-number boxes, got {bbox}")
            from_bbox_mode = annotation["bbox_mode"]
            to_bbox_mode = BoxMode.XYWH_ABS
            bbox = BoxMode.convert(bbox, from_bbox_mode, to_bbox_mode)
            if "segmentation" in annotation:
                segmentation = annotation["segmentation"]
                if isinstance(segmentation, list):
                    area = float(PolygonMasks([segmentation]).area()[0].item())
                elif isinstance(segmentation, dict):
                    area = float(mask_util.area(segmentation))
                else:
                    raise TypeError(f"Unknown segmentation type {type(segmentation)}!")
            else:
                bbox_xy = BoxMode.convert(bbox, to_bbox_mode, BoxMode.XYXY_ABS)
                import torch

                area = float(Boxes(torch.tensor([bbox_xy], dtype=torch.float32)).area()[0].item())
            if "keypoints" in annotation:
                keypoints = list(annotation["keypoints"])
                for idx, v in enumerate(keypoints):
                    if idx % 3 != 2:
                        keypoints[idx] = v - 0.5  # back to COCO's integer pixel indices
                num_keypoints = sum(kp > 0 for kp in keypoints[2::3])
            coco_annotation["id"] = len(coco_annotations) + 1
            coco_annotation["image_id"] = coco_image["id"]
            coco_annotation["bbox"] = [round(float(x), 3) for x in bbox]
            coco_annotation["area"] = float(area)
            coco_annotation["iscrowd"] = int(annotation.get("iscrowd", 0))
            coco_annotation["category_id"] = int(reverse_id_mapper(annotation["category_id"]))
            if "keypoints" in annotation:
                coco_annotation["keypoints"] = keypoints
                coco_annotation["num_keypoints"] = int(num_keypoints)
            if "segmentation" in annotation:
                seg = annotation["segmentation"]
                if isinstance(seg, dict) and isinstance(seg["counts"], bytes):
                    seg = {"size": seg["size"], "counts": seg["counts"].decode("ascii")}
                coco_annotation["segmentation"] = seg
            coco_annotations.append(coco_annotation)

    info = {
        "date_created": str(datetime.datetime.now()),
        "description": "Automatically generated COCO json file for det.",
    }
    coco_dict = {"info": info, "images": coco_images, "categories": categories, "licenses": None}
    if len(coco_annotations) > 0:
        coco_dict["annotations"] = coco_annotations
    return coco_dict


def convert_to_coco_json(dataset_name: str, output_file: str, allow_cached: bool = True) -> None:
    """Write :func:`convert_to_coco_dict` of ``dataset_name`` to ``output_file`` (atomically),
    reusing an existing file when ``allow_cached``."""
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    if os.path.exists(output_file) and allow_cached:
        logger.warning("Using previously cached COCO format annotations at '%s'.", output_file)
        return
    coco_dict = convert_to_coco_dict(dataset_name)
    tmp_file = output_file + ".tmp"
    with open(tmp_file, "w") as f:
        json.dump(coco_dict, f)
    shutil.move(tmp_file, output_file)
