"""Deterministic image/coordinate transforms and the augmentations that pick them.

A minimal core of detectron2's ``detectron2.data.transforms`` (itself built on fvcore's
Transform): what the test-time resize of DefaultPredictor needs. det-engine adds the training
augmentations on top of these bases.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

__all__ = [
    "Augmentation",
    "NoOpTransform",
    "ResizeShortestEdge",
    "ResizeTransform",
    "Transform",
]


def _repr_from_init_args(obj) -> str:
    """``Name(arg=value, ...)`` for the ``__init__`` arguments ``obj`` keeps as attributes."""
    try:
        sig = inspect.signature(obj.__init__)
    except (TypeError, ValueError):
        return object.__repr__(obj)
    args = [f"{n}={getattr(obj, n)!r}" for n in sig.parameters if hasattr(obj, n)]
    return f"{type(obj).__name__}({', '.join(args)})"


class Transform:
    """A deterministic transformation of an image and of the coordinates that go with it.

    Invariant: every ``apply_*`` maps data of the source image to the same place in the target
    image; coordinates are (N, 2) float arrays of (x, y) in absolute pixels.

        t = ResizeTransform(h=480, w=640, new_h=240, new_w=320)
        small = t.apply_image(img)                           # (240, 320, 3)
        boxes = t.apply_box(np.array([[0, 0, 64, 48]]))      # [[0, 0, 32, 24]]
    """

    def _set_attributes(self, params: dict | None = None) -> None:
        # ``self._set_attributes(locals())`` in __init__ stores every argument as an attribute
        if params:
            for k, v in params.items():
                if k != "self" and not k.startswith("_"):
                    setattr(self, k, v)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        """Transform an (H, W) or (H, W, C) image (uint8 in [0, 255] or float in [0, 1])."""
        raise NotImplementedError

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """Transform (N, 2) (x, y) coordinates; may modify ``coords`` in place."""
        raise NotImplementedError

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        """Transform an (H, W) label map; by default like an image."""
        return self.apply_image(segmentation)

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        """Transform (N, 4) XYXY boxes: the box around the transformed four corners (float64
        boxes stay float64, any other dtype becomes float32)."""
        box = np.asarray(box)
        box = box.astype(np.float64 if box.dtype == np.float64 else np.float32).reshape(-1, 4)
        idxs = np.array([(0, 1), (2, 1), (0, 3), (2, 3)]).flatten()
        coords = self.apply_coords(box[:, idxs].reshape(-1, 2)).reshape((-1, 4, 2))
        return np.concatenate((coords.min(axis=1), coords.max(axis=1)), axis=1)

    def apply_polygons(self, polygons: list) -> list:
        """Transform a list of polygons, each (N_i, 2) points or a flat [x0, y0, x1, y1, ...]."""
        return [self.apply_coords(np.asarray(p).reshape(-1, 2)) for p in polygons]

    def inverse(self) -> Transform:
        """The transform that undoes this one (when it exists)."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    @classmethod
    def register_type(cls, data_type: str, func: Callable[[Any, Any], Any]) -> None:
        """Teach this transform class a new kind of data: ``func(transform, data)`` becomes the
        method ``apply_<data_type>`` (fvcore's ``Transform.register_type``)::

            HFlipTransform.register_type("voxel", lambda t, v: v[..., ::-1])
            HFlipTransform(8).apply_voxel(v)
        """
        if not callable(func):
            raise TypeError(f"register_type: func must be callable as func(transform, data), got {func!r}")
        if not data_type.isidentifier():
            raise ValueError(f"register_type: data_type must be a Python identifier, got {data_type!r}")
        setattr(cls, f"apply_{data_type}", func)

    def __repr__(self) -> str:
        return _repr_from_init_args(self)


class NoOpTransform(Transform):
    """The identity: every ``apply_*`` returns its input::

        t = NoOpTransform()
        t.apply_image(img) is img      # True
    """

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return img

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        return rotated_boxes

    def inverse(self) -> Transform:
        return self


