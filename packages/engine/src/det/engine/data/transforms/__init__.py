"""Transforms and augmentations (detectron2's ``data.transforms``).

``Transform``, ``ResizeTransform``, ``Augmentation`` and ``ResizeShortestEdge`` come from
:mod:`det.core.transforms` (the predictor needs them without the engine); everything else is here.

    from det.engine.data import transforms as T
    tfms = T.AugmentationList([T.ResizeShortestEdge(800, 1333), T.RandomFlip()])(T.AugInput(img))
"""

from det.engine.data.transforms.augmentation import (
    AugInput,
    Augmentation,
    AugmentationList,
    StandardAugInput,
    apply_augmentations,
    apply_transform_gens,
)
from det.engine.data.transforms.augmentation_impl import (
    FixedSizeCrop,
    RandomRotation,
    ResizeScale,
    RandomApply,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomLighting,
    RandomSaturation,
    Resize,
    ResizeShortestEdge,
)
from det.engine.data.transforms.transform import (
    BlendTransform,
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    RotationTransform,
    Transform,
    TransformList,
    VFlipTransform,
)

__all__ = [
    "FixedSizeCrop",
    "RandomRotation",
    "ResizeScale",
    "RotationTransform",
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "BlendTransform",
    "CropTransform",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "RandomApply",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomLighting",
    "RandomSaturation",
    "Resize",
    "ResizeShortestEdge",
    "ResizeTransform",
    "StandardAugInput",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "apply_augmentations",
    "apply_transform_gens",
]
