"""Dataset loaders in detectron2's standard format (COCO json, semantic-segmentation folders)."""

from det.core.lazy import lazy_exports
from det.data.datasets.coco import (
    convert_to_coco_dict,
    convert_to_coco_json,
    load_coco_json,
    load_sem_seg,
    register_coco_instances,
)
from det.data.datasets.coco_panoptic import load_coco_panoptic_json, register_coco_panoptic

# Imported on first use (PEP 562): name -> module.
_LAZY = {
    "register_coco_panoptic_separated": "det.data.datasets.coco_panoptic",
    "merge_to_panoptic": "det.data.datasets.coco_panoptic",
    "load_voc_instances": "det.data.datasets.pascal_voc",
    "register_pascal_voc": "det.data.datasets.pascal_voc",
    "get_builtin_metadata": "det.data.datasets.builtin_meta",
    "register_all_builtin": "det.data.datasets.builtin",
    "register_all_coco": "det.data.datasets.builtin",
    "register_all_pascal_voc": "det.data.datasets.builtin",
    "register_all_ade20k": "det.data.datasets.builtin",
    "get_datasets_root": "det.data.datasets.builtin",
    "builtin_dataset_names": "det.data.datasets.builtin",
    "load_lvis_json": "det.data.datasets.lvis",
    "register_lvis_instances": "det.data.datasets.lvis",
    "get_lvis_instances_meta": "det.data.datasets.lvis",
    "register_all_lvis": "det.data.datasets.lvis",
    "load_cityscapes_instances": "det.data.datasets.cityscapes",
    "load_cityscapes_semantic": "det.data.datasets.cityscapes",
    "register_all_cityscapes": "det.data.datasets.cityscapes",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "load_coco_json",
    "load_coco_panoptic_json",
    "load_sem_seg",
    "register_coco_instances",
    "register_coco_panoptic",
    *_LAZY,
]
