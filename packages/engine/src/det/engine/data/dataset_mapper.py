"""DatasetMapper: one standard dataset dict -> one model input dict."""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch

from det.core.config import configurable
from det.engine.data import detection_utils as utils
from det.engine.data import transforms as T

__all__ = ["DatasetMapper"]

logger = logging.getLogger(__name__)


class DatasetMapper:
    """Reads the image of a dataset dict, applies augmentations to it and to its annotations, and
    returns the model input: ``image`` (C,H,W) uint8 tensor in ``image_format``, ``height``,
    ``width`` (original size), ``instances`` (training) and ``sem_seg`` (when labelled).
    The input dict is never modified.

        mapper = DatasetMapper(cfg, is_train=True)
        model_input = mapper(DatasetCatalog.get("shapes_train")[0])
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: list[Any],
        image_format: str,
        use_instance_mask: bool = False,
        use_keypoint: bool = False,
        instance_mask_format: str = "polygon",
        keypoint_hflip_indices: np.ndarray | list[int] | None = None,
        precomputed_proposal_topk: int | None = None,
        recompute_boxes: bool = False,
    ) -> None:
        if recompute_boxes and not use_instance_mask:
            raise ValueError("recompute_boxes requires instance masks to be enabled (use_instance_mask=True)")
        if instance_mask_format not in ("polygon", "bitmask"):
            raise ValueError(
                f"instance_mask_format must be 'polygon' or 'bitmask', got {instance_mask_format!r}"
            )
        if use_keypoint and is_train and keypoint_hflip_indices is None:
            logger.warning(
                "DatasetMapper: use_keypoint without keypoint_hflip_indices; horizontal flips will fail"
            )
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.use_instance_mask = use_instance_mask
        self.instance_mask_format = instance_mask_format
        self.use_keypoint = use_keypoint
        self.keypoint_hflip_indices = keypoint_hflip_indices
        self.proposal_topk = precomputed_proposal_topk
        self.recompute_boxes = recompute_boxes
        mode = "training" if is_train else "inference"
        logger.info("[DatasetMapper] Augmentations used in %s: %s", mode, augmentations)

    @classmethod
    def from_config(cls, cfg: Any, is_train: bool = True) -> dict[str, Any]:
        augs = utils.build_augmentation(cfg, is_train)
        if cfg.INPUT.CROP.ENABLED and is_train:
            augs.insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
            # Cropping cuts masks; boxes from the cut masks are tighter than cut boxes.
            recompute_boxes = cfg.MODEL.MASK_ON
        else:
            recompute_boxes = False
        ret = {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "use_instance_mask": cfg.MODEL.MASK_ON,
            "instance_mask_format": cfg.INPUT.MASK_FORMAT,
            "use_keypoint": cfg.MODEL.KEYPOINT_ON,
            "recompute_boxes": recompute_boxes,
        }
        if cfg.MODEL.KEYPOINT_ON:
            ret["keypoint_hflip_indices"] = utils.create_keypoint_hflip_indices(cfg.DATASETS.TRAIN)
        if cfg.MODEL.LOAD_PROPOSALS:
            ret["precomputed_proposal_topk"] = (
                cfg.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN
                if is_train
                else cfg.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST
            )
        return ret

    def _transform_annotations(
        self, dataset_dict: dict, transforms: Any, image_shape: tuple[int, int]
    ) -> None:
        for anno in dataset_dict["annotations"]:
            if not self.use_instance_mask:
                anno.pop("segmentation", None)
            if not self.use_keypoint:
                anno.pop("keypoints", None)
        # Crowd regions are not objects to detect: they are dropped from the training targets.
        annos = [
            utils.transform_instance_annotations(
                obj, transforms, image_shape, keypoint_hflip_indices=self.keypoint_hflip_indices
            )
            for obj in dataset_dict.pop("annotations")
            if obj.get("iscrowd", 0) == 0
        ]
        instances = utils.annotations_to_instances(annos, image_shape, mask_format=self.instance_mask_format)
        if self.recompute_boxes:
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
        dataset_dict["instances"] = utils.filter_empty_instances(instances)

    def __call__(self, dataset_dict: dict) -> dict:
        if not isinstance(dataset_dict, dict) or "file_name" not in dataset_dict:
            raise TypeError("DatasetMapper takes a dataset dict with at least 'file_name'")
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)

        if "sem_seg_file_name" in dataset_dict:
            sem_seg_gt = utils.read_image(dataset_dict.pop("sem_seg_file_name"), "L").squeeze(2)
        else:
            sem_seg_gt = None

        aug_input = T.AugInput(image, sem_seg=sem_seg_gt)
        transforms = self.augmentations(aug_input)
        image, sem_seg_gt = aug_input.image, aug_input.sem_seg

        image_shape = image.shape[:2]
        # ascontiguousarray: flips produce negative strides, which torch cannot wrap.
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg_gt is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(np.ascontiguousarray(sem_seg_gt).astype("long"))

        if self.proposal_topk is not None:
            utils.transform_proposals(dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk)

        if not self.is_train:
            dataset_dict.pop("annotations", None)
            dataset_dict.pop("sem_seg_file_name", None)
            return dataset_dict

        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict
