"""Deterministic transforms (flip, crop, pad, extent, scale, grid sample, blend, colour, lists of
them) over det.core's ``Transform``: detectron2's own and the fvcore ones it re-exports.

A transform is an already-decided operation: it maps an image and everything geometric in it
(coordinates, boxes, polygons, masks) consistently. Random choices live in augmentations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from det.core.transforms import NoOpTransform, ResizeTransform, Transform

__all__ = [
    "BlendTransform",
    "ColorTransform",
    "CropTransform",
    "ExtentTransform",
    "GridSampleTransform",
    "HFlipTransform",
    "NoOpTransform",
    "PILColorTransform",
    "PadTransform",
    "ResizeTransform",
    "RotationTransform",
    "ScaleTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "apply_box",
    "apply_polygons",
    "apply_segmentation",
]


# -- generic fallbacks, so any Transform (even a minimal one) maps boxes, polygons and masks ----


def apply_box(tfm: Any, box: np.ndarray) -> np.ndarray:
    """Boxes (N,4) XYXY_ABS through ``tfm``: its own ``apply_box`` when it has one, else the box
    enclosing the 4 transformed corners."""
    if hasattr(tfm, "apply_box"):
        return tfm.apply_box(box)
    box = np.asarray(box)
    box = box.astype(np.float64 if box.dtype == np.float64 else np.float32).reshape(-1, 4)
    idxs = np.array([(0, 1), (2, 1), (0, 3), (2, 3)]).flatten()
    coords = box[:, idxs].reshape(-1, 2)
    coords = tfm.apply_coords(coords).reshape((-1, 4, 2))
    return np.concatenate((coords.min(axis=1), coords.max(axis=1)), axis=1)


def apply_polygons(tfm: Any, polygons: list[np.ndarray]) -> list[np.ndarray]:
    """Polygons (each (K,2) xy) through ``tfm``."""
    if hasattr(tfm, "apply_polygons"):
        return tfm.apply_polygons(polygons)
    return [tfm.apply_coords(np.asarray(p, dtype=np.float64).reshape(-1, 2)) for p in polygons]


def apply_segmentation(tfm: Any, segmentation: np.ndarray) -> np.ndarray:
    """A label map or mask through ``tfm`` (nearest-neighbour for resizes)."""
    if hasattr(tfm, "apply_segmentation"):
        return tfm.apply_segmentation(segmentation)
    return tfm.apply_image(segmentation)


class TransformList(Transform):
    """A sequence of transforms applied in order; nested lists are flattened, so
    ``transforms`` holds only leaf transforms.

        tfms = TransformList([HFlipTransform(100), CropTransform(10, 0, 50, 50)])
        tfms.apply_coords(np.array([[20.0, 5.0]]))  # [[70., 5.]]
    """

    def __init__(self, transforms: list[Any]) -> None:
        tfms_flatten: list[Any] = []
        for t in transforms:
            if isinstance(t, TransformList):
                tfms_flatten.extend(t.transforms)
            elif isinstance(t, Transform) or (hasattr(t, "apply_image") and hasattr(t, "apply_coords")):
                tfms_flatten.append(t)
            else:
                raise TypeError(f"TransformList takes Transform objects, got {type(t).__name__}")
        self.transforms = tfms_flatten

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            img = t.apply_image(img)
        return img

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            coords = t.apply_coords(coords)
        return coords

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            box = apply_box(t, box)
        return box

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        for t in self.transforms:
            polygons = apply_polygons(t, polygons)
        return polygons

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            segmentation = apply_segmentation(t, segmentation)
        return segmentation

    def __getattr__(self, name: str) -> Any:
        # apply_<type> of a data type registered with Transform.register_type: each transform in turn
        if name.startswith("apply_") and name != "apply_":
            def apply_all(data: Any) -> Any:
                for t in self.transforms:
                    data = getattr(t, name)(data)
                return data

            return apply_all
        raise AttributeError(f"'TransformList' object has no attribute {name!r}")

    def __add__(self, other: Any) -> TransformList:
        others = other.transforms if isinstance(other, TransformList) else [other]
        return TransformList(self.transforms + others)

    def __iadd__(self, other: Any) -> TransformList:
        others = other.transforms if isinstance(other, TransformList) else [other]
        self.transforms.extend(others)
        return self

    def __radd__(self, other: Any) -> TransformList:
        others = other.transforms if isinstance(other, TransformList) else [other]
        return TransformList(others + self.transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, idx: int) -> Any:
        return self.transforms[idx]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.transforms)

    def inverse(self) -> TransformList:
        return TransformList([t.inverse() for t in self.transforms[::-1]])

    def __repr__(self) -> str:
        return "TransformList[{}]".format(", ".join(repr(t) for t in self.transforms))

    __str__ = __repr__


def _check_image(img: Any, owner: str) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{owner}.apply_image needs a numpy array (H,W) or (H,W,C), got {type(img).__name__}")
    return img


class _FlipTransform(Transform):
    """A mirror along one axis of the image: the coordinate ``_coord`` (0 = x, 1 = y) becomes
    ``extent - coordinate`` (continuous coordinates, so the pixel covering [0, 1) moves to
    [extent-1, extent)); its own inverse."""

    _coord: int
    _image_axes: tuple[int, int]  # the axis flipped in an (H,W) / (H,W,C) image, in an (N,H,W,C) batch
    _extent_attr: str  # the attribute holding the image size along the flipped axis

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        img = _check_image(img, type(self).__name__)
        return np.flip(img, axis=self._image_axes[0] if img.ndim <= 3 else self._image_axes[1])

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64 if np.asarray(coords).dtype == np.float64 else np.float32)
        coords[:, self._coord] = getattr(self, self._extent_attr) - coords[:, self._coord]
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> Self:
        return self


class HFlipTransform(_FlipTransform):
    """Mirror left-right in an image of width ``width``: x -> width - x (continuous coordinates,
    so the pixel covering [0, 1) moves to [width-1, width)).

        HFlipTransform(100).apply_coords(np.array([[10.0, 7.0]]))  # [[90., 7.]]
    """

    _coord, _image_axes, _extent_attr = 0, (1, -2), "width"

    def __init__(self, width: int) -> None:
        self.width = width

    def apply_rotated_box(self, rotated_boxes: np.ndarray) -> np.ndarray:
        """(N, 5) [cx, cy, w, h, angle in degrees] boxes, in place: the centre mirrors and the
        angle (counter-clockwise) changes sign."""
        rotated_boxes[:, 0] = self.width - rotated_boxes[:, 0]
        rotated_boxes[:, 4] = -rotated_boxes[:, 4]
        return rotated_boxes

    def __repr__(self) -> str:
        return f"HFlipTransform(width={self.width})"


class VFlipTransform(_FlipTransform):
    """Mirror top-bottom in an image of height ``height``: y -> height - y.

    VFlipTransform(50).apply_coords(np.array([[10.0, 7.0]]))  # [[10., 43.]]
    """

    _coord, _image_axes, _extent_attr = 1, (0, -3), "height"

    def __init__(self, height: int) -> None:
        self.height = height

    def __repr__(self) -> str:
        return f"VFlipTransform(height={self.height})"


def _clip_polygon_to_box(poly: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Sutherland-Hodgman clipping of a polygon (K,2) to the rectangle [x0,x1]x[y0,y1].

    A concave polygon that the window splits in several parts comes back as one polygon whose
    parts are joined by zero-area slivers along the window edge: same area and same rasterized
    mask, which is all masks need (detectron2 uses shapely here; det avoids the dependency).
    """

    def clip(points: list[tuple[float, float]], inside: Any, intersect: Any) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        n = len(points)
        for i in range(n):
            cur, prev = points[i], points[i - 1]
            cur_in, prev_in = inside(cur), inside(prev)
            if cur_in:
                if not prev_in:
                    out.append(intersect(prev, cur))
                out.append(cur)
            elif prev_in:
                out.append(intersect(prev, cur))
        return out

    def x_cut(xc: float) -> Any:
        def f(p: tuple[float, float], q: tuple[float, float]) -> tuple[float, float]:
            t = (xc - p[0]) / (q[0] - p[0])
            return (xc, p[1] + t * (q[1] - p[1]))

        return f

    def y_cut(yc: float) -> Any:
        def f(p: tuple[float, float], q: tuple[float, float]) -> tuple[float, float]:
            t = (yc - p[1]) / (q[1] - p[1])
            return (p[0] + t * (q[0] - p[0]), yc)

        return f

    pts = [(float(x), float(y)) for x, y in np.asarray(poly, dtype=np.float64).reshape(-1, 2)]
    for inside, cut in (
        (lambda p: p[0] >= x0, x_cut(x0)),
        (lambda p: p[0] <= x1, x_cut(x1)),
        (lambda p: p[1] >= y0, y_cut(y0)),
        (lambda p: p[1] <= y1, y_cut(y1)),
    ):
        if not pts:
            break
        pts = clip(pts, inside, cut)
    # Drop consecutive duplicates that clipping creates at corners.
    dedup: list[tuple[float, float]] = []
    for p in pts:
        if not dedup or abs(p[0] - dedup[-1][0]) > 1e-9 or abs(p[1] - dedup[-1][1]) > 1e-9:
            dedup.append(p)
    if len(dedup) > 1 and abs(dedup[0][0] - dedup[-1][0]) <= 1e-9 and abs(dedup[0][1] - dedup[-1][1]) <= 1e-9:
        dedup.pop()
    return np.asarray(dedup, dtype=np.float64).reshape(-1, 2)


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


