"""Dataset loaders in detectron2's standard format (COCO json, semantic-segmentation folders)."""

from det.core.lazy import lazy_exports
from det.engine.data.datasets.coco import (
    convert_to_coco_dict,
    convert_to_coco_json,
    load_coco_json,
    load_sem_seg,
    register_coco_instances,
)
from det.engine.data.datasets.coco_panoptic import load_coco_panoptic_json, register_coco_panoptic

# Imported on first use (PEP 562): name -> module.
_LAZY = {
    "register_coco_panoptic_separated": "det.engine.data.datasets.coco_panoptic",
    "merge_to_panoptic": "det.engine.data.datasets.coco_panoptic",
    "load_voc_instances": "det.engine.data.datasets.pascal_voc",
    "register_pascal_voc": "det.engine.data.datasets.pascal_voc",
    "get_builtin_metadata": "det.engine.data.datasets.builtin_meta",
    "register_all_builtin": "det.engine.data.datasets.builtin",
    "register_all_coco": "det.engine.data.datasets.builtin",
    "register_all_pascal_voc": "det.engine.data.datasets.builtin",
    "register_all_ade20k": "det.engine.data.datasets.builtin",
    "get_datasets_root": "det.engine.data.datasets.builtin",
    "builtin_dataset_names": "det.engine.data.datasets.builtin",
    "load_lvis_json": "det.engine.data.datasets.lvis",
    "register_lvis_instances": "det.engine.data.datasets.lvis",
    "get_lvis_instances_meta": "det.engine.data.datasets.lvis",
    "register_all_lvis": "det.engine.data.datasets.lvis",
    "load_cityscapes_instances": "det.engine.data.datasets.cityscapes",
    "load_cityscapes_semantic": "det.engine.data.datasets.cityscapes",
    "register_all_cityscapes": "det.engine.data.datasets.cityscapes",
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
