"""Train and test data loaders built from the catalog (detectron2's ``data.build``)."""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.utils.data as torchdata

from det.core.config import configurable
from det.data import comm
from det.data.catalog import DatasetCatalog, MetadataCatalog
from det.data.common import AspectRatioGroupedDataset, DatasetFromList, MapDataset, ToIterableDataset
from det.data.config import augmentation_rng
from det.data.dataset_mapper import DatasetMapper
from det.data.detection_utils import check_metadata_consistency
from det.data.samplers import (
    InferenceSampler,
    RandomSubsetTrainingSampler,
    RepeatFactorTrainingSampler,
    ResumeTrainingSampler,
    TrainingSampler,
)

__all__ = [
    "build_batch_data_loader",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "build_resumed_train_loader",
    "filter_images_with_few_keypoints",
    "filter_images_with_only_crowd_annotations",
    "get_detection_dataset_dicts",
    "print_instances_class_histogram",
    "trivial_batch_collator",
    "worker_init_reset_seed",
]

logger = logging.getLogger(__name__)


def filter_images_with_only_crowd_annotations(dataset_dicts: list[dict]) -> list[dict]:
    """Drop images that have no non-crowd annotation (nothing to learn from)."""
    num_before = len(dataset_dicts)

    def valid(anns: list[dict]) -> bool:
        return any(ann.get("iscrowd", 0) == 0 for ann in anns)

    dataset_dicts = [x for x in dataset_dicts if valid(x["annotations"])]
    logger.info(
        "Removed %d images with no usable annotations. %d images left.",
        num_before - len(dataset_dicts),
        len(dataset_dicts),
    )
    return dataset_dicts


def filter_images_with_few_keypoints(dataset_dicts: list[dict], min_keypoints_per_image: int) -> list[dict]:
    """Drop images with fewer than ``min_keypoints_per_image`` visible keypoints."""
    num_before = len(dataset_dicts)

    def visible_keypoints_in_image(dic: dict) -> int:
        annotations = dic["annotations"]
        return sum((np.array(ann["keypoints"][2::3]) > 0).sum() for ann in annotations if "keypoints" in ann)

    dataset_dicts = [x for x in dataset_dicts if visible_keypoints_in_image(x) >= min_keypoints_per_image]
    logger.info(
        "Removed %d images with fewer than %d keypoints.",
        num_before - len(dataset_dicts),
        min_keypoints_per_image,
    )
    return dataset_dicts


def print_instances_class_histogram(dataset_dicts: list[dict], class_names: list[str]) -> None:
    """Log how many (non-crowd) instances of each class there are."""
    num_classes = len(class_names)
    hist_bins = np.arange(num_classes + 1)
    histogram = np.zeros((num_classes,), dtype=int)
    for entry in dataset_dicts:
        annos = entry.get("annotations", [])
        classes = np.asarray([x["category_id"] for x in annos if not x.get("iscrowd", 0)], dtype=int)
        if len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(
                f"Got an invalid category_id={classes.min() if classes.min() < 0 else classes.max()} "
                f"for a dataset of {num_classes} classes"
            )
        histogram += np.histogram(classes, bins=hist_bins)[0]
    pairs = ", ".join(f"{name}: {int(v)}" for name, v in zip(class_names, histogram))
    logger.info(
        "Distribution of instances among all %d categories: %s (total %d)",
        num_classes,
        pairs,
        int(histogram.sum()),
    )


def load_proposals_into_dataset(dataset_dicts: list[dict], proposal_file: str) -> list[dict]:
    """Add a file's precomputed proposals to each record (detectron2's proposal pickle format).

    The file holds ``ids`` (image ids), ``boxes`` (per image, (N, 4)), ``objectness_logits`` (per
    image, (N,)) and optionally ``bbox_mode`` (XYXY_ABS when absent); Detectron1's ``indexes`` /
    ``scores`` names are accepted too. Each record gains ``proposal_boxes``,
    ``proposal_objectness_logits`` (sorted by decreasing logit) and ``proposal_bbox_mode``, which
    :class:`DatasetMapper` turns into ``proposals``. The pickle is read with det-checkpoint's
    restricted unpickler, so a file that would run code is refused, not executed.
    """
    from det.checkpoint.serialization import load_pickle_file
    from det.structures import BoxMode

    proposals = load_pickle_file(proposal_file)
    for old_key, new_key in (("indexes", "ids"), ("scores", "objectness_logits")):
        if old_key in proposals:
            proposals[new_key] = proposals.pop(old_key)
    missing = [k for k in ("ids", "boxes", "objectness_logits") if k not in proposals]
    if missing:
        raise ValueError(f"Proposal file {proposal_file} lacks {missing}; it needs ids, boxes and objectness_logits")
    wanted = {str(record["image_id"]) for record in dataset_dicts}
    index_of = {str(image_id): i for i, image_id in enumerate(proposals["ids"]) if str(image_id) in wanted}
    bbox_mode = BoxMode(proposals["bbox_mode"]) if "bbox_mode" in proposals else BoxMode.XYXY_ABS
    for record in dataset_dicts:
        i = index_of.get(str(record["image_id"]))
        if i is None:
            raise ValueError(f"Proposal file {proposal_file} has no proposals for image_id {record['image_id']}")
        logits = np.asarray(proposals["objectness_logits"][i])
        order = logits.argsort()[::-1]
        record["proposal_boxes"] = np.asarray(proposals["boxes"][i])[order]
        record["proposal_objectness_logits"] = logits[order]
        record["proposal_bbox_mode"] = bbox_mode
    return dataset_dicts


