"""Axis-aligned boxes: :class:`BoxMode`, :class:`Boxes` and the pairwise IoU / IoA / distance functions."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from enum import IntEnum, unique
from typing import Any, cast

import numpy as np
import torch

__all__ = [
    "BoxMode",
    "Boxes",
    "matched_boxlist_iou",
    "matched_pairwise_iou",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_point_box_distance",
]

_RawBoxType = list[float] | tuple[float, ...] | torch.Tensor | np.ndarray


def _check_cat_items(items: Any, cls: type, *, allow_empty: bool = False) -> None:
    """The argument check of every structure's ``cat``: a list or tuple of ``cls`` (non-empty
    unless ``allow_empty``); ``Boxes.cat([])`` is allowed, as in detectron2."""
    name = cls.__name__
    if allow_empty and not isinstance(items, (list, tuple)):
        raise TypeError(f"{name}.cat expects a list or tuple of {name}, got {type(items).__name__}")
    if not isinstance(items, (list, tuple)) or (len(items) == 0 and not allow_empty):
        raise ValueError(f"{name}.cat expects a non-empty list of {name}")
    if not all(isinstance(x, cls) for x in items):
        raise TypeError(f"{name}.cat expects only {name}, got {sorted({type(x).__name__ for x in items})}")


def _as_float_box_tensor(tensor: Any, width: int, owner: str) -> torch.Tensor:
    """Turn ``tensor`` into a float32 (N, width) tensor on its own device, or raise a clear error.

    detectron2 silently casts any real dtype to float32 (boxes are always float32); we do the same
    but refuse what cannot be a coordinate (complex numbers, strings, ragged lists).
    """
    if isinstance(tensor, torch.Tensor):
        device = tensor.device
        if tensor.is_complex():
            raise TypeError(f"{owner} expects real-valued coordinates, got a {tensor.dtype} tensor")
    else:
        device = torch.device("cpu")
        if isinstance(tensor, np.ndarray) and not (
            np.issubdtype(tensor.dtype, np.number) or tensor.dtype == np.bool_
        ):
            raise TypeError(f"{owner} expects numeric coordinates, got a numpy array of dtype {tensor.dtype}")
        if isinstance(tensor, np.ndarray) and np.iscomplexobj(tensor):
            raise TypeError(
                f"{owner} expects real-valued coordinates, got a numpy array of dtype {tensor.dtype}"
            )
    try:
        tensor = torch.as_tensor(tensor, dtype=torch.float32, device=device)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(
            f"{owner} expects a (N, {width}) float tensor, array or nested list of numbers; "
            f"could not convert {type(tensor).__name__}: {e}"
        ) from None
    if tensor.numel() == 0:
        # reshape (not a fresh tensor) keeps the result tied to the input, as detectron2 does.
        tensor = tensor.reshape((0, width)).to(dtype=torch.float32, device=device)
    if tensor.dim() != 2 or tensor.size(-1) != width:
        raise ValueError(f"{owner} expects a tensor of shape (N, {width}), got shape {tuple(tensor.shape)}")
    return cast("torch.Tensor", tensor)


@unique
class BoxMode(IntEnum):
    """How the numbers of a box are to be read.

    ``BoxMode.convert`` maps a box between modes and returns the input's type (list, tuple,
    numpy array or tensor)::

        BoxMode.convert([10, 20, 5, 5], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)  # [10, 20, 15, 25]
        BoxMode.convert(rotated_n5, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)   # enclosing boxes
    """

    XYXY_ABS = 0
    """(x0, y0, x1, y1) in absolute floating point coordinates, in [0, width or height]."""
    XYWH_ABS = 1
    """(x0, y0, w, h) in absolute floating point coordinates."""
    XYXY_REL = 2
    """Not supported (as in detectron2): (x0, y0, x1, y1) relative to the image size."""
    XYWH_REL = 3
    """Not supported (as in detectron2): (x0, y0, w, h) relative to the image size."""
    XYWHA_ABS = 4
    """(xc, yc, w, h, a): center, size and the angle ``a`` in degrees, counter-clockwise."""

    @staticmethod
    def convert(box: _RawBoxType, from_mode: BoxMode, to_mode: BoxMode) -> _RawBoxType:
        """Convert ``box`` (a k-list/tuple or an (N, k) array/tensor, k = 4 or 5) between modes.

        Supported: XYXY_ABS <-> XYWH_ABS, XYWH_ABS -> XYWHA_ABS (angle 0), XYWHA_ABS -> XYXY_ABS
        (the axis-aligned box enclosing the rotated one), and their compositions XYXY_ABS ->
        XYWHA_ABS and XYWHA_ABS -> XYWH_ABS. Relative modes raise ``NotImplementedError``.
        The input is never modified.
        """
        from_mode, to_mode = BoxMode(from_mode), BoxMode(to_mode)
        if from_mode == to_mode:
            return box
        relative = (BoxMode.XYXY_REL, BoxMode.XYWH_REL)
        if from_mode in relative or to_mode in relative:
            raise NotImplementedError(
                f"BoxMode.convert: relative modes are not supported (from {from_mode.name} to {to_mode.name})"
            )

        original_type = type(box)
        is_numpy = isinstance(box, np.ndarray)
        single_box = isinstance(box, (list, tuple))
        if single_box:
            if len(box) not in (4, 5):
                raise ValueError(
                    "BoxMode.convert takes either a k-tuple/list or an Nxk array/tensor, where k == 4 or 5; "
                    f"got a {original_type.__name__} of length {len(box)}"
                )
            arr = torch.tensor(box)[None, :]
        elif is_numpy:
            arr = torch.from_numpy(np.asarray(box)).clone()
        elif isinstance(box, torch.Tensor):
            arr = box.clone()
        else:
            raise TypeError(
                "BoxMode.convert takes a list, tuple, numpy array or torch.Tensor, "
                f"got {original_type.__name__}"
            )
        if arr.dim() != 2:
            raise ValueError(f"BoxMode.convert expects an (N, k) array, got shape {tuple(arr.shape)}")
        expected_width = 5 if from_mode == BoxMode.XYWHA_ABS else 4
        if arr.shape[-1] != expected_width:
            raise ValueError(
                f"BoxMode.convert from {from_mode.name} expects boxes with {expected_width} numbers, "
                f"got shape {tuple(arr.shape)}"
            )

        arr = _convert_tensor(arr, from_mode, to_mode)

        if single_box:
            return original_type(arr.flatten().tolist())
        if is_numpy:
            return arr.numpy()
        return arr


def _convert_tensor(arr: torch.Tensor, from_mode: BoxMode, to_mode: BoxMode) -> torch.Tensor:
    """Convert an (N, k) tensor that the caller owns (it may be modified in place)."""
    if from_mode == BoxMode.XYWHA_ABS and to_mode == BoxMode.XYXY_ABS:
        original_dtype = arr.dtype
        # float64 so that the trig of angles like 90 degrees does not leave float32 dust.
        arr = arr.double()
        w, h, a = arr[:, 2], arr[:, 3], arr[:, 4]
        c = torch.abs(torch.cos(a * math.pi / 180.0))
        s = torch.abs(torch.sin(a * math.pi / 180.0))
        new_w = c * w + s * h
        new_h = c * h + s * w
        x0 = arr[:, 0] - new_w / 2.0
        y0 = arr[:, 1] - new_h / 2.0
        return torch.stack([x0, y0, x0 + new_w, y0 + new_h], dim=1).to(dtype=original_dtype)
    if from_mode == BoxMode.XYWH_ABS and to_mode == BoxMode.XYWHA_ABS:
        original_dtype = arr.dtype
        arr = arr.double()
        arr[:, 0] += arr[:, 2] / 2.0
        arr[:, 1] += arr[:, 3] / 2.0
        angles = torch.zeros((arr.shape[0], 1), dtype=arr.dtype, device=arr.device)
        return torch.cat((arr, angles), dim=1).to(dtype=original_dtype)
    if from_mode == BoxMode.XYWH_ABS and to_mode == BoxMode.XYXY_ABS:
        arr[:, 2] += arr[:, 0]
        arr[:, 3] += arr[:, 1]
        return arr
    if from_mode == BoxMode.XYXY_ABS and to_mode == BoxMode.XYWH_ABS:
        arr[:, 2] -= arr[:, 0]
        arr[:, 3] -= arr[:, 1]
        return arr
    if from_mode == BoxMode.XYXY_ABS and to_mode == BoxMode.XYWHA_ABS:
        arr = _convert_tensor(arr, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
        return _convert_tensor(arr, BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    if from_mode == BoxMode.XYWHA_ABS and to_mode == BoxMode.XYWH_ABS:
        arr = _convert_tensor(arr, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
        return _convert_tensor(arr, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    raise NotImplementedError(f"Conversion from BoxMode {from_mode} to {to_mode} is not supported")


class Boxes:
    """N axis-aligned boxes as one float32 (N, 4) tensor of (x1, y1, x2, y2) rows.

    Invariant: ``tensor`` is always float32 with shape (N, 4); indexing returns ``Boxes``::

        boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 20.0]]))
        boxes.area()                       # tensor([200.])
        boxes[boxes.nonempty()].clip((8, 8))

    Attributes:
        tensor (Tensor): float matrix of Nx4.
    """

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = _as_float_box_tensor(tensor, 4, "Boxes")

    def clone(self) -> Boxes:
        return Boxes(self.tensor.clone())

    def to(self, *args: Any, **kwargs: Any) -> Boxes:
        """Move to a device (``boxes.to("cuda")``); a dtype is accepted but boxes stay float32."""
        return Boxes(self.tensor.to(*args, **kwargs))

    def area(self) -> torch.Tensor:
        """(N,) areas ``(x2 - x1) * (y2 - y1)`` (negative for inverted boxes, as in detectron2)."""
        box = self.tensor
        return (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])

    def clip(self, box_size: tuple[int, int]) -> None:
        """Clip in place: x to [0, width], y to [0, height]; ``box_size`` is (height, width)."""
        if not torch.isfinite(self.tensor).all():
            raise ValueError("Boxes.clip: box tensor contains infinite or NaN values")
        h, w = box_size
        x1 = self.tensor[:, 0].clamp(min=0, max=w)
        y1 = self.tensor[:, 1].clamp(min=0, max=h)
        x2 = self.tensor[:, 2].clamp(min=0, max=w)
        y2 = self.tensor[:, 3].clamp(min=0, max=h)
        self.tensor = torch.stack((x1, y1, x2, y2), dim=-1)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """(N,) bool: True where both sides are larger than ``threshold``."""
        box = self.tensor
        widths = box[:, 2] - box[:, 0]
        heights = box[:, 3] - box[:, 1]
        return (widths > threshold) & (heights > threshold)

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> Boxes:
        """``boxes[3]`` (one box), ``boxes[2:10]``, ``boxes[bool_mask]`` or ``boxes[long_indices]``.

        The result may share storage with this object, following torch indexing.
        """
        if isinstance(item, (int, np.integer)):
            return Boxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise IndexError(f"Indexing Boxes with {item!r} did not return a (K, 4) matrix")
        return Boxes(b)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return "Boxes(" + str(self.tensor) + ")"

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: float = 0) -> torch.Tensor:
        """(N,) bool: boxes inside (height, width), allowing ``boundary_threshold`` pixels outside."""
        height, width = box_size
        return (
            (self.tensor[..., 0] >= -boundary_threshold)
            & (self.tensor[..., 1] >= -boundary_threshold)
            & (self.tensor[..., 2] < width + boundary_threshold)
            & (self.tensor[..., 3] < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        """(N, 2) box centers (x, y)."""
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale in place: x coordinates by ``scale_x``, y coordinates by ``scale_y``."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    @classmethod
    def cat(cls, boxes_list: Sequence[Boxes]) -> Boxes:
        """Concatenate a list of Boxes; the result never shares storage with the inputs."""
        _check_cat_items(boxes_list, Boxes, allow_empty=True)
        if len(boxes_list) == 0:
            return cls(torch.empty(0))
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield one (4,) tensor per box."""
        yield from self.tensor


