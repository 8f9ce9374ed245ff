"""Dataset mappers: ``DatasetMapper`` (one dataset dict -> one model input dict) and
``DatasetMapperTTA`` (one model input dict -> its test-time augmented copies)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from det.core.config import configurable
from det.data import detection_utils as utils
from det.data import transforms as T

__all__ = ["DatasetMapper", "DatasetMapperTTA"]

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


class DatasetMapperTTA:
    """Test-time augmentation of one model input: a resized copy per short-side length in
    ``min_sizes``, each followed (with ``flip``) by its horizontally mirrored copy.

    Invariant: each returned dict is a copy of the input with its own ``image`` and a
    ``transforms`` (:class:`~det.data.transforms.TransformList`) that maps coordinates of the
    *original* image -- the input's ``height`` x ``width``, which may differ from the size of the
    ``image`` it carries -- into that augmented image; ``height``/``width`` keep the original size.
    There are ``len(min_sizes) * (2 if flip else 1)`` of them, in the order of ``min_sizes``,
    unflipped before flipped. The input dict is never modified.

        mapper = DatasetMapperTTA(min_sizes=[400, 600], max_size=1000, flip=True)  # or DatasetMapperTTA(cfg)
        views = mapper({"image": img_chw, "height": h, "width": w})
        views[1]["image"], views[1]["transforms"]   # 400 px short side, mirrored; original -> view

    Transforms are computed, not sampled: unlike ``ResizeShortestEdge``/``RandomFlip`` augmentations,
    the mapper draws nothing from numpy's global RNG, so evaluating with TTA in the middle of
    training does not change the training run's random stream.
    """

    @configurable
    def __init__(self, min_sizes: Sequence[int], max_size: int, flip: bool) -> None:
        """
        Args:
            min_sizes: short-side lengths to resize the image to (one view, or two with ``flip``,
                per length).
            max_size: upper bound of the longer side of every view.
            flip: also add the horizontally flipped copy of each resized view.
        """
        if isinstance(min_sizes, (int, np.integer)):
            min_sizes = [int(min_sizes)]
        min_sizes = list(min_sizes)
        if not min_sizes:
            raise ValueError("DatasetMapperTTA: min_sizes (cfg.TEST.AUG.MIN_SIZES) is empty; give at least one size")
        for s in min_sizes:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0:
                raise ValueError(
                    f"DatasetMapperTTA: min_sizes must be positive ints (short-side lengths), got {min_sizes}"
                )
        if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size <= 0:
            raise ValueError(f"DatasetMapperTTA: max_size must be a positive int, got {max_size!r}")
        self.min_sizes = [int(s) for s in min_sizes]
        self.max_size = int(max_size)
        self.flip = bool(flip)

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        return {
            "min_sizes": cfg.TEST.AUG.MIN_SIZES,
            "max_size": cfg.TEST.AUG.MAX_SIZE,
            "flip": cfg.TEST.AUG.FLIP,
        }

    def __call__(self, dataset_dict: dict[str, Any]) -> list[dict[str, Any]]:
        """
        Args:
            dataset_dict: a model input: ``image`` (C, H, W) tensor, and ``height``/``width`` of
                the original image when ``image`` was already resized (default: the image's size).

        Returns:
            list[dict]: the augmented copies, each with ``image`` and ``transforms``.
        """
        image: Any = dataset_dict.get("image") if isinstance(dataset_dict, dict) else None
        if not isinstance(image, torch.Tensor) or image.dim() != 3 or 0 in image.shape:
            got = type(image).__name__ if not isinstance(image, torch.Tensor) else f"shape {tuple(image.shape)}"
            raise ValueError(
                f"DatasetMapperTTA takes a model input dict with a non-empty (C, H, W) tensor under 'image'; got {got}"
            )
        numpy_image = np.ascontiguousarray(image.detach().cpu().permute(1, 2, 0).numpy())
        h, w = numpy_image.shape[:2]
        if ("height" in dataset_dict) != ("width" in dataset_dict):
            raise ValueError("DatasetMapperTTA: give both 'height' and 'width' (the original size) or neither")
        orig_h, orig_w = (h, w)
        if "height" in dataset_dict:
            orig_h, orig_w = int(dataset_dict["height"]), int(dataset_dict["width"])
        # The input image may already be resized (e.g. by DatasetMapper): the recorded transforms
        # start from the original image, so that their inverse lands detections there.
        pre_tfm = T.ResizeTransform(orig_h, orig_w, h, w) if (h, w) != (orig_h, orig_w) else T.NoOpTransform()

        rest = {k: v for k, v in dataset_dict.items() if k not in ("image", "transforms")}
        ret = []
        for min_size in self.min_sizes:
            new_h, new_w = T.ResizeShortestEdge.get_output_shape(h, w, min_size, self.max_size)
            resize = T.ResizeTransform(h, w, new_h, new_w)
            resized = resize.apply_image(numpy_image)
            views: list[tuple[np.ndarray, list[Any]]] = [(resized, [resize])]
            if self.flip:
                flip = T.HFlipTransform(new_w)
                views.append((flip.apply_image(resized), [resize, flip]))
            for view_image, tfms in views:
                view = copy.deepcopy(rest)
                # ascontiguousarray: the HWC -> CHW view and flips have strides torch cannot wrap;
                # PIL's output is read-only, which torch does not support either
                chw = np.ascontiguousarray(view_image.transpose(2, 0, 1))
                view["image"] = torch.from_numpy(chw if chw.flags.writeable else chw.copy())
                view["transforms"] = T.TransformList([pre_tfm, *tfms])
                ret.append(view)
        return ret

    def __repr__(self) -> str:
        return f"DatasetMapperTTA(min_sizes={self.min_sizes}, max_size={self.max_size}, flip={self.flip})"