class CropTransform(Transform):
    """Keep the window ``[x0, x0+w) x [y0, y0+h)``: coordinates shift by (-x0, -y0); polygons are
    clipped to the window (parts outside disappear, fully outside polygons are dropped).

        t = CropTransform(x0=10, y0=20, w=30, h=40)
        t.apply_coords(np.array([[15.0, 25.0]]))  # [[5., 5.]]
    """

    def __init__(
        self, x0: int, y0: int, w: int, h: int, orig_w: int | None = None, orig_h: int | None = None
    ) -> None:
        for name, v in (("x0", x0), ("y0", y0), ("w", w), ("h", h)):
            if int(v) != v or v < 0:
                raise ValueError(f"CropTransform: {name} must be a non-negative integer, got {v!r}")
        self.x0, self.y0, self.w, self.h = int(x0), int(y0), int(w), int(h)
        self.orig_w, self.orig_h = orig_w, orig_h

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        img = _check_image(img, "CropTransform")
        if img.ndim <= 3:
            return img[self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w]
        return img[..., self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w, :]

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64 if np.asarray(coords).dtype == np.float64 else np.float32)
        coords[:, 0] -= self.x0
        coords[:, 1] -= self.y0
        return coords

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        x0, y0, x1, y1 = self.x0, self.y0, self.x0 + self.w, self.y0 + self.h
        cropped = []
        for polygon in polygons:
            clipped = _clip_polygon_to_box(np.asarray(polygon).reshape(-1, 2), x0, y0, x1, y1)
            if len(clipped) < 3 or _polygon_area(clipped) <= 0:
                continue
            cropped.append(self.apply_coords(clipped))
        return cropped

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation)

    def inverse(self) -> PadTransform:
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError(
                "CropTransform.inverse() needs orig_w and orig_h (the size before cropping)"
            )
        pad_x1 = self.orig_w - self.x0 - self.w
        pad_y1 = self.orig_h - self.y0 - self.h
        return PadTransform(self.x0, self.y0, pad_x1, pad_y1, orig_w=self.w, orig_h=self.h)

    def __repr__(self) -> str:
        return f"CropTransform(x0={self.x0}, y0={self.y0}, w={self.w}, h={self.h})"


