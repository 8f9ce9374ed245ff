"""Rotated boxes (xc, yc, w, h, angle in degrees ccw) and their pairwise IoU, in pure torch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import torch

from det.structures.boxes import Boxes, _as_float_box_tensor, _check_cat_items

__all__ = ["RotatedBoxes", "pairwise_iou", "pairwise_iou_rotated", "rotated_box_vertices"]


class RotatedBoxes(Boxes):
    """N rotated boxes as one float32 (N, 5) tensor of (x_center, y_center, width, height, angle).

    Invariant: ``tensor`` is float32 with shape (N, 5); the angle is in degrees, counter-clockwise
    in image space (a box of angle 90 has its width along the image's y axis)::

        boxes = RotatedBoxes(torch.tensor([[50.0, 50.0, 20.0, 10.0, 30.0]]))
        boxes.area()                                   # tensor([200.])
        pairwise_iou_rotated(boxes, boxes)             # tensor([[1.]])
    """

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = _as_float_box_tensor(tensor, 5, "RotatedBoxes")

    def clone(self) -> RotatedBoxes:
        return RotatedBoxes(self.tensor.clone())

    def to(self, *args: Any, **kwargs: Any) -> RotatedBoxes:
        """Move to a device; a dtype is accepted but rotated boxes stay float32."""
        return RotatedBoxes(self.tensor.to(*args, **kwargs))

    def area(self) -> torch.Tensor:
        """(N,) areas ``w * h``."""
        box = self.tensor
        return box[:, 2] * box[:, 3]

    def normalize_angles(self) -> None:
        """Bring every angle into [-180, 180) in place."""
        self.tensor[:, 4] = (self.tensor[:, 4] + 180.0) % 360.0 - 180.0

    def clip(self, box_size: tuple[int, int], clip_angle_threshold: float = 1.0) -> None:
        """Clip in place the boxes that are nearly horizontal to the image (height, width).

        Only boxes with ``|angle| <= clip_angle_threshold`` (degrees, after normalising angles)
        are clipped, as if they were horizontal: clipping a truly rotated box is not a rotated
        box any more, so detectron2 leaves those alone. Widths and heights never grow.
        """
        h, w = box_size
        self.normalize_angles()
        # Every row is computed and the nearly horizontal ones are written back with a mask: the
        # same arithmetic per box as selecting them first, without a data-dependent selection (a
        # host synchronisation on a GPU).
        near = torch.abs(self.tensor[:, 4]) <= clip_angle_threshold
        t = self.tensor
        x1 = (t[:, 0] - t[:, 2] / 2.0).clamp(min=0, max=w)
        y1 = (t[:, 1] - t[:, 3] / 2.0).clamp(min=0, max=h)
        x2 = (t[:, 0] + t[:, 2] / 2.0).clamp(min=0, max=w)
        y2 = (t[:, 1] + t[:, 3] / 2.0).clamp(min=0, max=h)
        t[:, 0] = torch.where(near, (x1 + x2) / 2.0, t[:, 0])
        t[:, 1] = torch.where(near, (y1 + y2) / 2.0, t[:, 1])
        # min() so that rounding in the round trip cannot make a box larger.
        t[:, 2] = torch.where(near, torch.min(t[:, 2], x2 - x1), t[:, 2])
        t[:, 3] = torch.where(near, torch.min(t[:, 3], y2 - y1), t[:, 3])

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """(N,) bool: True where width and height are both larger than ``threshold``."""
        box = self.tensor
        return (box[:, 2] > threshold) & (box[:, 3] > threshold)

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> RotatedBoxes:
        if isinstance(item, (int, np.integer)):
            return RotatedBoxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise IndexError(f"Indexing RotatedBoxes with {item!r} did not return a (K, 5) matrix")
        return RotatedBoxes(b)

    def __repr__(self) -> str:
        return "RotatedBoxes(" + str(self.tensor) + ")"

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: float = 0) -> torch.Tensor:
        """(N,) bool: the axis-aligned hull of each box lies inside (height, width), with slack."""
        height, width = box_size
        cnt_x, cnt_y = self.tensor[..., 0], self.tensor[..., 1]
        half_w, half_h = self.tensor[..., 2] / 2.0, self.tensor[..., 3] / 2.0
        a = self.tensor[..., 4]
        c = torch.abs(torch.cos(a * math.pi / 180.0))
        s = torch.abs(torch.sin(a * math.pi / 180.0))
        max_rect_dx = c * half_w + s * half_h
        max_rect_dy = c * half_h + s * half_w
        return (
            (cnt_x - max_rect_dx >= -boundary_threshold)
            & (cnt_y - max_rect_dy >= -boundary_threshold)
            & (cnt_x + max_rect_dx < width + boundary_threshold)
            & (cnt_y + max_rect_dy < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        """(N, 2) centers (x, y)."""
        return self.tensor[:, :2]

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale in place by (scale_x, scale_y) in image space, keeping boxes rectangles.

        The center scales directly. For the box's own axes: its width runs along the image
        direction (cos a, -sin a) and its height along (sin a, cos a) (y points down), so after
        scaling their lengths grow by ``sqrt((sx cos a)^2 + (sy sin a)^2)`` and
        ``sqrt((sx sin a)^2 + (sy cos a)^2)``, and the new angle is ``atan2(sx sin a, sy cos a)``.
        For an anisotropic scale this is detectron2's approximation (the image of a rotated
        rectangle is a parallelogram).
        """
        self.tensor[:, 0] *= scale_x
        self.tensor[:, 1] *= scale_y
        theta = self.tensor[:, 4] * math.pi / 180.0
        c = torch.cos(theta)
        s = torch.sin(theta)
        self.tensor[:, 2] *= torch.sqrt((scale_x * c) ** 2 + (scale_y * s) ** 2)
        self.tensor[:, 3] *= torch.sqrt((scale_x * s) ** 2 + (scale_y * c) ** 2)
        self.tensor[:, 4] = torch.atan2(scale_x * s, scale_y * c) * 180 / math.pi

    @classmethod
    def cat(cls, boxes_list: Sequence[RotatedBoxes]) -> RotatedBoxes:  # type: ignore[override]
        """Concatenate a list of RotatedBoxes; the result never shares storage with the inputs."""
        _check_cat_items(boxes_list, RotatedBoxes, allow_empty=True)
        if len(boxes_list) == 0:
            return cls(torch.empty(0))
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield one (5,) tensor per box."""
        yield from self.tensor


def rotated_box_vertices(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4, 2) corners of (..., 5) rotated boxes, in order around the box.

    The width axis is (cos a, -sin a) and the height axis (sin a, cos a) in image coordinates
    (y down), which makes a positive angle counter-clockwise on screen.
    """
    theta = boxes[..., 4] * (math.pi / 180.0)
    cos_half = torch.cos(theta) * 0.5
    sin_half = torch.sin(theta) * 0.5
    xc, yc, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    p0 = torch.stack([xc + sin_half * h + cos_half * w, yc + cos_half * h - sin_half * w], dim=-1)
    p1 = torch.stack([xc - sin_half * h + cos_half * w, yc - cos_half * h - sin_half * w], dim=-1)
    center = torch.stack([xc, yc], dim=-1)
    p2 = 2 * center - p0
    p3 = 2 * center - p1
    return torch.stack([p0, p1, p2, p3], dim=-2)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _box_frame(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Centre (P, 2), unit width / height axes (P, 2), half sizes (P,), corners and edges (P, 4, 2).

    Edges come from the axes, not from differences of corners: for a box 1e-6 thin next to
    coordinates of order 1, a difference of corners would get the short edge's direction wrong
    by 1e-10 rad, which, projected over the long side, is a 1e-4 error across the short one.
    """
    theta = boxes[:, 4] * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    center = boxes[:, :2]
    axis_w = torch.stack([cos, -sin], dim=-1)
    axis_h = torch.stack([sin, cos], dim=-1)
    half_w = boxes[:, 2].abs() / 2
    half_h = boxes[:, 3].abs() / 2
    # The corners of rotated_box_vertices (p0 = c + w/2 axis_w + h/2 axis_h, p1, p2, p3), with
    # |w| and |h| so that they agree with the edges for boxes given negative sizes.
    along_w = axis_w * (2 * half_w)[:, None]
    along_h = axis_h * (2 * half_h)[:, None]
    p0 = center + (along_w + along_h) / 2
    p1 = center + (along_w - along_h) / 2
    corners = torch.stack([p0, p1, 2 * center - p0, 2 * center - p1], dim=1)
    edges = torch.stack([-along_h, -along_w, along_h, along_w], dim=1)  # p_i -> p_{i+1}
    return center, axis_w, axis_h, half_w, half_h, corners, edges


def _points_in_box(
    points: torch.Tensor,
    center: torch.Tensor,
    axis_w: torch.Tensor,
    axis_h: torch.Tensor,
    half_w: torch.Tensor,
    half_h: torch.Tensor,
    rel_tol: float,
    abs_tol: float,
) -> torch.Tensor:
    """(P, K) bool: which of the K points (P, K, 2) lie in each box, within the tolerances."""
    d = points - center[:, None, :]
    u = (d * axis_w[:, None, :]).sum(-1).abs()
    v = (d * axis_h[:, None, :]).sum(-1).abs()
    return (u <= half_w[:, None] * (1 + rel_tol) + abs_tol) & (v <= half_h[:, None] * (1 + rel_tol) + abs_tol)


def _intersection_area_normalized(b1: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """(P,) intersection areas of P pairs of float64 (P, 5) rotated boxes.

    The intersection of two rectangles is convex, and every candidate point — an edge/edge
    crossing or a corner of one rectangle inside the other — lies on its boundary. So sorting
    the valid candidates by angle around their mean (an interior point) walks the boundary,
    and the shoelace formula gives the area; duplicates and points along an edge add nothing.
    Coordinates are expected to be O(1) (the caller normalises). A point counts as on a box
    within 1e-10 of the box's size plus 1e-14 (a few rounding errors of O(1) coordinates), so
    rounding cannot drop the corners of a box 1e-7 thin, and real offsets are never ignored.
    """
    rel_tol, abs_tol = 1e-10, 1e-14
    num = b1.shape[0]
    c1, w1, h1, hw1, hh1, r1, e1 = _box_frame(b1)
    c2, w2, h2, hw2, hh2, r2, e2 = _box_frame(b2)

    # Every edge i of r1 against every edge j of r2: solve r1_i + t1 e1_i = r2_j + t2 e2_j.
    p1 = r1[:, :, None, :]
    d1 = e1[:, :, None, :]
    p2 = r2[:, None, :, :]
    d2 = e2[:, None, :, :]
    det = _cross(d2, d1)  # (P, 4, 4)
    # Parallel relative to the edges' lengths: |sin(angle)| below 1e-12.
    lengths = torch.linalg.vector_norm(d1, dim=-1) * torch.linalg.vector_norm(d2, dim=-1)
    parallel = det.abs() <= 1e-12 * lengths
    safe_det = torch.where(parallel, torch.ones_like(det), det)
    v12 = p2 - p1
    t1 = _cross(d2, v12) / safe_det
    t2 = _cross(d1, v12) / safe_det
    tiny = torch.finfo(det.dtype).tiny
    tol1 = rel_tol + abs_tol / torch.linalg.vector_norm(d1, dim=-1).clamp(min=tiny)
    tol2 = rel_tol + abs_tol / torch.linalg.vector_norm(d2, dim=-1).clamp(min=tiny)
    cross_ok = (~parallel) & (t1 >= -tol1) & (t1 <= 1 + tol1) & (t2 >= -tol2) & (t2 <= 1 + tol2)
    cross_pts = (p1 + d1 * t1[..., None]).reshape(num, 16, 2)
    cross_ok = cross_ok.reshape(num, 16)

    in2 = _points_in_box(r1, c2, w2, h2, hw2, hh2, rel_tol, abs_tol)  # corners of r1 inside r2
    in1 = _points_in_box(r2, c1, w1, h1, hw1, hh1, rel_tol, abs_tol)

    pts = torch.cat([cross_pts, r1, r2], dim=1)  # (P, 24, 2)
    valid = torch.cat([cross_ok, in2, in1], dim=1)  # (P, 24)
    count = valid.sum(dim=1)

    weights = valid.to(pts.dtype)[..., None]
    center = (pts * weights).sum(dim=1) / count.clamp(min=1)[:, None].to(pts.dtype)
    rel = torch.where(valid[..., None], pts - center[:, None, :], torch.zeros_like(pts))
    angle = torch.atan2(rel[..., 1], rel[..., 0])
    # Invalid points sort last (angles are within [-pi, pi]) ...
    angle = torch.where(valid, angle, torch.full_like(angle, 10.0))
    order = angle.argsort(dim=1)
    rel = torch.gather(rel, 1, order[..., None].expand(-1, -1, 2))
    valid_sorted = torch.gather(valid, 1, order)
    # ... and are replaced by the first point, so the polygon closes through zero-length edges.
    rel = torch.where(valid_sorted[..., None], rel, rel[:, :1, :].expand_as(rel))
    nxt = torch.roll(rel, -1, dims=1)
    area = 0.5 * _cross(rel, nxt).sum(dim=1).abs()
    return torch.where(count >= 3, area, torch.zeros_like(area))


def _as_rotated_tensor(boxes: Any, name: str) -> torch.Tensor:
    if isinstance(boxes, RotatedBoxes):
        return boxes.tensor
    if isinstance(boxes, Boxes):
        raise TypeError(
            f"pairwise_iou_rotated: {name} is axis-aligned Boxes; use pairwise_iou or RotatedBoxes"
        )
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(
            f"pairwise_iou_rotated: {name} must be RotatedBoxes or an (N, 5) tensor, got {type(boxes).__name__}"
        )
    if boxes.numel() == 0:
        boxes = boxes.reshape(0, 5)
    if boxes.dim() != 2 or boxes.shape[-1] != 5:
        raise ValueError(
            f"pairwise_iou_rotated: {name} must have shape (N, 5) of (xc, yc, w, h, angle), got {tuple(boxes.shape)}"
        )
    if not boxes.is_floating_point():
        raise TypeError(f"pairwise_iou_rotated: {name} must be a floating point tensor, got {boxes.dtype}")
    return cast("torch.Tensor", boxes)


def pairwise_iou_rotated(
    boxes1: RotatedBoxes | torch.Tensor, boxes2: RotatedBoxes | torch.Tensor
) -> torch.Tensor:
    """(N, M) IoU of every pair of rotated boxes, given as RotatedBoxes or (N, 5)/(M, 5) tensors.

    Pure torch, vectorised over pairs and exact up to float64 rounding (the result has the dtype of
    ``boxes1``). A box with area below 1e-14 has IoU 0 with everything, as in detectron2's kernel.
    This is the reference ``box_iou_rotated`` of det-core's op dispatch.
    """
    t1 = _as_rotated_tensor(boxes1, "boxes1")
    t2 = _as_rotated_tensor(boxes2, "boxes2")
    out_dtype = t1.dtype
    n, m = t1.shape[0], t2.shape[0]
    device = t1.device
    if n == 0 or m == 0:
        return torch.zeros((n, m), dtype=out_dtype, device=device)
    # float64 throughout; devices without it (Apple's MPS) compute on the CPU.
    work_device = torch.device("cpu") if device.type == "mps" else device
    a = t1.to(device=work_device, dtype=torch.float64)
    b = t2.to(device=work_device, dtype=torch.float64)
    # Two boxes can only overlap if their circumscribed circles do: most pairs in a real image
    # are rejected here, and only the rest pay for the polygon intersection.
    radius_a = torch.hypot(a[:, 2], a[:, 3]) / 2
    radius_b = torch.hypot(b[:, 2], b[:, 3]) / 2
    dist = torch.cdist(a[:, :2], b[:, :2], compute_mode="donot_use_mm_for_euclid_dist")
    candidates = (dist <= (radius_a[:, None] + radius_b[None, :]) * (1 + 1e-6)).nonzero()
    ious = torch.zeros((n, m), dtype=torch.float64, device=work_device)
    # Bound the (pairs, 24, 2) temporaries to a few tens of MB.
    chunk = 16384
    for start in range(0, candidates.shape[0], chunk):
        rows, cols = candidates[start : start + chunk].unbind(dim=1)
        ious[rows, cols] = _iou_pairs(a[rows], b[cols])
    return ious.to(device=device, dtype=out_dtype)


def _iou_pairs(ba: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """(P,) IoU of P pairs of float64 (P, 5) rotated boxes."""
    area1 = ba[:, 2] * ba[:, 3]
    area2 = bb[:, 2] * bb[:, 3]
    # IoU is invariant to translation and scale: centre each pair on its mid-point (as detectron2
    # does, for precision) and divide by its largest side, so tolerances mean the same for boxes
    # of size 1e-3 and 1e4.
    shift = (ba[:, :2] + bb[:, :2]) / 2
    scale = torch.stack([ba[:, 2].abs(), ba[:, 3].abs(), bb[:, 2].abs(), bb[:, 3].abs()], dim=1).amax(dim=1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))[:, None]
    na = torch.cat([(ba[:, :2] - shift) / scale, ba[:, 2:4] / scale, ba[:, 4:]], dim=1)
    nb = torch.cat([(bb[:, :2] - shift) / scale, bb[:, 2:4] / scale, bb[:, 4:]], dim=1)
    inter = _intersection_area_normalized(na, nb)
    union = na[:, 2] * na[:, 3] + nb[:, 2] * nb[:, 3] - inter
    positive = union > 0
    iou = torch.where(
        positive, inter / torch.where(positive, union, torch.ones_like(union)), torch.zeros_like(inter)
    )
    degenerate = (area1 < 1e-14) | (area2 < 1e-14)
    # The tolerances can admit a point a rounding error outside: keep the IoU within [0, 1].
    return torch.where(degenerate, torch.zeros_like(iou), iou.clamp(0.0, 1.0))


def pairwise_iou(boxes1: RotatedBoxes, boxes2: RotatedBoxes) -> torch.Tensor:
    """detectron2's ``rotated_boxes.pairwise_iou``: (N, M) IoU of two RotatedBoxes."""
    return pairwise_iou_rotated(boxes1, boxes2)
