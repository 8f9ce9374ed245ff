"""Data pipeline (detectron2's ``detectron2.data``): catalog, COCO loading, augmentations,
DatasetMapper, loaders, samplers and the built-in synthetic shapes dataset.

Importing registers the built-in datasets ``shapes_train`` / ``shapes_val`` (generated lazily,
on first ``DatasetCatalog.get``). Other names are imported on first use::

    from det.data import DatasetCatalog, DatasetMapper, build_detection_train_loader

``DatasetMapperTTA`` (test-time augmentation views) is here too; the model wrapper that uses it,
``GeneralizedRCNNWithTTA``, is in :mod:`det.engine.test_time_augmentation`.
"""

from __future__ import annotations

from det.core.lazy import lazy_exports
from det.data.catalog import DatasetCatalog, Metadata, MetadataCatalog  # noqa: F401 (public, below)
from det.data.version import __version__  # noqa: F401 (public: every distribution's package has it)

_LAZY = {
    "transforms": "det.data.transforms",
    "detection_utils": "det.data.detection_utils",
    "datasets": "det.data.datasets",
    "samplers": "det.data.samplers",
    "shapes": "det.data.shapes",
    "DatasetMapper": "det.data.dataset_mapper",
    "DatasetMapperTTA": "det.data.dataset_mapper",
    "build_batch_data_loader": "det.data.build",
    "build_detection_test_loader": "det.data.build",
    "build_detection_train_loader": "det.data.build",
    "build_resumed_train_loader": "det.data.build",
    "get_detection_dataset_dicts": "det.data.build",
    "load_proposals_into_dataset": "det.data.build",
    "print_instances_class_histogram": "det.data.build",
    "DatasetFromList": "det.data.common",
    "MapDataset": "det.data.common",
    "AspectRatioGroupedDataset": "det.data.common",
    "ToIterableDataset": "det.data.common",
    "TrainingSampler": "det.data.samplers",
    "InferenceSampler": "det.data.samplers",
    "RepeatFactorTrainingSampler": "det.data.samplers",
    "RandomSubsetTrainingSampler": "det.data.samplers",
    "ResumeTrainingSampler": "det.data.samplers",
    "ShapesConfig": "det.data.shapes",
    "prepare_shapes": "det.data.shapes",
    "register_shapes": "det.data.shapes",
}

# ... and every public name of det.data.datasets (its own table says where each lives)
__getattr__, __dir__ = lazy_exports(
    __name__, _LAZY, also=("det.data.datasets",), public=("DatasetCatalog", "Metadata", "MetadataCatalog")
)


def _register_builtin() -> None:
    from det.data.catalog import run_on_first_use
    from det.data.shapes import register_shapes

    if "shapes_train" not in DatasetCatalog:
        register_shapes()
    # detectron2's builtin datasets (coco_2017_train, voc_2007_test, ...): on the first use of
    # a catalog, so that importing reads nothing and $DETECTRON2_DATASETS may be set later.
    run_on_first_use(_register_detectron2_builtins)


def _register_detectron2_builtins() -> None:
    from det.data.datasets.builtin import register_all_builtin

    register_all_builtin()


_register_builtin()

