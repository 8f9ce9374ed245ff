"""Inputs of augmentations and lists of them, over det.core's ``Augmentation`` base."""

from __future__ import annotations

from typing import Any

import numpy as np

from det.core.transforms import Augmentation
from det.data.transforms.transform import TransformList, apply_box, apply_segmentation

__all__ = [
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "StandardAugInput",
    "TransformGen",
    "apply_augmentations",
    "apply_transform_gens",
]


TransformGen = Augmentation
"""detectron2's older name for :class:`Augmentation` (it generates transforms)."""


def _check_augmentation(aug: Any) -> Any:
    if isinstance(aug, Augmentation) or hasattr(aug, "get_transform"):
        return aug
    # A plain Transform used as an augmentation: always apply it.
    if hasattr(aug, "apply_image") and hasattr(aug, "apply_coords"):
        return _TransformToAug(aug)
    raise TypeError(f"Expected an Augmentation or a Transform, got {type(aug).__name__}")


class _TransformToAug(Augmentation):
    def __init__(self, tfm: Any) -> None:
        self.tfm = tfm

    def get_transform(self, *args: Any) -> Any:
        return self.tfm

    def __repr__(self) -> str:
        return repr(self.tfm)


def _run(aug: Any, aug_input: AugInput) -> Any:
    """Apply one augmentation to ``aug_input`` in place and return the transform it chose."""
    if isinstance(aug, Augmentation):
        return aug(aug_input)
    tfm = aug.get_transform(aug_input.image)
    aug_input.transform(tfm)
    return tfm


class AugInput:
    """What augmentations read and transform in place: an image (H,W) or (H,W,C) numpy array,
    optional boxes (N,4) XYXY_ABS and an optional (H,W) semantic-segmentation map.

        inp = AugInput(image, sem_seg=labels)
        tfms = AugmentationList([RandomFlip()])(inp)  # inp.image, inp.sem_seg now flipped
    """

    def __init__(
        self, image: np.ndarray, *, boxes: np.ndarray | None = None, sem_seg: np.ndarray | None = None
    ) -> None:
        if not isinstance(image, np.ndarray):
            raise TypeError(f"AugInput: image must be a numpy array, got {type(image).__name__}")
        if image.ndim not in (2, 3):
            raise ValueError(f"AugInput: image must be (H,W) or (H,W,C), got shape {image.shape}")
        if sem_seg is not None and tuple(np.shape(sem_seg)[:2]) != tuple(image.shape[:2]):
            raise ValueError(
                f"AugInput: sem_seg shape {np.shape(sem_seg)} does not match image shape {image.shape[:2]}"
            )
        self.image = image
        self.boxes = boxes
        self.sem_seg = sem_seg

    def transform(self, tfm: Any) -> None:
        """Apply ``tfm`` to everything held, in place."""
        self.image = tfm.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = apply_box(tfm, self.boxes)
        if self.sem_seg is not None:
            self.sem_seg = apply_segmentation(tfm, self.sem_seg)

    def apply_augmentations(self, augmentations: list[Any]) -> TransformList:
        return AugmentationList(augmentations)(self)


StandardAugInput = AugInput


class AugmentationList(Augmentation):
    """Augmentations applied one after the other; calling it on an :class:`AugInput` transforms
    the input in place and returns the :class:`TransformList` of what was done.

        augs = AugmentationList([ResizeShortestEdge(64, 100), RandomFlip(prob=1.0)])
        tfms = augs(AugInput(image))  # TransformList[ResizeTransform(...), HFlipTransform(...)]
    """

    def __init__(self, augs: list[Any]) -> None:
        self.augs = [_check_augmentation(x) for x in augs]

    def __call__(self, aug_input: AugInput) -> TransformList:  # type: ignore[override]
        tfms = [_run(x, aug_input) for x in self.augs]
        return TransformList(tfms)

    def get_transform(self, *args: Any) -> Any:
        raise NotImplementedError("AugmentationList is applied with __call__(aug_input), not get_transform()")

    def __repr__(self) -> str:
        return "AugmentationList[{}]".format(", ".join(repr(x) for x in self.augs))

    __str__ = __repr__


def apply_augmentations(augmentations: list[Any], inputs: np.ndarray | AugInput) -> tuple[Any, TransformList]:
    """Apply augmentations to an image array (returns the new image) or an :class:`AugInput`
    (transformed in place and returned), together with the transforms."""
    image_only = isinstance(inputs, np.ndarray)
    aug_input = AugInput(inputs) if image_only else inputs
    if not isinstance(aug_input, AugInput):
        raise TypeError(
            f"apply_augmentations takes a numpy image or an AugInput, got {type(inputs).__name__}"
        )
    tfms = aug_input.apply_augmentations(augmentations)
    return (aug_input.image if image_only else aug_input), tfms


apply_transform_gens = apply_augmentations
