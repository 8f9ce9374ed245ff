"""The training mapper of Panoptic-DeepLab (detectron2's ``PanopticDeeplabDatasetMapper``): image
and panoptic PNG through the same augmentations, then the targets of
:class:`PanopticDeepLabTargetGenerator`."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from det.core.config import configurable
from det.data import MetadataCatalog
from det.data import detection_utils as utils
from det.data import transforms as T
from det.evaluation.panoptic_evaluation import rgb2id
from det.projects.panoptic_deeplab.target_generator import PanopticDeepLabTargetGenerator

__all__ = ["PanopticDeeplabDatasetMapper", "build_sem_seg_train_aug"]

logger = logging.getLogger(__name__)


def build_sem_seg_train_aug(cfg: Any) -> list[Any]:
    """ResizeShortestEdge (``INPUT.MIN_SIZE_TRAIN``, ``MAX_SIZE_TRAIN``, sampling), a RandomCrop
    when ``INPUT.CROP.ENABLED``, RandomFlip: Panoptic-DeepLab's training augmentations."""
    augs: list[Any] = [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                            cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)]
    if cfg.INPUT.CROP.ENABLED:
        augs.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
    augs.append(T.RandomFlip())
    return augs


class PanopticDeeplabDatasetMapper:
    """Maps one dataset dict (``file_name``, ``pan_seg_file_name``, ``segments_info`` with
    contiguous ``category_id``) to the model's training input: ``image`` (C, H, W) uint8 plus the
    target generator's ``sem_seg``, ``center``, ``offset`` and weights.

    Invariant: the panoptic PNG goes through exactly the image's geometric transforms (as a
    segmentation map: nearest-neighbour), so ids stay ids::

        mapper = PanopticDeeplabDatasetMapper(cfg)       # assumes DATASETS.TRAIN[0]'s metadata
        loader = build_detection_train_loader(cfg, mapper=mapper)
    """

    @configurable
    def __init__(self, *, augmentations: Sequence[Any], image_format: str,
                 panoptic_target_generator: Callable[[np.ndarray, list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.augmentations = T.AugmentationList(list(augmentations))
        self.image_format = image_format
        self.panoptic_target_generator = panoptic_target_generator
        logger.info("Augmentations used in training: %s", augmentations)

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
        missing = [k for k in ("ignore_label", "thing_dataset_id_to_contiguous_id") if not hasattr(meta, k)]
        if missing:
            raise ValueError(f"PanopticDeeplabDatasetMapper needs the metadata of {cfg.DATASETS.TRAIN[0]!r} "
                             f"(DATASETS.TRAIN[0]) to have {missing}")
        generator = PanopticDeepLabTargetGenerator(
            ignore_label=meta.ignore_label,
            thing_ids=list(meta.thing_dataset_id_to_contiguous_id.values()),
            sigma=cfg.INPUT.GAUSSIAN_SIGMA,
            ignore_stuff_in_offset=cfg.INPUT.IGNORE_STUFF_IN_OFFSET,
            small_instance_area=cfg.INPUT.SMALL_INSTANCE_AREA,
            small_instance_weight=cfg.INPUT.SMALL_INSTANCE_WEIGHT,
            ignore_crowd_in_semantic=cfg.INPUT.IGNORE_CROWD_IN_SEMANTIC,
        )
        return {"augmentations": build_sem_seg_train_aug(cfg), "image_format": cfg.INPUT.FORMAT,
                "panoptic_target_generator": generator}

    def __call__(self, dataset_dict: dict[str, Any]) -> dict[str, Any]:
        dataset_dict = copy.deepcopy(dataset_dict)
        for key in ("file_name", "pan_seg_file_name", "segments_info"):
            if key not in dataset_dict:
                raise ValueError(f"PanopticDeeplabDatasetMapper: the dataset dict lacks {key!r} "
                                 f"(keys: {sorted(dataset_dict)}); it needs a panoptic dataset")
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        pan_seg_gt = utils.read_image(dataset_dict.pop("pan_seg_file_name"), "RGB")
        # the panoptic PNG rides along as a segmentation map
        aug_input = T.AugInput(image, sem_seg=pan_seg_gt)
        self.augmentations(aug_input)
        image, pan_seg_gt = aug_input.image, aug_input.sem_seg
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        dataset_dict.update(self.panoptic_target_generator(rgb2id(pan_seg_gt), dataset_dict["segments_info"]))
        return dataset_dict