_PIL_RESIZE_TO_INTERPOLATE_MODE = {
    Image.NEAREST: "nearest",
    Image.BILINEAR: "bilinear",
    Image.BICUBIC: "bicubic",
}


class ResizeTransform(Transform):
    """Resize an image from (h, w) to (new_h, new_w).

    Invariant: uint8 images go through PIL (``interp``, default BILINEAR) exactly as detectron2
    resizes them, so pixels match its preprocessing; other dtypes use ``F.interpolate``;
    coordinates scale by new_w / w and new_h / h.

        t = ResizeTransform(h=427, w=320, new_h=800, new_w=600)
        img800 = t.apply_image(img)            # (800, 600, 3) uint8
        t.inverse().apply_image(img800)        # back to (427, 320, 3)
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp=None):
        super().__init__()
        if interp is None:
            interp = Image.BILINEAR
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        if not isinstance(img, np.ndarray):
            raise TypeError(
                f"ResizeTransform.apply_image expects a numpy array (H, W[, C]), got {type(img).__name__}"
            )
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"ResizeTransform was made for images of (h, w) = {(self.h, self.w)}, got {img.shape[:2]}"
            )
        if len(img.shape) > 4:
            raise ValueError(
                f"ResizeTransform.apply_image expects at most 4 dimensions, got shape {img.shape}"
            )
        interp_method = interp if interp is not None else self.interp

        if img.dtype == np.uint8:
            if len(img.shape) > 2 and img.shape[2] == 1:
                pil_image = Image.fromarray(img[:, :, 0], mode="L")
            else:
                pil_image = Image.fromarray(img)
            pil_image = pil_image.resize((self.new_w, self.new_h), interp_method)
            ret = np.asarray(pil_image)
            if len(img.shape) > 2 and img.shape[2] == 1:
                ret = np.expand_dims(ret, -1)
        else:
            # PIL resizes only uint8 (multi-channel) images; torch does the rest
            if any(x < 0 for x in img.strides):
                img = np.ascontiguousarray(img)
            img = torch.from_numpy(img)
            shape = list(img.shape)
            shape_4d = shape[:2] + [1] * (4 - len(shape)) + shape[2:]
            img = img.view(shape_4d).permute(2, 3, 0, 1)  # hw(c) -> nchw
            mode = _PIL_RESIZE_TO_INTERPOLATE_MODE[interp_method]
            align_corners = None if mode == "nearest" else False
            img = F.interpolate(img, (self.new_h, self.new_w), mode=mode, align_corners=align_corners)
            shape[:2] = (self.new_h, self.new_w)
            ret = img.permute(2, 3, 0, 1).view(shape).numpy()  # nchw -> hw(c)

        return ret

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords


    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        """(N, 5) [cx, cy, w, h, angle in degrees] boxes, in place: the centre scales; a box
        scaled unevenly becomes the rotated box whose sides are its scaled sides (detectron2's
        formula, exact for a rectangle's edge vectors)."""
        sx, sy = self.new_w * 1.0 / self.w, self.new_h * 1.0 / self.h
        rotated_boxes[:, 0] *= sx
        rotated_boxes[:, 1] *= sy
        theta = rotated_boxes[:, 4] * np.pi / 180.0
        c, s = np.cos(theta), np.sin(theta)
        rotated_boxes[:, 2] *= np.sqrt(np.square(sx * c) + np.square(sy * s))
        rotated_boxes[:, 3] *= np.sqrt(np.square(sx * s) + np.square(sy * c))
        rotated_boxes[:, 4] = np.arctan2(sx * s, sy * c) * 180 / np.pi
        return rotated_boxes
    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        # labels must not be blended
        return self.apply_image(segmentation, interp=Image.NEAREST)

    def inverse(self) -> Transform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


class Augmentation:
    """Picks a :class:`Transform` from the input (and randomness): ``get_transform(image) -> Transform``.

    Invariant: an Augmentation never changes data itself; the Transform it returns does, and can
    be applied the same way to every annotation of the image.

        aug = ResizeShortestEdge(800, max_size=1333)
        tfm = aug.get_transform(img)
        img = tfm.apply_image(img)
    """

    input_args: tuple[str, ...] | None = None
    """Attribute names of the input object passed to ``get_transform`` (default: its parameters)."""

    def _init(self, params: dict | None = None) -> None:
        if params:
            for k, v in params.items():
                if k != "self" and not k.startswith("_"):
                    setattr(self, k, v)

    def get_transform(self, *args) -> Transform:
        raise NotImplementedError

    def __call__(self, aug_input) -> Transform:
        """Pick a transform from ``aug_input``'s attributes (e.g. ``.image``), apply it to the input
        in place with ``aug_input.transform(tfm)`` and return it."""
        names = self.input_args
        if names is None:
            names = tuple(
                p.name
                for p in inspect.signature(self.get_transform).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            )
        missing = [n for n in names if not hasattr(aug_input, n)]
        if missing:
            raise AttributeError(
                f"{type(self).__name__}.get_transform needs {names}, but the input has no attribute {missing}"
            )
        tfm = self.get_transform(*[getattr(aug_input, n) for n in names])
        if not isinstance(tfm, Transform):
            raise TypeError(
                f"{type(self).__name__}.get_transform must return a Transform, got {type(tfm).__name__}"
            )
        aug_input.transform(tfm)
        return tfm

    def _rand_range(self, low=1.0, high=None, size=None):
        """Uniform float(s) in [low, high) (or [0, low) with one argument), from numpy's RNG."""
        if high is None:
            low, high = 0, low
        if size is None:
            size = []
        return np.random.uniform(low, high, size)

    def __repr__(self) -> str:
        return _repr_from_init_args(self)


class ResizeShortestEdge(Augmentation):
    """Resize so that the shorter side is a chosen length, unless the longer side would exceed
    ``max_size`` (then that side becomes ``max_size``); aspect ratio kept.

    Invariant: ``get_output_shape`` rounds half up (``int(x + 0.5)``), as detectron2; a sampled
    length of 0 gives a NoOpTransform.

        aug = ResizeShortestEdge(short_edge_length=(800, 800), max_size=1333)
        ResizeShortestEdge.get_output_shape(480, 640, 800, 1333)   # (800, 1067)
        tfm = aug.get_transform(img)                               # a ResizeTransform
    """

    def __init__(
        self,
        short_edge_length,
        max_size: int = sys.maxsize,
        sample_style: str = "range",
        interp=Image.BILINEAR,
    ):
        """
        Args:
            short_edge_length (int or list[int]): with "range", a (min, max) range to sample the
                length from (inclusive); with "choice", the lengths to choose among.
            max_size: upper bound of the longer side.
            sample_style: "range" or "choice".
            interp: PIL interpolation method.
        """
        super().__init__()
        if sample_style not in ("range", "choice"):
            raise ValueError(f"sample_style must be 'range' or 'choice', got {sample_style!r}")
        self.is_range = sample_style == "range"
        if isinstance(short_edge_length, int):
            short_edge_length = (short_edge_length, short_edge_length)
        if self.is_range and len(short_edge_length) != 2:
            raise ValueError(
                f"short_edge_length must be two values using 'range' sample style. Got {short_edge_length}!"
            )
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self.is_range:
            size = np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1)
        else:
            size = np.random.choice(self.short_edge_length)
        if size == 0:
            return NoOpTransform()

        newh, neww = ResizeShortestEdge.get_output_shape(h, w, size, self.max_size)
        return ResizeTransform(h, w, newh, neww, self.interp)

    @staticmethod
    def get_output_shape(oldh: int, oldw: int, short_edge_length: int, max_size: int) -> tuple[int, int]:
        """The (new_h, new_w) of an (oldh, oldw) image for the given short side and max size."""
        h, w = oldh, oldw
        size = short_edge_length * 1.0
        scale = size / min(h, w)
        if h < w:
            newh, neww = size, scale * w
        else:
            newh, neww = scale * h, size
        if max(newh, neww) > max_size:
            scale = max_size * 1.0 / max(newh, neww)
            newh = newh * scale
            neww = neww * scale
        neww = int(neww + 0.5)
        newh = int(newh + 0.5)
        return (newh, neww)
