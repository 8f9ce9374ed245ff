"""Random augmentations of detectron2's ``data.transforms``: flips, crops, resizes, colour jitter."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from PIL import Image

from det.core.transforms import Augmentation, ResizeShortestEdge
from det.engine.data.transforms.transform import (
    BlendTransform,
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    RotationTransform,
    TransformList,
    VFlipTransform,
)

__all__ = [
    "FixedSizeCrop",
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
]


def _image_hw(image: Any, owner: str) -> tuple[int, int]:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise TypeError(
            f"{owner} needs a numpy image (H,W) or (H,W,C), got {getattr(image, 'shape', type(image).__name__)}"
        )
    return int(image.shape[0]), int(image.shape[1])


def _input_args_of(aug: Any) -> tuple[str, ...]:
    """The input attributes ``aug.get_transform`` reads (declared, else its positional parameters)."""
    declared = getattr(aug, "input_args", None)
    if declared is not None:
        return tuple(declared)
    if not hasattr(aug, "get_transform"):
        return ()
    params = inspect.signature(aug.get_transform).parameters.values()
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


class RandomApply(Augmentation):
    """Apply ``tfm_or_aug`` with probability ``prob``, else do nothing.

    RandomApply(RandomBrightness(0.8, 1.2), prob=0.3)
    """

    def __init__(self, tfm_or_aug: Any, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomApply: probability must be between 0.0 and 1.0 (given: {prob})")
        if not (isinstance(tfm_or_aug, Augmentation) or hasattr(tfm_or_aug, "apply_image")):
            raise TypeError(
                f"RandomApply wraps an Augmentation or Transform, got {type(tfm_or_aug).__name__}"
            )
        self.aug = tfm_or_aug
        self.prob = prob
        self.input_args = _input_args_of(tfm_or_aug)

    def get_transform(self, *args: Any) -> Any:
        do = np.random.uniform() < self.prob
        if not do:
            return NoOpTransform()
        if hasattr(self.aug, "get_transform"):
            return self.aug.get_transform(*args)
        return self.aug

    def __repr__(self) -> str:
        return f"RandomApply({self.aug!r}, prob={self.prob})"


class RandomFlip(Augmentation):
    """Flip horizontally (default) or vertically with probability ``prob``.

    RandomFlip(prob=0.5)                                  # horizontal
    RandomFlip(prob=1.0, horizontal=False, vertical=True)
    """

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False) -> None:
        if horizontal and vertical:
            raise ValueError("Cannot do both horiz and vert. Please use two Flip instead.")
        if not horizontal and not vertical:
            raise ValueError("At least one of horiz or vert has to be True!")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomFlip: prob must be in [0, 1], got {prob}")
        self.prob = prob
        self.horizontal = horizontal
        self.vertical = vertical

    def get_transform(self, image: np.ndarray) -> Any:
        h, w = _image_hw(image, "RandomFlip")
        do = np.random.uniform() < self.prob
        if not do:
            return NoOpTransform()
        if self.horizontal:
            return HFlipTransform(w)
        return VFlipTransform(h)

    def __repr__(self) -> str:
        return f"RandomFlip(prob={self.prob}, horizontal={self.horizontal}, vertical={self.vertical})"


class Resize(Augmentation):
    """Resize to a fixed ``shape`` (h, w), or a square when given an int.

    Resize((480, 640))
    """

    def __init__(self, shape: int | tuple[int, int], interp: int = Image.Resampling.BILINEAR) -> None:
        if isinstance(shape, int):
            shape = (shape, shape)
        shape = tuple(shape)
        if len(shape) != 2 or any(int(s) <= 0 for s in shape):
            raise ValueError(f"Resize: shape must be (h, w) of positive ints, got {shape}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Any:
        h, w = _image_hw(image, "Resize")
        return ResizeTransform(h, w, self.shape[0], self.shape[1], self.interp)

    def __repr__(self) -> str:
        return f"Resize(shape={self.shape})"


_CROP_TYPES = ("relative_range", "relative", "absolute", "absolute_range")


class RandomCrop(Augmentation):
    """Crop a random window whose size depends on ``crop_type``:

    - "relative": ``(H*ch, W*cw)`` for ``crop_size=(ch, cw)`` in (0, 1];
    - "relative_range": uniformly in ``[ch, 1] x [cw, 1]`` of (H, W);
    - "absolute": ``(min(ch, H), min(cw, W))`` pixels;
    - "absolute_range": ``ch, cw`` uniform integers in ``[min(H or W, lo), min(H or W, hi)]``.

        RandomCrop("relative_range", (0.9, 0.9))
    """

    def __init__(self, crop_type: str, crop_size: tuple[float, float]) -> None:
        if crop_type not in _CROP_TYPES:
            raise ValueError(f"RandomCrop: crop_type must be one of {_CROP_TYPES}, got {crop_type!r}")
        crop_size = tuple(crop_size)
        if len(crop_size) != 2:
            raise ValueError(f"RandomCrop: crop_size must have 2 numbers, got {crop_size}")
        if crop_type.startswith("relative") and not all(0 < c <= 1 for c in crop_size):
            raise ValueError(f"RandomCrop({crop_type!r}): crop_size must be in (0, 1], got {crop_size}")
        if crop_type == "absolute_range" and crop_size[0] > crop_size[1]:
            raise ValueError(
                f"RandomCrop('absolute_range'): needs crop_size (min, max) with min <= max, got {crop_size}"
            )
        self.crop_type = crop_type
        self.crop_size = crop_size

    def get_transform(self, image: np.ndarray) -> Any:
        h, w = _image_hw(image, "RandomCrop")
        croph, cropw = self.get_crop_size((h, w))
        if not (h >= croph and w >= cropw):
            raise AssertionError(f"Shape computation in {self} has bugs.")
        h0 = np.random.randint(h - croph + 1)
        w0 = np.random.randint(w - cropw + 1)
        return CropTransform(w0, h0, cropw, croph, orig_w=w, orig_h=h)

    def get_crop_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the crop for an image of ``image_size`` (h, w)."""
        h, w = image_size
        if self.crop_type == "relative":
            ch, cw = self.crop_size
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "relative_range":
            crop_size = np.asarray(self.crop_size, dtype=np.float32)
            ch, cw = crop_size + np.random.rand(2) * (1 - crop_size)
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "absolute":
            return min(int(self.crop_size[0]), h), min(int(self.crop_size[1]), w)
        lo, hi = int(self.crop_size[0]), int(self.crop_size[1])
        ch = np.random.randint(min(h, lo), min(h, hi) + 1)
        cw = np.random.randint(min(w, lo), min(w, hi) + 1)
        return int(ch), int(cw)

    def __repr__(self) -> str:
        return f"RandomCrop(crop_type={self.crop_type!r}, crop_size={self.crop_size})"


