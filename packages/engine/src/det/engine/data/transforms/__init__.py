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
    RandomApply,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomLighting,
    RandomRotation,
    RandomSaturation,
    Resize,
    ResizeScale,
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
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "BlendTransform",
    "CropTransform",
    "FixedSizeCrop",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "RandomApply",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomLighting",
    "RandomRotation",
    "RandomSaturation",
    "Resize",
    "ResizeScale",
    "ResizeShortestEdge",
    "ResizeTransform",
    "RotationTransform",
    "StandardAugInput",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "apply_augmentations",
    "apply_transform_gens",
]
