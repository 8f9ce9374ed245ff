"""Pasting per-ROI masks into the full image (detectron2's ``layers.mask_ops`` semantics).

Lives here because :meth:`ROIMasks.to_bitmasks` needs it and det-structures imports nothing of
det; det-heads-mask may reuse :func:`paste_masks_in_image` rather than keep its own copy.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["paste_masks_in_image"]

BYTES_PER_FLOAT = 4
# Memory budget of one pasting chunk on accelerators (on the CPU masks are pasted one by one).
GPU_MEM_LIMIT = 1024**3


def _do_paste_mask(
    masks: torch.Tensor, boxes: torch.Tensor, img_h: int, img_w: int, skip_empty: bool = True
) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Sample (N, 1, M, M) masks onto the image grid of their (N, 4) boxes.

    With ``skip_empty`` only the region spanned by the boxes (plus a pixel) is computed, and the
    slices locating it in the image are returned along with it.
    """
    device = masks.device
    if skip_empty:
        x0_y0 = torch.clamp(boxes.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32)
        x0_int, y0_int = int(x0_y0[0]), int(x0_y0[1])
        x1_int = int(torch.clamp(boxes[:, 2].max().ceil() + 1, max=img_w).to(dtype=torch.int32))
        y1_int = int(torch.clamp(boxes[:, 3].max().ceil() + 1, max=img_h).to(dtype=torch.int32))
        # Boxes entirely right of or below the image leave an empty region, not a reversed one.
        x0_int, y0_int = min(x0_int, x1_int), min(y0_int, y1_int)
    else:
        x0_int, y0_int, x1_int, y1_int = 0, 0, img_w, img_h
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)  # (N, 1) each
    n = masks.shape[0]

    # Pixel centres, mapped to grid_sample's [-1, 1] coordinates of each box.
    img_y = torch.arange(y0_int, y1_int, device=device, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0_int, x1_int, device=device, dtype=torch.float32) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1
    gx = img_x[:, None, :].expand(n, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(n, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)

    if not masks.dtype.is_floating_point:
        masks = masks.float()
    img_masks = F.grid_sample(masks, grid.to(masks.dtype), align_corners=False)
    if skip_empty:
        return img_masks[:, 0], (slice(y0_int, y1_int), slice(x0_int, x1_int))
    return img_masks[:, 0], ()


def paste_masks_in_image(
    masks: torch.Tensor, boxes: Any, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """Paste (N, M, M) masks, each defined inside its box, into (N, H, W) full-image masks.

    Each mask is resampled (bilinear, ``grid_sample``) onto the pixels its box covers. With
    ``threshold >= 0`` the result is bool (``value >= threshold``); with a negative threshold it is
    uint8 ``value * 255`` (for visualisation). ``boxes`` is an (N, 4) tensor or ``Boxes``.
    """
    if masks.dim() != 3 or masks.shape[-1] != masks.shape[-2]:
        raise ValueError(
            f"paste_masks_in_image: only square (N, M, M) mask predictions are supported, got {tuple(masks.shape)}"
        )
    n = len(masks)
    img_h, img_w = int(image_shape[0]), int(image_shape[1])
    if n == 0:
        return masks.new_empty((0, img_h, img_w), dtype=torch.uint8)
    if not isinstance(boxes, torch.Tensor):
        boxes = boxes.tensor
    if boxes.shape != (n, 4):
        raise ValueError(f"paste_masks_in_image: expected boxes of shape ({n}, 4), got {tuple(boxes.shape)}")
    device = boxes.device

    if device.type == "cpu":
        # On the CPU, pasting one by one over each box's own region does the least work.
        num_chunks = n
    else:
        # Elsewhere whole-image chunks are faster, within the memory budget.
        num_chunks = math.ceil(n * img_h * img_w * BYTES_PER_FLOAT / GPU_MEM_LIMIT)
        if num_chunks > n:
            raise RuntimeError("GPU_MEM_LIMIT in det.structures.mask_ops is too small for this image")
    chunks = torch.chunk(torch.arange(n, device=device), num_chunks)

    img_masks = torch.zeros(
        n, img_h, img_w, device=device, dtype=torch.bool if threshold >= 0 else torch.uint8
    )
    for inds in chunks:
        masks_chunk, spatial_inds = _do_paste_mask(
            masks[inds, None, :, :], boxes[inds], img_h, img_w, skip_empty=device.type == "cpu"
        )
        if threshold >= 0:
            masks_chunk = (masks_chunk >= threshold).to(dtype=torch.bool)
        else:
            masks_chunk = (masks_chunk * 255).to(dtype=torch.uint8)
        img_masks[(inds, *spatial_inds)] = masks_chunk  # type: ignore[index]
    return img_masks