def _check_range(lo: float, hi: float, owner: str) -> None:
    if lo > hi:
        raise ValueError(f"{owner}: intensity_min ({lo}) must not exceed intensity_max ({hi})")


class RandomContrast(Augmentation):
    """Scale contrast around the image mean by a factor uniform in [intensity_min, intensity_max]
    (1 keeps the image, 0 gives a flat image of its mean).

        RandomContrast(0.5, 1.5)
    """

    def __init__(self, intensity_min: float, intensity_max: float) -> None:
        _check_range(intensity_min, intensity_max, "RandomContrast")
        self.intensity_min, self.intensity_max = intensity_min, intensity_max

    def get_transform(self, image: np.ndarray) -> Any:
        _image_hw(image, "RandomContrast")
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        return BlendTransform(src_image=image.mean(), src_weight=1 - w, dst_weight=w)

    def __repr__(self) -> str:
        return f"RandomContrast(intensity_min={self.intensity_min}, intensity_max={self.intensity_max})"


class RandomBrightness(Augmentation):
    """Scale intensities by a factor uniform in [intensity_min, intensity_max].

    RandomBrightness(0.8, 1.2)
    """

    def __init__(self, intensity_min: float, intensity_max: float) -> None:
        _check_range(intensity_min, intensity_max, "RandomBrightness")
        self.intensity_min, self.intensity_max = intensity_min, intensity_max

    def get_transform(self, image: np.ndarray) -> Any:
        _image_hw(image, "RandomBrightness")
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        return BlendTransform(src_image=0, src_weight=1 - w, dst_weight=w)

    def __repr__(self) -> str:
        return f"RandomBrightness(intensity_min={self.intensity_min}, intensity_max={self.intensity_max})"