class PadTransform(Transform):
    """Pad ``x0``/``y0`` pixels before and ``x1``/``y1`` after; coordinates shift by (x0, y0).

    PadTransform(2, 3, 0, 0).apply_coords(np.array([[1.0, 1.0]]))  # [[3., 4.]]
    """

    def __init__(
        self,
        x0: int,
        y0: int,
        x1: int,
        y1: int,
        orig_w: int | None = None,
        orig_h: int | None = None,
        pad_value: float = 0,
        seg_pad_value: int = 0,
    ) -> None:
        self.x0, self.y0, self.x1, self.y1 = int(x0), int(y0), int(x1), int(y1)
        self.orig_w, self.orig_h = orig_w, orig_h
        self.pad_value, self.seg_pad_value = pad_value, seg_pad_value

    def _pad(self, img: np.ndarray, value: float) -> np.ndarray:
        img = _check_image(img, "PadTransform")
        padding = [(self.y0, self.y1), (self.x0, self.x1)] + [(0, 0)] * (img.ndim - 2)
        return np.pad(img, padding, mode="constant", constant_values=value)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self._pad(img, self.pad_value)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._pad(segmentation, self.seg_pad_value)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64 if np.asarray(coords).dtype == np.float64 else np.float32)
        coords[:, 0] += self.x0
        coords[:, 1] += self.y0
        return coords

    def inverse(self) -> CropTransform:
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError(
                "PadTransform.inverse() needs orig_w and orig_h (the size before padding)"
            )
        neww = self.orig_w + self.x0 + self.x1
        newh = self.orig_h + self.y0 + self.y1
        return CropTransform(self.x0, self.y0, self.orig_w, self.orig_h, orig_w=neww, orig_h=newh)

    def __repr__(self) -> str:
        return f"PadTransform(x0={self.x0}, y0={self.y0}, x1={self.x1}, y1={self.y1})"


