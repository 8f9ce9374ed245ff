"""Transforms and augmentations (detectron2's ``data.transforms``, with the fvcore transforms it
re-exports).

``Transform``, ``ResizeTransform``, ``Augmentation`` and ``ResizeShortestEdge`` come from
:mod:`det.core.transforms` (the predictor needs them without the engine); everything else is here.

    from det.data import transforms as T
    tfms = T.AugmentationList([T.ResizeShortestEdge(800, 1333), T.RandomFlip()])(T.AugInput(img))
"""

# detectron2's layout: each module's __all__ is the package's
from det.data.transforms import augmentation, augmentation_impl, transform
from det.data.transforms.augmentation import *  # noqa: F403
from det.data.transforms.augmentation_impl import *  # noqa: F403
from det.data.transforms.transform import *  # noqa: F403

__all__ = [*augmentation.__all__, *augmentation_impl.__all__, *transform.__all__]
