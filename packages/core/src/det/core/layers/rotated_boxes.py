"""IoU between rotated boxes, through the op dispatch table."""

from __future__ import annotations

import torch

from det.core.layers.ops import dispatch


def box_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU between (N, 5) and (M, 5) rotated boxes (cx, cy, w, h, angle in degrees)."""
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, torch.Tensor) or b.dim() != 2 or b.shape[1] != 5:
            shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise ValueError(
                f"box_iou_rotated: {name} must be a (N, 5) tensor (cx, cy, w, h, angle), got {shape}"
            )
    return dispatch("box_iou_rotated", boxes1, boxes2)(boxes1, boxes2)


def _box_iou_rotated_reference(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    # det.structures owns the polygon-clipping IoU (it imports nothing of det, so no cycle).
    from det.structures import pairwise_iou_rotated

    return pairwise_iou_rotated(boxes1, boxes2)


# detectron2's name for it (detectron2.layers.pairwise_iou_rotated)
pairwise_iou_rotated = box_iou_rotated

__all__ = ["box_iou_rotated", "pairwise_iou_rotated"]
