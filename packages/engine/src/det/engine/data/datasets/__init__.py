"""Dataset loaders in detectron2's standard format (COCO json, semantic-segmentation folders)."""

from det.engine.data.datasets.coco import (
    convert_to_coco_dict,
    convert_to_coco_json,
    load_coco_json,
    load_sem_seg,
    register_coco_instances,
)
from det.engine.data.datasets.coco_panoptic import load_coco_panoptic_json, register_coco_panoptic

__all__ = [
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "load_coco_json",
    "load_coco_panoptic_json",
    "load_sem_seg",
    "register_coco_instances",
    "register_coco_panoptic",
]