def _check_boxes(boxes: Any, name: str, fn: str) -> None:
    if not isinstance(boxes, Boxes):
        raise TypeError(f"{fn}: {name} must be Boxes, got {type(boxes).__name__}")
    if boxes.tensor.shape[-1] != 4:
        raise TypeError(
            f"{fn}: {name} holds rotated boxes ({type(boxes).__name__}); use pairwise_iou_rotated"
        )


def pairwise_intersection(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection areas between all pairs of two ``Boxes`` in (x1, y1, x2, y2) order."""
    _check_boxes(boxes1, "boxes1", "pairwise_intersection")
    _check_boxes(boxes2, "boxes2", "pairwise_intersection")
    b1, b2 = boxes1.tensor, boxes2.tensor
    width_height = torch.min(b1[:, None, 2:], b2[:, 2:]) - torch.max(b1[:, None, :2], b2[:, :2])
    return width_height.clamp(min=0).prod(dim=2)


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection over union of all pairs; 0 where the boxes do not intersect."""
    _check_boxes(boxes1, "boxes1", "pairwise_iou")
    _check_boxes(boxes2, "boxes2", "pairwise_iou")
    area1 = boxes1.area()
    area2 = boxes2.area()
    inter = pairwise_intersection(boxes1, boxes2)
    # where(inter > 0) keeps empty boxes at 0 instead of 0/0.
    return torch.where(
        inter > 0,
        inter / (area1[:, None] + area2 - inter),
        torch.zeros(1, dtype=inter.dtype, device=inter.device),
    )


def pairwise_ioa(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection over the area of ``boxes2``; 0 where the boxes do not intersect."""
    _check_boxes(boxes1, "boxes1", "pairwise_ioa")
    _check_boxes(boxes2, "boxes2", "pairwise_ioa")
    area2 = boxes2.area()
    inter = pairwise_intersection(boxes1, boxes2)
    return torch.where(inter > 0, inter / area2, torch.zeros(1, dtype=inter.dtype, device=inter.device))


def pairwise_point_box_distance(points: torch.Tensor, boxes: Boxes) -> torch.Tensor:
    """(N, M, 4) distances (left, top, right, bottom) from N (x, y) points to M box edges.

    All four are positive exactly when the point lies strictly inside the box.
    """
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[-1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"pairwise_point_box_distance expects points of shape (N, 2), got {shape}")
    _check_boxes(boxes, "boxes", "pairwise_point_box_distance")
    x, y = points.unsqueeze(dim=2).unbind(dim=1)  # (N, 1) each
    x0, y0, x1, y1 = boxes.tensor.unsqueeze(dim=0).unbind(dim=2)  # (1, M) each
    return torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)


def matched_boxlist_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N,) IoU of the i-th box of ``boxes1`` with the i-th box of ``boxes2`` (same length)."""
    _check_boxes(boxes1, "boxes1", "matched_boxlist_iou")
    _check_boxes(boxes2, "boxes2", "matched_boxlist_iou")
    if len(boxes1) != len(boxes2):
        raise ValueError(
            f"matched_boxlist_iou: boxlists should have the same number of entries, got {len(boxes1)}, {len(boxes2)}"
        )
    area1 = boxes1.area()
    area2 = boxes2.area()
    b1, b2 = boxes1.tensor, boxes2.tensor
    lt = torch.max(b1[:, :2], b2[:, :2])
    rb = torch.min(b1[:, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (area1 + area2 - inter)


# detectron2 v0.6's name for it (older releases called it matched_boxlist_iou)
matched_pairwise_iou = matched_boxlist_iou
