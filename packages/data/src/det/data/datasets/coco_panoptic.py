"""COCO panoptic json + PNGs -> standard dataset dicts with ``pan_seg_file_name``/``segments_info``."""

from __future__ import annotations

import json
import os
from typing import Any

from det.data.catalog import DatasetCatalog, MetadataCatalog

__all__ = [
    "load_coco_panoptic_json",
    "merge_to_panoptic",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
]


def _convert_category_id(segment_info: dict, meta: dict) -> dict:
    cat = segment_info["category_id"]
    things = meta.get("thing_dataset_id_to_contiguous_id", {})
    stuff = meta.get("stuff_dataset_id_to_contiguous_id", {})
    if cat in things:
        segment_info["category_id"] = things[cat]
        segment_info["isthing"] = True
    elif cat in stuff:
        segment_info["category_id"] = stuff[cat]
        segment_info["isthing"] = False
    else:
        raise KeyError(
            f"panoptic segment {segment_info.get('id')} has category_id={cat}, which is in neither "
            "thing_dataset_id_to_contiguous_id nor stuff_dataset_id_to_contiguous_id"
        )
    return segment_info


def load_coco_panoptic_json(json_file: str, image_dir: str, gt_dir: str, meta: dict[str, Any]) -> list[dict]:
    """One dict per image: ``file_name`` (``<image_dir>/<stem>.jpg``), ``image_id``,
    ``pan_seg_file_name`` (``<gt_dir>/<png>``) and ``segments_info`` whose ``category_id`` is
    contiguous (things and stuff numbered separately, as detectron2) with an ``isthing`` flag."""
    with open(json_file) as f:
        json_info = json.load(f)
    ret: list[dict[str, Any]] = []
    for ann in json_info["annotations"]:
        # COCO's ids are integers; other panoptic jsons in this format (Cityscapes') use names
        image_id = ann["image_id"]
        if isinstance(image_id, str) and image_id.isdigit():
            image_id = int(image_id)
        # The json names the PNG; images follow COCO's naming, same stem as .jpg.
        image_file = os.path.join(image_dir, os.path.splitext(ann["file_name"])[0] + ".jpg")
        label_file = os.path.join(gt_dir, ann["file_name"])
        segments_info = [_convert_category_id(dict(x), meta) for x in ann["segments_info"]]
        ret.append(
            {
                "file_name": image_file,
                "image_id": image_id,
                "pan_seg_file_name": label_file,
                "segments_info": segments_info,
            }
        )
    if not ret:
        raise ValueError(f"No images found in {image_dir}!")
    if not os.path.isfile(ret[0]["pan_seg_file_name"]):
        raise FileNotFoundError(f"panoptic PNG {ret[0]['pan_seg_file_name']!r} does not exist")
    return ret


def register_coco_panoptic(
    name: str,
    metadata: dict[str, Any],
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    instances_json: str | None = None,
) -> None:
    """Register the "standard" COCO panoptic dataset ``name`` (lazily loaded): dicts with
    ``pan_seg_file_name``/``segments_info``, metadata ``evaluator_type="coco_panoptic_seg"`` (what
    detectron2 sets and ``DefaultTrainer.build_evaluator`` maps to COCOPanopticEvaluator)."""
    DatasetCatalog.register(
        name, lambda: load_coco_panoptic_json(panoptic_json, image_root, panoptic_root, metadata)
    )
    extra = {"json_file": instances_json} if instances_json is not None else {}
    MetadataCatalog.get(name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=255,
        label_divisor=1000,
        **extra,
        **metadata,
    )


def register_coco_panoptic_separated(
    name: str,
    metadata: dict[str, Any],
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    sem_seg_root: str,
    instances_json: str,
) -> None:
    """Register Panoptic FPN's "separated" setting as two lazily loaded datasets:

    - ``name + "_separated"``: COCO instance annotations (``instances_json``, with their own
      overlapping polygons) merged per image with the semantic PNG of ``sem_seg_root`` (stuff
      ids 1..53, every thing pixel 0); ``evaluator_type="coco_panoptic_seg"``.
    - ``name + "_stuffonly"``: the semantic PNGs alone; ``evaluator_type="sem_seg"``.

    Both get ``metadata`` (thing and stuff classes numbered separately), the paths and
    ``ignore_label=255``.
    """
    from det.data.datasets.coco import load_coco_json, load_sem_seg

    panoptic_name = name + "_separated"
    DatasetCatalog.register(
        panoptic_name,
        lambda: merge_to_panoptic(
            load_coco_json(instances_json, image_root, panoptic_name),
            load_sem_seg(sem_seg_root, image_root),
        ),
    )
    MetadataCatalog.get(panoptic_name).set(
        panoptic_root=panoptic_root,
        image_root=image_root,
        panoptic_json=panoptic_json,
        sem_seg_root=sem_seg_root,
        json_file=instances_json,
        evaluator_type="coco_panoptic_seg",
        ignore_label=255,
        **metadata,
    )

    semantic_name = name + "_stuffonly"
    DatasetCatalog.register(semantic_name, lambda: load_sem_seg(sem_seg_root, image_root))
    MetadataCatalog.get(semantic_name).set(
        sem_seg_root=sem_seg_root,
        image_root=image_root,
        evaluator_type="sem_seg",
        ignore_label=255,
        **metadata,
    )


def merge_to_panoptic(detection_dicts: list[dict], sem_seg_dicts: list[dict]) -> list[dict]:
    """One dict per detection dict, updated with the keys of the semantic dict of the same
    ``file_name`` (so it gains ``sem_seg_file_name``). Every detection image needs one."""
    by_file = {d["file_name"]: d for d in sem_seg_dicts}
    if not by_file:
        raise ValueError("merge_to_panoptic: no semantic-segmentation dicts to merge")
    merged = []
    for det_dict in detection_dicts:
        try:
            sem = by_file[det_dict["file_name"]]
        except KeyError:
            raise KeyError(
                f"merge_to_panoptic: image {det_dict['file_name']!r} has no semantic annotation"
            ) from None
        merged.append({**det_dict, **sem})
    return merged