class _PhotometricTransform(Transform):
    """A transform of pixel values only: coordinates, boxes, polygons and segmentation pass
    through, and the inverse is a no-op (as detectron2: colour changes are not undone)."""

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        return box

    def apply_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray]:
        return polygons

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> NoOpTransform:
        return NoOpTransform()


class BlendTransform(_PhotometricTransform):
    """``src_weight * src_image + dst_weight * image`` (uint8 images are clipped to [0, 255]);
    geometry is untouched. Brightness, contrast and saturation are blends.

        BlendTransform(src_image=0.0, src_weight=0.5, dst_weight=0.5).apply_image(img)  # half as bright
    """

    def __init__(self, src_image: np.ndarray | float, src_weight: float, dst_weight: float) -> None:
        self.src_image = src_image
        self.src_weight = src_weight
        self.dst_weight = dst_weight

    def apply_image(self, img: np.ndarray, interp: Any = None) -> np.ndarray:
        img = _check_image(img, "BlendTransform")
        if img.dtype == np.uint8:
            out = self.src_weight * self.src_image + self.dst_weight * img.astype(np.float32)
            return np.clip(out, 0, 255).astype(np.uint8)
        return self.src_weight * self.src_image + self.dst_weight * img

    def __repr__(self) -> str:
        return f"BlendTransform(src_weight={self.src_weight}, dst_weight={self.dst_weight})"


