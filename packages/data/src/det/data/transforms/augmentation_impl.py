"""Random augmentations of detectron2's ``data.transforms``: flips, crops (plain, semantic-area
constrained, SSD min-IoU, extents), resizes, colour jitter."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from PIL import Image

from det.core.transforms import Augmentation, ResizeShortestEdge
from det.data.transforms.transform import (
    BlendTransform,
    CropTransform,
    ExtentTransform,
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
    "MinIoURandomCrop",
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


class _RandomIntensity(Augmentation):
    """The colour augmentations that blend with a factor drawn uniformly from
    [intensity_min, intensity_max] (RandomContrast, RandomBrightness, RandomSaturation)."""

    def __init__(self, intensity_min: float, intensity_max: float) -> None:
        _check_range(intensity_min, intensity_max, type(self).__name__)
        self.intensity_min, self.intensity_max = intensity_min, intensity_max

    def __repr__(self) -> str:
        return f"{type(self).__name__}(intensity_min={self.intensity_min}, intensity_max={self.intensity_max})"


class RandomContrast(_RandomIntensity):
    """Scale contrast around the image mean by a factor uniform in [intensity_min, intensity_max]
    (1 keeps the image, 0 gives a flat image of its mean).

        RandomContrast(0.5, 1.5)
    """

    def get_transform(self, image: np.ndarray) -> Any:
        _image_hw(image, "RandomContrast")
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        return BlendTransform(src_image=image.mean(), src_weight=1 - w, dst_weight=w)


class RandomBrightness(_RandomIntensity):
    """Scale intensities by a factor uniform in [intensity_min, intensity_max].

    RandomBrightness(0.8, 1.2)
    """

    def get_transform(self, image: np.ndarray) -> Any:
        _image_hw(image, "RandomBrightness")
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        return BlendTransform(src_image=0, src_weight=1 - w, dst_weight=w)


class RandomSaturation(_RandomIntensity):
    """Blend an RGB image with its grayscale version: factor 0 is gray, 1 unchanged, >1 more
    saturated. Needs 3 channels in RGB order.

        RandomSaturation(0.5, 1.5)
    """

    def get_transform(self, image: np.ndarray) -> Any:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"RandomSaturation only works on RGB images (H,W,3), got shape {getattr(image, 'shape', None)}"
            )
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        grayscale = image.dot([0.299, 0.587, 0.114])[:, :, np.newaxis]
        return BlendTransform(src_image=grayscale, src_weight=1 - w, dst_weight=w)


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


def _pair(value: Any, owner: str, name: str) -> tuple[float, float]:
    try:
        pair = tuple(float(v) for v in value)
    except TypeError:
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{owner}: {name} must be two numbers, got {value!r}")
    return pair[0], pair[1]


class RandomExtent(Augmentation):
    """Cut a random rectangle out of the image: the whole image scaled about its centre by a
    factor uniform in ``scale_range``, then shifted by ``(w / 2 * U(-sx, sx), h / 2 * U(-sy, sy))``
    for ``shift_range = (sx, sy)``. Parts outside the image come out black (0); the output has
    the rectangle's size, so scale 1 and shift 0 give the image unchanged.

        RandomExtent(scale_range=(0.8, 1.2), shift_range=(0.1, 0.1))  # an ExtentTransform
    """

    def __init__(self, scale_range: tuple[float, float], shift_range: tuple[float, float]) -> None:
        """
        Args:
            scale_range: (low, high), 0 < low <= high, the rectangle's size relative to the image.
            shift_range: (sx, sy) >= 0, the largest shift as a fraction of half the image size.
        """
        lo, hi = _pair(scale_range, "RandomExtent", "scale_range")
        if not 0 < lo <= hi:
            raise ValueError(
                f"RandomExtent: scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}"
            )
        sx, sy = _pair(shift_range, "RandomExtent", "shift_range")
        if sx < 0 or sy < 0:
            raise ValueError(
                f"RandomExtent: shift_range must be (x, y) fractions >= 0 (0 = centred), got {shift_range!r}"
            )
        self.scale_range = (lo, hi)
        self.shift_range = (sx, sy)

    def get_transform(self, image: np.ndarray) -> Any:
        img_h, img_w = _image_hw(image, "RandomExtent")
        # The rectangle, centred on the origin, then scaled, shifted and moved onto the image.
        src_rect = np.array([-0.5 * img_w, -0.5 * img_h, 0.5 * img_w, 0.5 * img_h])
        src_rect *= np.random.uniform(self.scale_range[0], self.scale_range[1])
        src_rect[0::2] += self.shift_range[0] * img_w * (np.random.rand() - 0.5)
        src_rect[1::2] += self.shift_range[1] * img_h * (np.random.rand() - 0.5)
        src_rect[0::2] += 0.5 * img_w
        src_rect[1::2] += 0.5 * img_h
        out_h = max(1, int(src_rect[3] - src_rect[1]))
        out_w = max(1, int(src_rect[2] - src_rect[0]))
        return ExtentTransform(src_rect=tuple(float(v) for v in src_rect), output_size=(out_h, out_w))

    def __repr__(self) -> str:
        return f"RandomExtent(scale_range={self.scale_range}, shift_range={self.shift_range})"


class RandomCrop_CategoryAreaConstraint(Augmentation):
    """A :class:`RandomCrop` whose window keeps every semantic category below
    ``single_category_max_area`` of the crop (a crop filled by one class destabilises training).

    Invariant: up to 10 windows are drawn; the first with at least two counted categories and
    none covering ``>= single_category_max_area`` of the counted pixels is taken, else the 10th
    window (as detectron2). ``ignored_category`` pixels are not counted. A limit >= 1.0 is a
    plain RandomCrop. Reads ``image`` and ``sem_seg`` of the :class:`AugInput`.

        aug = RandomCrop_CategoryAreaConstraint("absolute", (512, 512), 0.75, ignored_category=255)
        tfm = aug(AugInput(image, sem_seg=labels))
    """

    input_args = ("image", "sem_seg")

    def __init__(
        self,
        crop_type: str,
        crop_size: tuple[float, float],
        single_category_max_area: float = 1.0,
        ignored_category: int | None = None,
    ) -> None:
        """
        Args:
            crop_type, crop_size: as in :class:`RandomCrop`.
            single_category_max_area: largest allowed area ratio of one category, in (0, 1];
                1.0 disables the constraint.
            ignored_category: a label allowed to exceed the ratio (usually the ignore label).
        """
        self.crop_aug = RandomCrop(crop_type, crop_size)
        if not single_category_max_area > 0:
            raise ValueError(
                "RandomCrop_CategoryAreaConstraint: single_category_max_area must be > 0 "
                f"(1.0 disables the constraint), got {single_category_max_area!r}"
            )
        if ignored_category is not None and int(ignored_category) != ignored_category:
            raise ValueError(
                f"RandomCrop_CategoryAreaConstraint: ignored_category must be an integer label or None, "
                f"got {ignored_category!r}"
            )
        self.crop_type, self.crop_size = crop_type, self.crop_aug.crop_size
        self.single_category_max_area = float(single_category_max_area)
        self.ignored_category = ignored_category

    def get_transform(self, image: np.ndarray, sem_seg: np.ndarray | None) -> Any:
        if self.single_category_max_area >= 1.0:
            return self.crop_aug.get_transform(image)
        if sem_seg is None:
            raise ValueError(
                "RandomCrop_CategoryAreaConstraint needs a semantic segmentation: build the input as "
                "AugInput(image, sem_seg=labels), or use RandomCrop when there is none"
            )
        sem_seg = np.asarray(sem_seg)
        h, w = sem_seg.shape[:2]
        for _ in range(10):
            croph, cropw = self.crop_aug.get_crop_size((h, w))
            y0 = np.random.randint(h - croph + 1)
            x0 = np.random.randint(w - cropw + 1)
            labels, counts = np.unique(sem_seg[y0 : y0 + croph, x0 : x0 + cropw], return_counts=True)
            if self.ignored_category is not None:
                counts = counts[labels != self.ignored_category]
            if len(counts) > 1 and np.max(counts) < np.sum(counts) * self.single_category_max_area:
                break
        return CropTransform(int(x0), int(y0), int(cropw), int(croph), orig_w=w, orig_h=h)

    def __repr__(self) -> str:
        return (
            f"RandomCrop_CategoryAreaConstraint(crop_type={self.crop_type!r}, crop_size={self.crop_size}, "
            f"single_category_max_area={self.single_category_max_area}, ignored_category={self.ignored_category})"
        )


class RandomResize(Augmentation):
    """Resize to one of ``shape_list``'s (h, w), chosen uniformly.

    RandomResize([(480, 640), (600, 800)])
    """

    def __init__(self, shape_list: list[tuple[int, int]], interp: int = Image.Resampling.BILINEAR) -> None:
        shapes = []
        for shape in shape_list:
            pair = tuple(shape) if isinstance(shape, (tuple, list)) else ()
            if len(pair) != 2 or any(int(s) != s or s <= 0 for s in pair):
                raise ValueError(
                    f"RandomResize: shape_list must hold (h, w) pairs of positive ints, got {shape!r}"
                )
            shapes.append((int(pair[0]), int(pair[1])))
        if not shapes:
            raise ValueError("RandomResize: shape_list is empty; give at least one (h, w)")
        self.shape_list = shapes
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Any:
        h, w = _image_hw(image, "RandomResize")
        new_h, new_w = self.shape_list[np.random.randint(low=0, high=len(self.shape_list))]
        return ResizeTransform(h, w, new_h, new_w, self.interp)

    def __repr__(self) -> str:
        return f"RandomResize(shape_list={self.shape_list})"


def _pairwise_iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) IoU of XYXY boxes ``a`` (n, 4) and ``b`` (m, 4); 0 where they do not intersect."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    return np.where(inter > 0, iou, 0.0)


class MinIoURandomCrop(Augmentation):
    """SSD's random crop: a window that overlaps every box with IoU >= a threshold drawn from
    ``(1, *min_ious, 0)`` (1 means "keep the whole image") and holds at least one box centre.

    Invariant: the window is ``min_crop_size``-to-1 times the image in each side with
    height / width in [0.5, 2]; each threshold gets ``crop_trials`` windows, and up to
    ``mode_trials`` thresholds are drawn; with no boxes input (``boxes`` None), or when every
    trial fails, the image is kept (NoOpTransform). Reads ``image`` and ``boxes`` (N, 4 XYXY).
    Unlike detectron2 (which returns None when every trial fails, places windows from
    ``uniform(w - new_w)``, i.e. between 1 and w - new_w, and crops int(new_w) where it judged
    int(left + new_w) - int(left)), windows are placed uniformly in [0, w - new_w] and the crop
    is exactly the pixel window that was judged.

        aug = MinIoURandomCrop(min_ious=(0.1, 0.3, 0.5), min_crop_size=0.3)
        tfm = aug(AugInput(image, boxes=boxes))  # CropTransform or NoOpTransform
    """

    input_args = ("image", "boxes")

    def __init__(
        self,
        min_ious: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        mode_trials: int = 1000,
        crop_trials: int = 50,
    ) -> None:
        """
        Args:
            min_ious: IoU thresholds in [0, 1] to draw from (with 1 = no crop and 0 = any overlap).
            min_crop_size: smallest side of the window relative to the image's, in (0, 1].
            mode_trials: how many thresholds to draw before giving up.
            crop_trials: how many windows to try per threshold.
        """
        min_ious = tuple(min_ious)
        if any(not 0 <= float(v) <= 1 for v in min_ious):
            raise ValueError(f"MinIoURandomCrop: min_ious must be IoU thresholds in [0, 1], got {min_ious}")
        if not 0 < min_crop_size <= 1:
            raise ValueError(
                f"MinIoURandomCrop: min_crop_size is a fraction of the image side in (0, 1], got {min_crop_size!r}"
            )
        for name, v in (("mode_trials", mode_trials), ("crop_trials", crop_trials)):
            if int(v) != v or v < 1:
                raise ValueError(f"MinIoURandomCrop: {name} must be a positive integer, got {v!r}")
        self.min_ious = min_ious
        self.sample_mode = (1, *min_ious, 0)
        self.min_crop_size = float(min_crop_size)
        self.mode_trials = int(mode_trials)
        self.crop_trials = int(crop_trials)

    def get_transform(self, image: np.ndarray, boxes: np.ndarray | None) -> Any:
        h, w = _image_hw(image, "MinIoURandomCrop")
        if boxes is None:
            return NoOpTransform()
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        n = self.crop_trials
        for _ in range(self.mode_trials):
            min_iou = self.sample_mode[np.random.randint(len(self.sample_mode))]
            if min_iou == 1:
                return NoOpTransform()
            # The crop_trials windows of one threshold are drawn and judged together; the first
            # one that passes is taken, as if they had been tried one by one.
            new_w = np.random.uniform(self.min_crop_size * w, w, n)
            new_h = np.random.uniform(self.min_crop_size * h, h, n)
            left = np.random.uniform(0.0, 1.0, n) * (w - new_w)
            top = np.random.uniform(0.0, 1.0, n) * (h - new_h)
            # Windows snap to whole pixels before they are judged, so the crop made is exactly
            # the window that passed the IoU and centre tests.
            patches = np.floor(np.stack([left, top, left + new_w, top + new_h], axis=1))
            ok = (new_h / new_w >= 0.5) & (new_h / new_w <= 2)
            ok &= (patches[:, 2] > patches[:, 0]) & (patches[:, 3] > patches[:, 1])
            if len(boxes) > 0:
                ok &= _pairwise_iou_xyxy(patches, boxes).min(axis=1) >= min_iou
                cx, cy = centers[None, :, 0], centers[None, :, 1]
                inside = (
                    (cx > patches[:, 0:1])
                    & (cy > patches[:, 1:2])
                    & (cx < patches[:, 2:3])
                    & (cy < patches[:, 3:4])
                )
                ok &= inside.any(axis=1)
            passed = np.flatnonzero(ok)
            if len(passed) > 0:
                x0, y0, x1, y1 = (int(v) for v in patches[passed[0]])
                return CropTransform(x0, y0, x1 - x0, y1 - y0, orig_w=w, orig_h=h)
        return NoOpTransform()

    def __repr__(self) -> str:
        return (
            f"MinIoURandomCrop(min_ious={self.min_ious}, min_crop_size={self.min_crop_size}, "
            f"mode_trials={self.mode_trials}, crop_trials={self.crop_trials})"
        )
