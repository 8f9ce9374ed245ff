"""COCO run-length encoding (RLE) helpers on top of ``pycocotools.mask``, and mask -> polygons.

The RLE functions wrap pycocotools the way detectron2 uses it (Fortran-ordered uint8 input,
``frPyObjects`` for uncompressed RLE, ``merge`` for unions). :func:`mask_to_polygons` needs no
OpenCV: it traces the pixel boundaries exactly, so rasterizing its polygons with pycocotools gives
back the mask (as long as it has no holes, which a union of polygons cannot express).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch

__all__ = [
    "mask_to_polygons",
    "mask_to_rle",
    "polygons_to_rle",
    "rle_area",
    "rle_to_bbox",
    "rle_to_mask",
    "rle_to_polygons",
]


def _mask_util() -> Any:
    import pycocotools.mask as mask_util

    return mask_util


def _as_numpy_mask(mask: Any, where: str) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"{where} expects an (H, W) or (N, H, W) mask, got shape {mask.shape}")
    return cast("np.ndarray", mask)


def _compressed(rle: dict[str, Any]) -> dict[str, Any]:
    """A compressed RLE: uncompressed ones (``counts`` is a list, as in COCO json) are converted."""
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise TypeError(f"expected a COCO RLE dict with 'size' and 'counts', got {type(rle).__name__}")
    if isinstance(rle["counts"], list):
        height, width = rle["size"]
        return cast("dict[str, Any]", _mask_util().frPyObjects(rle, height, width))
    return rle


def mask_to_rle(mask: np.ndarray | torch.Tensor) -> dict[str, Any] | list[dict[str, Any]]:
    """Encode an (H, W) mask as one RLE, or an (N, H, W) stack as a list of N RLEs.

    ``counts`` is a ``str`` (JSON-ready, as detectron2's COCO evaluator writes it).
    """
    mask = _as_numpy_mask(mask, "mask_to_rle")
    single = mask.ndim == 2
    stack = mask[:, :, None] if single else np.transpose(mask, (1, 2, 0))
    rles = _mask_util().encode(np.asfortranarray(stack.astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("utf-8")
    return cast("dict[str, Any] | list[dict[str, Any]]", rles[0] if single else rles)


def rle_to_mask(rle: dict[str, Any] | Sequence[dict[str, Any]]) -> np.ndarray:
    """Decode one RLE to a bool (H, W) mask, or a list of RLEs to (N, H, W)."""
    mask_util = _mask_util()
    if isinstance(rle, dict):
        return cast("np.ndarray", mask_util.decode(_compressed(rle)).astype(bool))
    rles = [_compressed(r) for r in rle]
    if not rles:
        raise ValueError("rle_to_mask got an empty list; the image size is unknown")
    return np.transpose(mask_util.decode(rles), (2, 0, 1)).astype(bool)


def rle_area(rle: dict[str, Any] | Sequence[dict[str, Any]]) -> np.ndarray | int:
    """Number of foreground pixels of one RLE (an int) or of each RLE of a list (an array)."""
    mask_util = _mask_util()
    if isinstance(rle, dict):
        return int(mask_util.area(_compressed(rle)))
    return np.asarray(mask_util.area([_compressed(r) for r in rle]))


def rle_to_bbox(rle: dict[str, Any] | Sequence[dict[str, Any]]) -> np.ndarray:
    """Tight XYWH_ABS box(es) of one RLE (shape (4,)) or of a list (shape (N, 4)), as pycocotools."""
    mask_util = _mask_util()
    if isinstance(rle, dict):
        return np.asarray(mask_util.toBbox(_compressed(rle)))
    return np.asarray(mask_util.toBbox([_compressed(r) for r in rle])).reshape(-1, 4)


def polygons_to_rle(polygons: Sequence[np.ndarray | list[float]], height: int, width: int) -> dict[str, Any]:
    """The union of an instance's polygons as one (compressed, bytes) RLE."""
    from det.structures.masks import _check_polygon

    arrays = [np.asarray(p, dtype=np.float64) for p in polygons]
    mask_util = _mask_util()
    if not arrays:
        return cast("dict[str, Any]", mask_util.encode(np.asfortranarray(np.zeros((height, width), dtype=np.uint8))))
    for p in arrays:
        _check_polygon(p, "polygons_to_rle")
    return cast("dict[str, Any]", mask_util.merge(mask_util.frPyObjects(arrays, height, width)))


# Boundary edges between pixels, walked with the foreground on the right-hand side (y down).
_RIGHT, _DOWN, _LEFT, _UP = 0, 1, 2, 3
_STEP = {_RIGHT: (1, 0), _DOWN: (0, 1), _LEFT: (-1, 0), _UP: (0, -1)}


def mask_to_polygons(mask: np.ndarray | torch.Tensor) -> tuple[list[np.ndarray], bool]:
    """Trace the outline of every region of an (H, W) mask: ``(polygons, has_holes)``.

    Polygons are flat float64 [x0, y0, x1, y1, ...] arrays on pixel corners (pixel (r, c) is the
    square [c, c + 1] x [r, r + 1]), without collinear points; regions touching only diagonally
    get separate outlines. Outer outlines come first (clockwise on screen), then hole outlines.
    ``has_holes`` is True when the mask has holes: the polygons' union then covers the holes too.
    Like detectron2's ``GenericMask.mask_to_polygons`` (which returns pixel-centre contours from
    OpenCV), it returns both kinds of outline.
    """
    mask = _as_numpy_mask(mask, "mask_to_polygons")
    if mask.ndim != 2:
        raise ValueError(f"mask_to_polygons expects one (H, W) mask, got shape {mask.shape}")
    fg = np.pad(mask.astype(bool), 1)

    # Outgoing boundary edges of each pixel corner, keyed by (x, y), as direction lists.
    out: dict[tuple[int, int], list[int]] = {}

    def add(xs: np.ndarray, ys: np.ndarray, direction: int) -> None:
        for x, y in zip(xs.tolist(), ys.tolist()):
            out.setdefault((x, y), []).append(direction)

    # With padding, fg[r + 1, c + 1] is pixel (r, c); its corners are (c, r) .. (c + 1, r + 1).
    r, c = np.nonzero(fg[1:-1, 1:-1] & ~fg[:-2, 1:-1])  # bg above: top edge, walk right
    add(c, r, _RIGHT)
    r, c = np.nonzero(fg[1:-1, 1:-1] & ~fg[2:, 1:-1])  # bg below: bottom edge, walk left
    add(c + 1, r + 1, _LEFT)
    r, c = np.nonzero(fg[1:-1, 1:-1] & ~fg[1:-1, :-2])  # bg on the left: walk up
    add(c, r + 1, _UP)
    r, c = np.nonzero(fg[1:-1, 1:-1] & ~fg[1:-1, 2:])  # bg on the right: walk down
    add(c + 1, r, _DOWN)

    outer: list[np.ndarray] = []
    holes: list[np.ndarray] = []
    for start in sorted(out, key=lambda p: (p[1], p[0])):
        while out.get(start):
            loop = _walk(out, start)
            coords = np.asarray(loop, dtype=np.float64)
            x, y = coords[:, 0], coords[:, 1]
            signed = 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
            # Clockwise on screen (y down) is a positive shoelace sum.
            (outer if signed > 0 else holes).append(coords.reshape(-1))
    return outer + holes, bool(holes)


def _walk(out: dict[tuple[int, int], list[int]], start: tuple[int, int]) -> list[tuple[int, int]]:
    """Follow boundary edges from ``start`` until back at it, consuming them; return the corners.

    Every corner has as many boundary edges in as out, so any walk returns to its start and
    the edges left over still form closed loops.
    """
    point = start
    previous: int | None = None
    first: int | None = None
    corners: list[tuple[int, int]] = []
    while True:
        choices = out[point]
        if len(choices) > 1 and previous is not None and (previous + 1) % 4 in choices:
            # Two regions touch diagonally here: turn right (toward the foreground) so that
            # each region keeps its own outline.
            direction = (previous + 1) % 4
        else:
            direction = choices[0]
        choices.remove(direction)
        if not choices:
            del out[point]
        if first is None:
            first = direction
        if direction != previous:
            corners.append(point)
        dx, dy = _STEP[direction]
        point = (point[0] + dx, point[1] + dy)
        previous = direction
        if point == start:
            break
    if previous == first and len(corners) > 1:
        # The walk enters the start going the way it left: the start is not a corner.
        corners.pop(0)
    return corners


def rle_to_polygons(rle: dict[str, Any]) -> tuple[list[np.ndarray], bool]:
    """:func:`mask_to_polygons` of a decoded RLE."""
    return mask_to_polygons(rle_to_mask(rle))
