"""Dataset loaders in detectron2's standard format (COCO json, semantic-segmentation folders)."""

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.data.datasets.coco import (
    convert_to_coco_dict,
    convert_to_coco_json,
    load_coco_json,
    load_sem_seg,
    register_coco_instances,
)
from det.data.datasets.coco_panoptic import load_coco_panoptic_json, register_coco_panoptic

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.data.datasets.builtin import builtin_dataset_names as builtin_dataset_names
    from det.data.datasets.builtin import get_datasets_root as get_datasets_root
    from det.data.datasets.builtin import register_all_ade20k as register_all_ade20k
    from det.data.datasets.builtin import register_all_builtin as register_all_builtin
    from det.data.datasets.builtin import register_all_coco as register_all_coco
    from det.data.datasets.builtin import register_all_pascal_voc as register_all_pascal_voc
    from det.data.datasets.builtin_meta import get_builtin_metadata as get_builtin_metadata
    from det.data.datasets.cityscapes import load_cityscapes_instances as load_cityscapes_instances
    from det.data.datasets.cityscapes import load_cityscapes_semantic as load_cityscapes_semantic
    from det.data.datasets.cityscapes import register_all_cityscapes as register_all_cityscapes
    from det.data.datasets.cityscapes_panoptic import (
        get_cityscapes_panoptic_files as get_cityscapes_panoptic_files,
    )
    from det.data.datasets.cityscapes_panoptic import load_cityscapes_panoptic as load_cityscapes_panoptic
    from det.data.datasets.cityscapes_panoptic import (
        register_all_cityscapes_panoptic as register_all_cityscapes_panoptic,
    )
    from det.data.datasets.coco_panoptic import merge_to_panoptic as merge_to_panoptic
    from det.data.datasets.coco_panoptic import (
        register_coco_panoptic_separated as register_coco_panoptic_separated,
    )
    from det.data.datasets.lvis import get_lvis_instances_meta as get_lvis_instances_meta
    from det.data.datasets.lvis import load_lvis_json as load_lvis_json
    from det.data.datasets.lvis import register_all_lvis as register_all_lvis
    from det.data.datasets.lvis import register_lvis_instances as register_lvis_instances
    from det.data.datasets.pascal_voc import load_voc_instances as load_voc_instances
    from det.data.datasets.pascal_voc import register_pascal_voc as register_pascal_voc


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = [  # the COCO loaders imported above, and the names imported under TYPE_CHECKING
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "load_coco_json",
    "load_coco_panoptic_json",
    "load_sem_seg",
    "register_coco_instances",
    "register_coco_panoptic",
    *exported(__name__),
]
