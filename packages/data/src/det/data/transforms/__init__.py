"""Transforms and augmentations (detectron2's ``data.transforms``, with the fvcore transforms it
re-exports).

``Transform``, ``ResizeTransform``, ``Augmentation`` and ``ResizeShortestEdge`` come from
:mod:`det.core.transforms` (the predictor needs them without the engine); everything else is here.

    from det.data import transforms as T
    tfms = T.AugmentationList([T.ResizeShortestEdge(800, 1333), T.RandomFlip()])(T.AugInput(img))
"""

from det.data.transforms.augmentation import (
    AugInput,
    Augmentation,
    AugmentationList,
    StandardAugInput,
    TransformGen,
    apply_augmentations,
    apply_transform_gens,
)
from det.data.transforms.augmentation_impl import (
    FixedSizeCrop,
    MinIoURandomCrop,
    RandomApply,
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomCrop_CategoryAreaConstraint,
    RandomExtent,
    RandomFlip,
    RandomLighting,
    RandomResize,
    RandomRotation,
    RandomSaturation,
    Resize,
    ResizeScale,
    ResizeShortestEdge,
)
from det.data.transforms.transform import (
    BlendTransform,
    ColorTransform,
    CropTransform,
    ExtentTransform,
    GridSampleTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    PILColorTransform,
    ResizeTransform,
    RotationTransform,
    ScaleTransform,
    Transform,
    TransformList,
    VFlipTransform,
)

__all__ = [
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "BlendTransform",
    "ColorTransform",
    "CropTransform",
    "ExtentTransform",
    "FixedSizeCrop",
    "GridSampleTransform",
    "HFlipTransform",
    "MinIoURandomCrop",
    "NoOpTransform",
    "PILColorTransform",
    "PadTransform",
    "RandomApply",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomCrop_CategoryAreaConstraint",
    "RandomExtent",
    "RandomFlip",
    "RandomLighting",
    "RandomResize",
    "RandomRotation",
    "RandomSaturation",
    "Resize",
    "ResizeScale",
    "ResizeShortestEdge",
    "ResizeTransform",
    "RotationTransform",
    "ScaleTransform",
    "StandardAugInput",
    "Transform",
    "TransformGen",
    "TransformList",
    "VFlipTransform",
    "apply_augmentations",
    "apply_transform_gens",
]
