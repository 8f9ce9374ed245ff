"""Non-maximum suppression, axis-aligned and rotated, through the op dispatch table."""

from __future__ import annotations

import numpy as np
import torch

from det.core.layers.ops import dispatch


def _check_nms_args(fn: str, boxes: torch.Tensor, scores: torch.Tensor, width: int, idxs=None) -> None:
    if not isinstance(boxes, torch.Tensor) or not isinstance(scores, torch.Tensor):
        raise TypeError(
            f"{fn}: boxes and scores must be tensors, got {type(boxes).__name__}, {type(scores).__name__}"
        )
    if boxes.dim() != 2 or boxes.shape[1] != width:
        raise ValueError(f"{fn}: boxes must have shape (N, {width}), got {tuple(boxes.shape)}")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"{fn}: scores must have shape (N,) = ({boxes.shape[0]},), got {tuple(scores.shape)}"
        )
    if idxs is not None and (not isinstance(idxs, torch.Tensor) or idxs.shape != scores.shape):
        shape = tuple(idxs.shape) if isinstance(idxs, torch.Tensor) else type(idxs).__name__
        raise ValueError(f"{fn}: idxs must be a tensor of shape ({boxes.shape[0]},), got {shape}")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of (N, 4) XYXY ``boxes``: int64 indices kept, by decreasing score.

    A box is removed when its IoU with a higher-scoring kept box is > ``iou_threshold``.
    """
    _check_nms_args("nms", boxes, scores, 4)
    return dispatch("nms", boxes, scores)(boxes, scores, float(iou_threshold))


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS applied independently per category ``idxs``: kept indices by decreasing score.

    As detectron2 it runs in float32 (fp16 has too little range for the per-category coordinate
    offsets) and otherwise is torchvision's ``batched_nms``.
    """
    _check_nms_args("batched_nms", boxes, scores, 4, idxs)
    return dispatch("batched_nms", boxes, scores, idxs)(boxes, scores, idxs, float(iou_threshold))


def nms_rotated(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of (N, 5) rotated boxes (cx, cy, w, h, angle in degrees), by IoU only.

    A box is removed when its IoU with a higher-scoring kept box is >= ``iou_threshold``
    (detectron2's rotated kernel; axis-aligned :func:`nms` uses >).

    The angle matters only through the covered region: (5, 3, 4, 2, -90) and (5, 3, 4, 2, 90) have
    IoU 1, so only one survives, as in detectron2.
    """
    _check_nms_args("nms_rotated", boxes, scores, 5)
    return dispatch("nms_rotated", boxes, scores)(boxes, scores, float(iou_threshold))


def batched_nms_rotated(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Rotated NMS applied independently per category ``idxs``: kept indices by decreasing score.

    Categories are separated by shifting each one's centres by an offset larger than the extent of
    all boxes; unlike torchvision's trick it uses both the minimum and maximum coordinate, so negative
    coordinates are separated too.
    """
    _check_nms_args("batched_nms_rotated", boxes, scores, 5, idxs)
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()  # fp16 lacks the range for the offsets
    max_coordinate = (torch.max(boxes[:, 0], boxes[:, 1]) + torch.max(boxes[:, 2], boxes[:, 3]) / 2).max()
    min_coordinate = (torch.min(boxes[:, 0], boxes[:, 1]) - torch.max(boxes[:, 2], boxes[:, 3]) / 2).min()
    offsets = idxs.to(boxes) * (max_coordinate - min_coordinate + 1)
    boxes_for_nms = boxes.clone()
    boxes_for_nms[:, :2] += offsets[:, None]
    return nms_rotated(boxes_for_nms, scores, iou_threshold)


# --- reference implementations (see det.core.layers.ops) -------------------------------------


def _nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    from det.core.layers.ops import torchvision_kernels

    return torchvision_kernels().nms(boxes, scores, iou_threshold)


def _batched_nms_reference(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """torchvision's ``batched_nms`` strategy (which detectron2 calls), over the dispatched ``nms``.

    Small inputs use the coordinate-offset trick (one NMS over boxes shifted apart per category);
    large ones, where the offsets would cost precision and speed, one NMS per category. The
    threshold is torchvision's, so kept sets and order are detectron2's; a plugin's ``nms`` for the
    device serves both paths.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()  # fp16 lacks the range for the offsets
    nms_impl = dispatch("nms", boxes, scores)
    limit = 4000 if boxes.device.type == "cpu" else 100_000
    if boxes.numel() > limit and not torch.jit.is_tracing():
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for class_id in torch.unique(idxs):
            members = torch.where(idxs == class_id)[0]
            keep_mask[members[nms_impl(boxes[members], scores[members], iou_threshold)]] = True
        kept = torch.where(keep_mask)[0]
        return kept[scores[kept].sort(descending=True)[1]]
    max_coordinate = boxes.max()
    # + 1 as a Python number (torchvision adds torch.tensor(1).to(boxes), a blocking host-to-GPU
    # copy on CUDA); the same float32 addition
    offsets = idxs.to(boxes) * (max_coordinate + 1)
    return nms_impl(boxes + offsets[:, None], scores, iou_threshold)


def _nms_rotated_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS over the full rotated IoU matrix (O(N^2) memory: fine for post-processing sizes)."""
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    from det.core.layers.rotated_boxes import box_iou_rotated

    order = scores.argsort(descending=True, stable=True)
    # Only higher-scoring boxes suppress lower ones: the strict upper triangle in score order.
    # >=, not > as in axis-aligned nms: detectron2's rotated kernel suppresses at equality
    above = (box_iou_rotated(boxes[order], boxes[order]) >= iou_threshold).triu(1).cpu().numpy()
    suppressed = np.zeros(order.shape[0], dtype=bool)
    keep = []
    for i in range(order.shape[0]):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= above[i]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


__all__ = ["batched_nms", "batched_nms_rotated", "nms", "nms_rotated"]