class RandomSaturation(Augmentation):
    """Blend an RGB image with its grayscale version: factor 0 is gray, 1 unchanged, >1 more
    saturated. Needs 3 channels in RGB order.

        RandomSaturation(0.5, 1.5)
    """

    def __init__(self, intensity_min: float, intensity_max: float) -> None:
        _check_range(intensity_min, intensity_max, "RandomSaturation")
        self.intensity_min, self.intensity_max = intensity_min, intensity_max

    def get_transform(self, image: np.ndarray) -> Any:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"RandomSaturation only works on RGB images (H,W,3), got shape {getattr(image, 'shape', None)}"
            )
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        grayscale = image.dot([0.299, 0.587, 0.114])[:, :, np.newaxis]
        return BlendTransform(src_image=grayscale, src_weight=1 - w, dst_weight=w)

    def __repr__(self) -> str:
        return f"RandomSaturation(intensity_min={self.intensity_min}, intensity_max={self.intensity_max})"


class RandomLighting(Augmentation):
    """AlexNet-style PCA lighting noise: add ``eigen_vecs @ (N(0, scale) * eigen_vals)`` to every
    pixel (ImageNet RGB statistics by default).

        RandomLighting(scale=0.1)
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.eigen_vecs = np.array(
            [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
        )
        self.eigen_vals = np.array([0.2175, 0.0188, 0.0045])

    def get_transform(self, image: np.ndarray) -> Any:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"RandomLighting only works on RGB images (H,W,3), got shape {getattr(image, 'shape', None)}"
            )
        weights = np.random.normal(scale=self.scale, size=3)
        return BlendTransform(
            src_image=self.eigen_vecs.dot(weights * self.eigen_vals), src_weight=1.0, dst_weight=1.0
        )

    def __repr__(self) -> str:
        return f"RandomLighting(scale={self.scale})"


class RandomRotation(Augmentation):
    """Rotate by a random angle (degrees, counter-clockwise): uniform in ``angle=(min, max)``
    with sample_style "range", one of ``angle`` with "choice". ``center`` is relative
    ((x, y) in [0, 1]): a range ``[[xmin, ymin], [xmax, ymax]]`` or a list of choices.

        RandomRotation([-15, 15])
    """

    def __init__(
        self,
        angle: Any,
        expand: bool = True,
        center: Any = None,
        sample_style: str = "range",
        interp: Any = None,
    ) -> None:
        if sample_style not in ("range", "choice"):
            raise ValueError(f"sample_style must be 'range' or 'choice', got {sample_style!r}")
        self.is_range = sample_style == "range"
        if isinstance(angle, (float, int)):
            angle = (angle, angle)
        if center is not None and isinstance(center[0], (float, int)):
            center = (center, center)
        self.angle, self.expand, self.center, self.interp = angle, expand, center, interp

    def get_transform(self, image: np.ndarray) -> Any:
        h, w = _image_hw(image, "RandomRotation")
        center = None
        if self.is_range:
            angle = np.random.uniform(self.angle[0], self.angle[1])
            if self.center is not None:
                center = (
                    np.random.uniform(self.center[0][0], self.center[1][0]),
                    np.random.uniform(self.center[0][1], self.center[1][1]),
                )
        else:
            angle = np.random.choice(self.angle)
            if self.center is not None:
                center = self.center[np.random.randint(len(self.center))]
        if center is not None:
            center = (w * center[0], h * center[1])
        if angle % 360 == 0:
            return NoOpTransform()
        return RotationTransform(h, w, angle, expand=self.expand, center=center, interp=self.interp)

    def __repr__(self) -> str:
        return f"RandomRotation(angle={self.angle}, expand={self.expand})"


class ResizeScale(Augmentation):
    """Resize so the image fits a ``(target_height, target_width)`` box scaled by a factor
    uniform in [min_scale, max_scale], keeping the aspect ratio (large-scale jitter).

        ResizeScale(0.1, 2.0, 1024, 1024)
    """

    def __init__(
        self,
        min_scale: float,
        max_scale: float,
        target_height: int,
        target_width: int,
        interp: int = Image.Resampling.BILINEAR,
    ) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"ResizeScale needs 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale = min_scale, max_scale
        self.target_height, self.target_width, self.interp = target_height, target_width, interp

    def _get_resize(self, image: np.ndarray, scale: float) -> Any:
        input_size = _image_hw(image, "ResizeScale")
        target_size = (self.target_height, self.target_width)
        target_scale_size = np.multiply(target_size, scale)
        output_scale = np.minimum(target_scale_size[0] / input_size[0], target_scale_size[1] / input_size[1])
        output_size = np.round(np.multiply(input_size, output_scale)).astype(int)
        return ResizeTransform(
            input_size[0], input_size[1], int(output_size[0]), int(output_size[1]), self.interp
        )

    def get_transform(self, image: np.ndarray) -> Any:
        random_scale = np.random.uniform(self.min_scale, self.max_scale)
        return self._get_resize(image, random_scale)

    def __repr__(self) -> str:
        return f"ResizeScale(min_scale={self.min_scale}, max_scale={self.max_scale}, target=({self.target_height}, {self.target_width}))"


class FixedSizeCrop(Augmentation):
    """Crop a random ``crop_size`` (h, w) window when the image is larger, and pad (bottom/right,
    with ``pad_value`` / ``seg_pad_value``) up to ``crop_size`` when it is smaller.

        FixedSizeCrop((1024, 1024))
    """

    def __init__(
        self, crop_size: tuple[int, int], pad: bool = True, pad_value: float = 128.0, seg_pad_value: int = 255
    ) -> None:
        if len(tuple(crop_size)) != 2:
            raise ValueError(f"FixedSizeCrop: crop_size must be (h, w), got {crop_size}")
        self.crop_size = tuple(int(c) for c in crop_size)
        self.pad, self.pad_value, self.seg_pad_value = pad, pad_value, seg_pad_value

    def _get_crop(self, image: np.ndarray) -> Any:
        input_size = _image_hw(image, "FixedSizeCrop")
        output_size = self.crop_size
        max_offset = np.maximum(np.subtract(input_size, output_size), 0)
        offset = np.round(np.multiply(max_offset, np.random.uniform(0.0, 1.0))).astype(int)
        return CropTransform(
            int(offset[1]), int(offset[0]), output_size[1], output_size[0], input_size[1], input_size[0]
        )

    def _get_pad(self, image: np.ndarray) -> Any:
        input_size = _image_hw(image, "FixedSizeCrop")
        output_size = self.crop_size
        pad_size = np.maximum(np.subtract(output_size, input_size), 0)
        original_size = np.minimum(input_size, output_size)
        return PadTransform(
            0,
            0,
            int(pad_size[1]),
            int(pad_size[0]),
            int(original_size[1]),
            int(original_size[0]),
            self.pad_value,
            self.seg_pad_value,
        )

    def get_transform(self, image: np.ndarray) -> Any:
        transforms = [self._get_crop(image)]
        if self.pad:
            transforms.append(self._get_pad(image))
        return TransformList(transforms)

    def __repr__(self) -> str:
        return f"FixedSizeCrop(crop_size={self.crop_size}, pad={self.pad})"
