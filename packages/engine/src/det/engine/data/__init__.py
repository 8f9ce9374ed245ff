"""Data pipeline (detectron2's ``detectron2.data``): catalog, COCO loading, augmentations,
DatasetMapper, loaders, samplers and the built-in synthetic shapes dataset.

Importing registers the built-in datasets ``shapes_train`` / ``shapes_val`` (generated lazily,
on first ``DatasetCatalog.get``). Other names are imported on first use::

    from det.engine.data import DatasetCatalog, DatasetMapper, build_detection_train_loader

``DatasetMapperTTA`` (test-time augmentation views) is here too; the model wrapper that uses it,
``GeneralizedRCNNWithTTA``, is in :mod:`det.engine.test_time_augmentation`.
"""

from __future__ import annotations

from det.core.lazy import lazy_exports
from det.engine.data.catalog import DatasetCatalog, Metadata, MetadataCatalog

_LAZY = {
    "transforms": "det.engine.data.transforms",
    "detection_utils": "det.engine.data.detection_utils",
    "datasets": "det.engine.data.datasets",
    "samplers": "det.engine.data.samplers",
    "shapes": "det.engine.data.shapes",
    "DatasetMapper": "det.engine.data.dataset_mapper",
    "DatasetMapperTTA": "det.engine.data.dataset_mapper",
    "build_batch_data_loader": "det.engine.data.build",
    "build_detection_test_loader": "det.engine.data.build",
    "build_detection_train_loader": "det.engine.data.build",
    "get_detection_dataset_dicts": "det.engine.data.build",
    "load_proposals_into_dataset": "det.engine.data.build",
    "print_instances_class_histogram": "det.engine.data.build",
    "DatasetFromList": "det.engine.data.common",
    "MapDataset": "det.engine.data.common",
    "AspectRatioGroupedDataset": "det.engine.data.common",
    "ToIterableDataset": "det.engine.data.common",
    "TrainingSampler": "det.engine.data.samplers",
    "InferenceSampler": "det.engine.data.samplers",
    "RepeatFactorTrainingSampler": "det.engine.data.samplers",
    "RandomSubsetTrainingSampler": "det.engine.data.samplers",
    "load_coco_json": "det.engine.data.datasets.coco",
    "load_sem_seg": "det.engine.data.datasets.coco",
    "register_coco_instances": "det.engine.data.datasets.coco",
    "convert_to_coco_dict": "det.engine.data.datasets.coco",
    "convert_to_coco_json": "det.engine.data.datasets.coco",
    "load_coco_panoptic_json": "det.engine.data.datasets.coco_panoptic",
    "register_coco_panoptic": "det.engine.data.datasets.coco_panoptic",
    "register_coco_panoptic_separated": "det.engine.data.datasets.coco_panoptic",
    "merge_to_panoptic": "det.engine.data.datasets.coco_panoptic",
    "load_voc_instances": "det.engine.data.datasets.pascal_voc",
    "register_pascal_voc": "det.engine.data.datasets.pascal_voc",
    "get_builtin_metadata": "det.engine.data.datasets.builtin_meta",
    "register_all_builtin": "det.engine.data.datasets.builtin",
    "get_datasets_root": "det.engine.data.datasets.builtin",
    "load_lvis_json": "det.engine.data.datasets.lvis",
    "register_lvis_instances": "det.engine.data.datasets.lvis",
    "get_lvis_instances_meta": "det.engine.data.datasets.lvis",
    "load_cityscapes_instances": "det.engine.data.datasets.cityscapes",
    "load_cityscapes_semantic": "det.engine.data.datasets.cityscapes",
    "ShapesConfig": "det.engine.data.shapes",
    "prepare_shapes": "det.engine.data.shapes",
    "register_shapes": "det.engine.data.shapes",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


def _register_builtin() -> None:
    from det.engine.data.catalog import run_on_first_use
    from det.engine.data.shapes import register_shapes

    if "shapes_train" not in DatasetCatalog:
        register_shapes()
    # detectron2's builtin datasets (coco_2017_train, voc_2007_test, ...): on the first use of
    # a catalog, so that importing reads nothing and $DETECTRON2_DATASETS may be set later.
    run_on_first_use(_register_detectron2_builtins)


def _register_detectron2_builtins() -> None:
    from det.engine.data.datasets.builtin import register_all_builtin

    register_all_builtin()


_register_builtin()

__all__ = ["DatasetCatalog", "Metadata", "MetadataCatalog", *sorted(_LAZY)]