def get_detection_dataset_dicts(
    names: str | list[str],
    filter_empty: bool = True,
    min_keypoints: int = 0,
    proposal_files: list[str] | None = None,
    check_consistency: bool = True,
) -> list[dict]:
    """The concatenated dataset dicts of the registered datasets ``names``, optionally without
    crowd-only images and images with too few keypoints."""
    if isinstance(names, str):
        names = [names]
    if len(names) == 0:
        raise ValueError("get_detection_dataset_dicts: no dataset names given")
    if proposal_files and len(proposal_files) != len(names):
        raise ValueError(
            f"{len(proposal_files)} proposal files for {len(names)} datasets: DATASETS.PROPOSAL_FILES_* "
            "needs one file per dataset, in the same order"
        )
    dataset_dicts_per_name = [DatasetCatalog.get(dataset_name) for dataset_name in names]
    if proposal_files:
        dataset_dicts_per_name = [
            load_proposals_into_dataset(dicts, proposal_file)
            for dicts, proposal_file in zip(dataset_dicts_per_name, proposal_files)
        ]
    for dataset_name, dicts in zip(names, dataset_dicts_per_name):
        if not len(dicts):
            raise ValueError(f"Dataset '{dataset_name}' is empty!")
    dataset_dicts = list(itertools.chain.from_iterable(dataset_dicts_per_name))

    has_instances = "annotations" in dataset_dicts[0]
    if filter_empty and has_instances:
        dataset_dicts = filter_images_with_only_crowd_annotations(dataset_dicts)
    if min_keypoints > 0 and has_instances:
        dataset_dicts = filter_images_with_few_keypoints(dataset_dicts, min_keypoints)

    if check_consistency and has_instances:
        try:
            class_names = MetadataCatalog.get(names[0]).thing_classes
            check_metadata_consistency("thing_classes", names)
            print_instances_class_histogram(dataset_dicts, class_names)
        except AttributeError:  # class names are not available for this dataset
            pass

    if not len(dataset_dicts):
        raise ValueError("No valid data found in {}.".format(",".join(names)))
    return dataset_dicts


def trivial_batch_collator(batch: list[Any]) -> list[Any]:
    """A batch is the list of its elements: detection models take ``list[dict]``."""
    return batch


def worker_init_reset_seed(worker_id: int) -> None:
    """Give every DataLoader worker its own numpy/random seed (they otherwise share one)."""
    initial_seed = torch.initial_seed() % 2**31
    seed = initial_seed + worker_id
    np.random.seed(seed % 2**32)
    import random

    random.seed(seed)
    torch.manual_seed(seed)