class RotationTransform(Transform):
    """Rotate by ``angle`` degrees counter-clockwise about ``center`` (x, y; default the image
    centre). With ``expand`` the output grows to hold the whole rotated image and everything is
    shifted to stay inside it; uncovered pixels are 0.

        t = RotationTransform(h=20, w=40, angle=90)
        t.apply_coords(np.array([[40.0, 10.0]]))  # [[10., 0.]]: the right edge's middle goes to the top
    """

    def __init__(
        self,
        h: int,
        w: int,
        angle: float,
        expand: bool = True,
        center: tuple[float, float] | None = None,
        interp: Any = None,
    ) -> None:
        self.h, self.w, self.angle, self.expand = int(h), int(w), float(angle), expand
        self.image_center = np.array((w / 2, h / 2))
        self.center = self.image_center if center is None else np.asarray(center, dtype=np.float64)
        self.interp = Image.Resampling.BILINEAR if interp is None else interp
        rad = np.deg2rad(angle)
        abs_cos, abs_sin = abs(np.cos(rad)), abs(np.sin(rad))
        if expand:
            self.bound_w, self.bound_h = (
                int(v) for v in np.rint([h * abs_sin + w * abs_cos, h * abs_cos + w * abs_sin])
            )
        else:
            self.bound_w, self.bound_h = self.w, self.h
        self.rm_coords = self.create_rotation_matrix()

    def create_rotation_matrix(self) -> np.ndarray:
        """The 2x3 affine matrix mapping continuous input (x, y) to output (x, y)."""
        rad = np.deg2rad(self.angle)
        alpha, beta = np.cos(rad), np.sin(rad)
        cx, cy = self.center
        # Counter-clockwise on screen, where y points down.
        rm = np.array(
            [[alpha, beta, (1 - alpha) * cx - beta * cy], [-beta, alpha, beta * cx + (1 - alpha) * cy]]
        )
        if self.expand:
            rot_im_center = rm[:, :2] @ self.image_center + rm[:, 2]
            rm[:, 2] += np.array([self.bound_w / 2, self.bound_h / 2]) - rot_im_center
        return rm

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float64)
        if len(coords) == 0 or self.angle % 360 == 0:
            return coords
        return coords @ self.rm_coords[:, :2].T + self.rm_coords[:, 2]

    def _warp(self, img: np.ndarray, resample: Any) -> np.ndarray:
        img = _check_image(img, "RotationTransform")
        if img.size == 0 or self.angle % 360 == 0:
            return img
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"RotationTransform was made for images of (h, w) = {(self.h, self.w)}, got {img.shape[:2]}"
            )
        # PIL wants the output -> input map, in the same continuous pixel coordinates.
        full = np.vstack([self.rm_coords, [0.0, 0.0, 1.0]])
        inv = np.linalg.inv(full)[:2].reshape(-1)
        size = (self.bound_w, self.bound_h)
        channels = [img] if img.ndim == 2 else [img[..., c] for c in range(img.shape[2])]
        out = []
        for ch in channels:
            pil = (
                Image.fromarray(ch)
                if ch.dtype == np.uint8
                else Image.fromarray(ch.astype(np.float32), mode="F")
            )
            warped = np.asarray(pil.transform(size, Image.Transform.AFFINE, tuple(inv), resample=resample))
            out.append(warped.astype(ch.dtype))
        return out[0] if img.ndim == 2 else np.stack(out, axis=-1)

    def apply_image(self, img: np.ndarray, interp: Any = None) -> np.ndarray:
        return self._warp(img, self.interp if interp is None else interp)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._warp(segmentation, Image.Resampling.NEAREST)

    def inverse(self) -> TransformList:
        if not self.expand:
            raise NotImplementedError("cannot invert a RotationTransform with expand=False")
        rotation = RotationTransform(self.bound_h, self.bound_w, -self.angle, True, None, self.interp)
        crop = CropTransform(
            (rotation.bound_w - self.w) // 2, (rotation.bound_h - self.h) // 2, self.w, self.h
        )
        return TransformList([rotation, crop])

    def __repr__(self) -> str:
        return f"RotationTransform(h={self.h}, w={self.w}, angle={self.angle}, expand={self.expand})"


def _float_dtype_of(coords: Any) -> type:
    return np.float64 if np.asarray(coords).dtype == np.float64 else np.float32


