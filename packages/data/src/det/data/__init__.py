"""Data pipeline (detectron2's ``detectron2.data``): catalog, COCO loading, augmentations,
DatasetMapper, loaders, samplers and the built-in synthetic shapes dataset.

Importing registers the built-in datasets ``shapes_train`` / ``shapes_val`` (generated lazily,
on first ``DatasetCatalog.get``). Other names are imported on first use::

    from det.data import DatasetCatalog, DatasetMapper, build_detection_train_loader

``DatasetMapperTTA`` (test-time augmentation views) is here too; the model wrapper that uses it,
``GeneralizedRCNNWithTTA``, is in :mod:`det.engine.test_time_augmentation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import lazy_exports
from det.data.catalog import DatasetCatalog, Metadata, MetadataCatalog  # noqa: F401 (public, below)
from det.data.version import __version__  # noqa: F401 (public: every distribution's package has it)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.data import datasets as datasets
    from det.data import detection_utils as detection_utils
    from det.data import samplers as samplers
    from det.data import shapes as shapes
    from det.data import transforms as transforms
    from det.data.build import build_batch_data_loader as build_batch_data_loader
    from det.data.build import build_detection_test_loader as build_detection_test_loader
    from det.data.build import build_detection_train_loader as build_detection_train_loader
    from det.data.build import build_resumed_train_loader as build_resumed_train_loader
    from det.data.build import get_detection_dataset_dicts as get_detection_dataset_dicts
    from det.data.build import load_proposals_into_dataset as load_proposals_into_dataset
    from det.data.build import print_instances_class_histogram as print_instances_class_histogram
    from det.data.common import AspectRatioGroupedDataset as AspectRatioGroupedDataset
    from det.data.common import DatasetFromList as DatasetFromList
    from det.data.common import MapDataset as MapDataset
    from det.data.common import ToIterableDataset as ToIterableDataset
    from det.data.dataset_mapper import DatasetMapper as DatasetMapper
    from det.data.dataset_mapper import DatasetMapperTTA as DatasetMapperTTA
    from det.data.samplers import InferenceSampler as InferenceSampler
    from det.data.samplers import RandomSubsetTrainingSampler as RandomSubsetTrainingSampler
    from det.data.samplers import RepeatFactorTrainingSampler as RepeatFactorTrainingSampler
    from det.data.samplers import ResumeTrainingSampler as ResumeTrainingSampler
    from det.data.samplers import TrainingSampler as TrainingSampler
    from det.data.shapes import ShapesConfig as ShapesConfig
    from det.data.shapes import prepare_shapes as prepare_shapes
    from det.data.shapes import register_shapes as register_shapes

# ... and every public name of det.data.datasets (its own table says where each lives)
__getattr__, __dir__ = lazy_exports(
    __name__, also=("det.data.datasets",), public=("DatasetCatalog", "Metadata", "MetadataCatalog")
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