def build_batch_data_loader(
    dataset: Any,
    sampler: Any,
    total_batch_size: int | None,
    *,
    aspect_ratio_grouping: bool = False,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    drop_last: bool = True,
    single_gpu_batch_size: int | None = None,
    prefetch_factor: int | None = 2,
    persistent_workers: bool = False,
    pin_memory: bool = False,
    seed: int | None = None,
    **kwargs: Any,
) -> Any:
    """Batches of ``total_batch_size // world_size`` elements (or ``single_gpu_batch_size``
    per process; lists of dicts), optionally grouped by aspect ratio. ``dataset`` is an iterable
    dataset, or a map-style one + sampler.

    With a map-style dataset the batches are the same, in the same order, whatever
    ``num_workers`` is: workers take the sampler's stream in chunks (one batch each, or one
    element each with aspect-ratio grouping, which then happens in the main process) and the
    DataLoader takes from them in turn. With ``seed`` the random augmentations are the same too
    (each element's generators are seeded from ``(seed, rank, position)``, see
    :class:`ToIterableDataset`), and the DataLoader's own generator is seeded with it as in
    detectron2. Other keyword arguments go to ``torch.utils.data.DataLoader``.
    """
    if single_gpu_batch_size:
        if total_batch_size:
            raise ValueError(
                "total_batch_size and single_gpu_batch_size are mutually incompatible; give only one"
            )
        batch_size = single_gpu_batch_size
    else:
        world_size = comm.get_world_size()
        if not (total_batch_size and total_batch_size > 0 and total_batch_size % world_size == 0):
            raise ValueError(
                f"Total batch size ({total_batch_size}) must be divisible by the number of processes ({world_size})."
            )
        batch_size = total_batch_size // world_size
    logger.info("Making batched data loader with batch_size=%d", batch_size)

    if not isinstance(dataset, torchdata.IterableDataset):
        if sampler is None:
            raise ValueError("build_batch_data_loader: a map-style dataset needs a sampler")
        # Grouping batches in the main process from single elements, which must then arrive in
        # the sampler's order: chunks of one (detectron2 uses batch-size chunks here too, which
        # reorders the elements when there are workers). Otherwise a worker makes whole
        # batches: chunks of a batch.
        dataset = ToIterableDataset(
            dataset, sampler, shard_chunk_size=1 if aspect_ratio_grouping else batch_size, seed=seed
        )
    elif sampler is not None:
        raise ValueError("sampler must be None if dataset is an IterableDataset")

    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    loader_args = dict(
        num_workers=num_workers,
        worker_init_fn=worker_init_reset_seed,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=persistent_workers and num_workers > 0,
        pin_memory=pin_memory,
        generator=generator,
        **kwargs,
    )
    if aspect_ratio_grouping:
        if not drop_last:
            raise ValueError("Aspect ratio grouping drops incomplete batches: it needs drop_last=True")
        data_loader = torchdata.DataLoader(
            dataset,
            collate_fn=operator.itemgetter(0),  # one element at a time; grouping batches them
            batch_size=1,
            **loader_args,
        )
        grouped = AspectRatioGroupedDataset(data_loader, batch_size)
        if collate_fn is None:
            return grouped
        return MapDataset(grouped, collate_fn)
    return torchdata.DataLoader(
        dataset,
        batch_size=batch_size,
        drop_last=drop_last,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
        **loader_args,
    )


def _train_loader_from_config(
    cfg: Any, mapper: Any = None, *, dataset: Any = None, sampler: Any = None
) -> dict:
    # cfg.SEED >= 0 fixes the sampler's order and, with DATALOADER.AUGMENTATION_RNG "per_image",
    # the augmentations (for any NUM_WORKERS); a negative SEED (the default) draws a seed shared by
    # all processes. "process" leaves the augmentations (and the DataLoader's base seed) to the
    # process's global generators, as detectron2's loader does.
    seed = cfg.SEED if cfg.SEED >= 0 else None
    augmentation_seed = seed if augmentation_rng(cfg) == "per_image" else None
    if dataset is None:
        dataset = get_detection_dataset_dicts(
            cfg.DATASETS.TRAIN,
            filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
            proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None,
        )
    if mapper is None:
        mapper = DatasetMapper(cfg, True)
    if sampler is None:
        sampler_name = cfg.DATALOADER.SAMPLER_TRAIN
        logger.info("Using training sampler %s", sampler_name)
        if sampler_name == "TrainingSampler":
            sampler = TrainingSampler(len(dataset), seed=seed)
        elif sampler_name == "RepeatFactorTrainingSampler":
            repeat_factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
                dataset, cfg.DATALOADER.REPEAT_THRESHOLD, sqrt=cfg.DATALOADER.REPEAT_SQRT
            )
            sampler = RepeatFactorTrainingSampler(repeat_factors, seed=seed)
        elif sampler_name == "RandomSubsetTrainingSampler":
            ratio = cfg.DATALOADER.get("RANDOM_SUBSET_RATIO")
            if ratio is None:
                raise ValueError(
                    "SAMPLER_TRAIN RandomSubsetTrainingSampler needs DATALOADER.RANDOM_SUBSET_RATIO "
                    "(the fraction of images to train on): add it to the config"
                )
            sampler = RandomSubsetTrainingSampler(len(dataset), ratio)
        else:
            raise ValueError(
                f"Unknown training sampler: {sampler_name} (det has TrainingSampler, "
                "RepeatFactorTrainingSampler, RandomSubsetTrainingSampler)"
            )
    return {
        "dataset": dataset,
        "sampler": sampler,
        "mapper": mapper,
        "total_batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "aspect_ratio_grouping": cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "seed": augmentation_seed,
    }


def _mapped_dataset(dataset, mapper, sampler):
    """The loaders' dataset: a list serialized into a :class:`DatasetFromList`, then ``mapper``
    applied (:class:`MapDataset`); an IterableDataset takes no ``sampler``."""
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False)
    if mapper is not None:
        dataset = MapDataset(dataset, mapper)
    if isinstance(dataset, torchdata.IterableDataset) and sampler is not None:
        raise ValueError("sampler must be None if dataset is an IterableDataset")
    return dataset