def _pil_per_channel(img: np.ndarray, owner: str, fn: Any) -> np.ndarray:
    """Run ``fn(pil_image, channel_index) -> pil_image`` on each channel of an (H,W) or (H,W,C) array.

    uint8 channels go through PIL as mode "L", everything else as 32-bit float "F" (bool and
    integer label maps come back in their own dtype), so any channel count and dtype works.
    """
    img = _check_image(img, owner)
    if img.ndim not in (2, 3):
        raise ValueError(f"{owner}.apply_image needs an (H,W) or (H,W,C) image, got shape {img.shape}")
    channels = [img] if img.ndim == 2 else [img[..., c] for c in range(img.shape[2])]
    out = []
    for c, ch in enumerate(channels):
        if ch.dtype == np.uint8:
            pil = Image.fromarray(np.ascontiguousarray(ch), mode="L")
        else:
            pil = Image.fromarray(np.ascontiguousarray(ch, dtype=np.float32), mode="F")
        out.append(np.array(fn(pil, c)).astype(ch.dtype, copy=False))
    return out[0] if img.ndim == 2 else np.stack(out, axis=-1)


class ExtentTransform(Transform):
    """Take the rectangle ``src_rect = (x0, y0, x1, y1)`` of the image (it may reach outside the
    image: that part is ``fill``) and resize it into ``output_size = (h, w)``.

    Invariant: the continuous point (x, y) of the source goes to
    ``((x - x0) * w / (x1 - x0), (y - y0) * h / (y1 - y0))``, for pixels (PIL's EXTENT
    transform, ``interp``), coordinates, boxes and polygons alike; label maps use nearest.
    ``fill`` really paints the outside (detectron2 hands it to PIL's ``fill`` flag, so its
    outside is always 0, the default here too); any channel count and dtype works.

        t = ExtentTransform(src_rect=(-2, 0, 6, 4), output_size=(4, 8))  # pad 2 px left, crop 2 right
        t.apply_coords(np.array([[0.0, 1.0]]))                             # [[2., 1.]]
    """

    def __init__(
        self,
        src_rect: tuple[float, float, float, float],
        output_size: tuple[int, int],
        interp: Any = Image.Resampling.BILINEAR,
        fill: float | tuple[float, ...] = 0,
    ) -> None:
        """
        Args:
            src_rect: (x0, y0, x1, y1) in source coordinates, x1 > x0 and y1 > y0.
            output_size: (h, w) of the output image, positive.
            interp: PIL resampling filter for images.
            fill: value of output pixels that come from outside the source image (a number, or
                one number per channel).
        """
        src_rect = tuple(float(v) for v in src_rect)
        if len(src_rect) != 4 or not (src_rect[2] > src_rect[0] and src_rect[3] > src_rect[1]):
            raise ValueError(
                f"ExtentTransform: src_rect must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {src_rect}"
            )
        output_size = tuple(output_size)
        if len(output_size) != 2 or any(int(s) != s or s <= 0 for s in output_size):
            raise ValueError(
                f"ExtentTransform: output_size must be (h, w) of positive ints, got {output_size}"
            )
        self.src_rect = src_rect
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.interp = interp
        self.fill = fill

    def apply_image(self, img: np.ndarray, interp: Any = None) -> np.ndarray:
        h, w = self.output_size
        resample = self.interp if interp is None else interp
        channels = 1 if np.ndim(img) == 2 else np.shape(img)[-1]
        if isinstance(self.fill, (tuple, list)) and len(self.fill) != channels:
            raise ValueError(
                f"ExtentTransform: fill has {len(self.fill)} values but the image has {channels} "
                "channels; give one number, or one per channel"
            )

        def extent(pil: Image.Image, channel: int) -> Image.Image:
            fill = self.fill[channel] if isinstance(self.fill, (tuple, list)) else self.fill
            # PIL's fillcolor paints the outside (its ``fill`` argument would only toggle black)
            fill = float(fill) if pil.mode == "F" else int(np.rint(fill))
            return pil.transform(
                (w, h), Image.Transform.EXTENT, self.src_rect, resample=resample, fillcolor=fill
            )

        return _pil_per_channel(img, "ExtentTransform", extent)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        h, w = self.output_size
        x0, y0, x1, y1 = self.src_rect
        coords = np.array(coords, dtype=_float_dtype_of(coords))
        coords[:, 0] = (coords[:, 0] - x0) * (w / (x1 - x0))
        coords[:, 1] = (coords[:, 1] - y0) * (h / (y1 - y0))
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.Resampling.NEAREST)

    def __repr__(self) -> str:
        return f"ExtentTransform(src_rect={self.src_rect}, output_size={self.output_size})"