@configurable(from_config=_train_loader_from_config)
def build_detection_train_loader(
    dataset: Any,
    *,
    mapper: Callable[[Any], Any] | None,
    sampler: Any = None,
    total_batch_size: int,
    aspect_ratio_grouping: bool = True,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """An endless iterable of training batches (``list[dict]`` of ``total_batch_size //
    world_size`` mapped dicts). Call with a cfg (``DATASETS.TRAIN``, ``DatasetMapper(cfg, True)``,
    ``DATALOADER.*``, ``SOLVER.IMS_PER_BATCH``) or with explicit arguments::

        loader = build_detection_train_loader(cfg)
        loader = build_detection_train_loader(dicts, mapper=DatasetMapper(cfg, True), total_batch_size=4)

    A list of dicts is serialized into one buffer (:class:`DatasetFromList`), so worker
    processes do not grow by copying it. Keyword arguments beyond these (``seed``,
    ``prefetch_factor``, ``persistent_workers``, ...) go to :func:`build_batch_data_loader`; with
    ``seed`` (``cfg.SEED >= 0`` from a config, unless ``DATALOADER.AUGMENTATION_RNG`` is
    "process") the batches, augmentations included, are the same for every ``num_workers``.
    """
    dataset = _mapped_dataset(dataset, mapper, sampler)
    if not isinstance(dataset, torchdata.IterableDataset):
        if sampler is None:
            sampler = TrainingSampler(len(dataset))
        if not isinstance(sampler, torchdata.Sampler):
            raise TypeError(f"Expect a torch.utils.data.Sampler, got {type(sampler).__name__}")
    return build_batch_data_loader(
        dataset,
        sampler,
        total_batch_size,
        aspect_ratio_grouping=aspect_ratio_grouping,
        num_workers=num_workers,
        collate_fn=collate_fn,
        **kwargs,
    )


def build_resumed_train_loader(cfg: Any, start_iter: int, mapper: Any = None) -> Any:
    """``build_detection_train_loader(cfg, mapper)`` whose first batch is the one an
    uninterrupted run trains on at iteration ``start_iter`` (and so on): a resumed run sees the
    same data in the same order. Skipping replays the sampler and the batching on indices (see
    :class:`~det.data.samplers.ResumeTrainingSampler`), so it costs no image reads. The sampler's
    seed must be the interrupted run's: set ``SEED`` (``det train`` saves the seed it drew)."""
    kwargs = _train_loader_from_config(cfg, mapper)
    if start_iter > 0:
        dicts = kwargs["dataset"]
        group_ids = [0 if d["width"] > d["height"] else 1 for d in dicts] if kwargs["aspect_ratio_grouping"] else None
        batch_size = kwargs["total_batch_size"] // comm.get_world_size()
        kwargs["sampler"] = ResumeTrainingSampler(kwargs["sampler"], batch_size, start_iter, group_ids)
        logger.info("Resuming the data order: the loader starts at batch %d of the sampler's stream", start_iter)
    return build_detection_train_loader(**kwargs)


def _test_loader_from_config(cfg: Any, dataset_name: str | list[str], mapper: Any = None) -> dict:
    if isinstance(dataset_name, str):
        dataset_name = [dataset_name]
    dataset = get_detection_dataset_dicts(
        dataset_name,
        filter_empty=False,
        proposal_files=(
            [cfg.DATASETS.PROPOSAL_FILES_TEST[list(cfg.DATASETS.TEST).index(x)] for x in dataset_name]
            if cfg.MODEL.LOAD_PROPOSALS
            else None
        ),
    )
    if mapper is None:
        mapper = DatasetMapper(cfg, False)
    return {
        "dataset": dataset,
        "mapper": mapper,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "sampler": InferenceSampler(len(dataset)),
    }


@configurable(from_config=_test_loader_from_config)
def build_detection_test_loader(
    dataset: Any,
    *,
    mapper: Callable[[Any], Any] | None,
    sampler: Any = None,
    batch_size: int = 1,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> torchdata.DataLoader:
    """A finite loader over every element once (this rank's shard), in order, batches of
    ``batch_size`` (default 1). Call as ``build_detection_test_loader(cfg, "shapes_val")`` or with
    explicit arguments::

        loader = build_detection_test_loader(dicts, mapper=DatasetMapper(cfg, False))
    """
    dataset = _mapped_dataset(dataset, mapper, sampler)
    if sampler is None and not isinstance(dataset, torchdata.IterableDataset):
        sampler = InferenceSampler(len(dataset))
    return torchdata.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=False,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
    )