class ColorTransform(_PhotometricTransform):
    """A photometric change ``op(image) -> image`` (numpy in, numpy out): geometry (coordinates,
    boxes, polygons, segmentation) is untouched.

        t = ColorTransform(lambda img: 255 - img)
        t.apply_image(img)  # the negative; t.apply_box(boxes) is boxes
    """

    def __init__(self, op: Any) -> None:
        if not callable(op):
            raise ValueError(
                f"{type(self).__name__}: op must be a callable taking and returning an image, "
                f"got {type(op).__name__}"
            )
        self.op = op

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self.op(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(op={self.op!r})"


class PILColorTransform(ColorTransform):
    """A :class:`ColorTransform` whose ``op`` works on PIL images (e.g. ``ImageOps.autocontrast``
    or an ``ImageEnhance`` call); the image goes through ``Image.fromarray`` and back.

        t = PILColorTransform(lambda im: ImageEnhance.Contrast(im).enhance(1.5))
        t.apply_image(img)  # uint8 (H,W,3) in, uint8 (H,W,3) out
    """

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        img = _check_image(img, "PILColorTransform")
        return np.asarray(self.op(Image.fromarray(img)))


_TORCH_RESIZE_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
_GRID_SAMPLE_MODES = ("nearest", "bilinear", "bicubic")


def _to_nchw(img: np.ndarray, owner: str) -> torch.Tensor:
    """(H,W), (H,W,C) or (N,H,W,C) array -> float (N,C,H,W) tensor (float64 stays float64)."""
    img = _check_image(img, owner)
    if img.ndim not in (2, 3, 4):
        raise ValueError(f"{owner}.apply_image needs (H,W), (H,W,C) or (N,H,W,C), got shape {img.shape}")
    t = torch.from_numpy(np.ascontiguousarray(img))
    if t.dtype != torch.float64:
        t = t.float()
    if img.ndim == 2:
        return t[None, None]
    if img.ndim == 3:
        return t.permute(2, 0, 1)[None]
    return t.permute(0, 3, 1, 2)


def _from_nchw(t: torch.Tensor, ndim: int, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`_to_nchw`; uint8 results are rounded and clamped to [0, 255]."""
    if ndim == 2:
        t = t[0, 0]
    elif ndim == 3:
        t = t[0].permute(1, 2, 0)
    else:
        t = t.permute(0, 2, 3, 1)
    if dtype == np.uint8:
        t = t.round().clamp(0, 255)
    return t.numpy().astype(dtype, copy=False)


class ScaleTransform(Transform):
    """Resize from (h, w) to (new_h, new_w) with ``torch.nn.functional.interpolate`` (fvcore's
    ScaleTransform): works on (H,W), (H,W,C) and (N,H,W,C) arrays of any dtype.

    Invariant: coordinates scale by new_w / w and new_h / h; ``interp`` is an interpolate mode
    ("nearest", "nearest-exact", "bilinear", "bicubic", "area"; None means "bilinear"), label
    maps use "nearest"; uint8 images are rounded (half to even) and clamped back to uint8.
    (fvcore's interp=None reaches interpolate as mode None and fails; here it is "bilinear".)

        t = ScaleTransform(h=4, w=4, new_h=2, new_w=2, interp="area")
        t.apply_coords(np.array([[4.0, 2.0]]))  # [[2., 1.]]
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: str | None = None) -> None:
        for name, v in (("h", h), ("w", w), ("new_h", new_h), ("new_w", new_w)):
            if int(v) != v or v <= 0:
                raise ValueError(f"ScaleTransform: {name} must be a positive integer, got {v!r}")
        if interp is not None and interp not in _TORCH_RESIZE_MODES:
            raise ValueError(
                f"ScaleTransform: interp must be one of {_TORCH_RESIZE_MODES} or None, got {interp!r}"
            )
        self.h, self.w, self.new_h, self.new_w = int(h), int(w), int(new_h), int(new_w)
        self.interp = interp

    def apply_image(self, img: np.ndarray, interp: str | None = None) -> np.ndarray:
        t = _to_nchw(img, "ScaleTransform")
        if tuple(t.shape[2:]) != (self.h, self.w):
            raise ValueError(
                f"ScaleTransform was made for images of (h, w) = {(self.h, self.w)}, got {tuple(t.shape[2:])}"
            )
        mode = interp or self.interp or "bilinear"
        align_corners = False if mode in ("bilinear", "bicubic") else None
        out = F.interpolate(t, size=(self.new_h, self.new_w), mode=mode, align_corners=align_corners)
        return _from_nchw(out, img.ndim, img.dtype)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=_float_dtype_of(coords))
        coords[:, 0] *= self.new_w / self.w
        coords[:, 1] *= self.new_h / self.h
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp="nearest")

    def inverse(self) -> ScaleTransform:
        return ScaleTransform(self.new_h, self.new_w, self.h, self.w, self.interp)

    def __repr__(self) -> str:
        return f"ScaleTransform(h={self.h}, w={self.w}, new_h={self.new_h}, new_w={self.new_w}, interp={self.interp!r})"


class GridSampleTransform(Transform):
    """Resample an image at the locations of ``grid`` (N, H_out, W_out, 2), (x, y) normalised to
    [-1, 1] over the input (``torch.nn.functional.grid_sample``, align_corners=False, border
    padding), as fvcore's GridSampleTransform.

    Invariant: only pixels move; coordinates cannot be mapped through an arbitrary grid, so
    ``apply_coords`` (and with it boxes and polygons) raises NotImplementedError.

        ys, xs = np.meshgrid(np.linspace(-0.75, 0.75, 4), np.linspace(-0.75, 0.75, 4), indexing="ij")
        t = GridSampleTransform(np.stack([xs, ys], -1)[None], "bilinear")  # identity on 4x4 images
    """

    def __init__(self, grid: np.ndarray, interp: str) -> None:
        grid = np.asarray(grid)
        if grid.ndim != 4 or grid.shape[-1] != 2:
            raise ValueError(
                f"GridSampleTransform: grid must be (N, H_out, W_out, 2) of (x, y) in [-1, 1], got shape {grid.shape}"
            )
        if interp not in _GRID_SAMPLE_MODES:
            raise ValueError(
                f"GridSampleTransform: interp must be one of {_GRID_SAMPLE_MODES}, got {interp!r}"
            )
        self.grid = grid
        self.interp = interp

    def apply_image(self, img: np.ndarray, interp: str | None = None) -> np.ndarray:
        t = _to_nchw(img, "GridSampleTransform")
        if img.ndim < 4 and self.grid.shape[0] != 1:
            raise ValueError(
                f"GridSampleTransform: a single image needs a grid with N = 1, got N = {self.grid.shape[0]}"
            )
        grid = torch.from_numpy(np.ascontiguousarray(self.grid)).to(t.dtype)
        out = F.grid_sample(t, grid, mode=interp or self.interp, padding_mode="border", align_corners=False)
        return _from_nchw(out, img.ndim, img.dtype)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        raise NotImplementedError(
            "GridSampleTransform cannot map coordinates (an arbitrary grid has no point-wise inverse); "
            "use it only on images and segmentation"
        )

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp="nearest")

    def __repr__(self) -> str:
        return f"GridSampleTransform(grid_shape={self.grid.shape}, interp={self.interp!r})"
