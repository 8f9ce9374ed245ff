"""Pasting fixed-resolution mask predictions into the image, through the op dispatch table."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from det.core.layers.ops import dispatch

BYTES_PER_FLOAT = 4
# Memory allowed per chunk when pasting on an accelerator (all masks of a chunk at once).
GPU_MEM_LIMIT = 1024**3


def paste_masks(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """Paste (N, M, M) soft masks (values in [0, 1]) into their (N, 4) XYXY boxes of an image.

    Returns (N, image_h, image_w): bool ``mask >= threshold``, or, when ``threshold < 0``, uint8
    ``mask * 255`` (for visualisation). Sampling is bilinear with detectron2's pixel model (a mask
    cell i covers box coordinates [i, i + 1) * box_size / M).
    """
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3 or masks.shape[-1] != masks.shape[-2]:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"paste_masks: masks must be an (N, M, M) tensor (square masks), got {shape}")
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape != (masks.shape[0], 4):
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"paste_masks: boxes must be an ({masks.shape[0]}, 4) XYXY tensor, got {shape}")
    if len(image_shape) != 2:
        raise ValueError(f"paste_masks: image_shape must be (height, width), got {image_shape!r}")
    image_shape = (int(image_shape[0]), int(image_shape[1]))
    return dispatch("paste_masks", masks, boxes)(masks, boxes, image_shape, float(threshold))


def paste_masks_in_image(
    masks: torch.Tensor, boxes: Any, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """detectron2's name: :func:`paste_masks` that also takes ``Boxes`` (anything with ``.tensor``)."""
    if not isinstance(boxes, torch.Tensor):
        boxes = boxes.tensor
    return paste_masks(masks, boxes, image_shape, threshold)


def _do_paste_mask(masks: torch.Tensor, boxes: torch.Tensor, img_h: int, img_w: int, skip_empty: bool):
    """Sample (N, 1, M, M) ``masks`` on the image grid of their boxes.

    With ``skip_empty`` only the region that tightly bounds all boxes is sampled (a large saving on
    CPU, where masks go one at a time); returns that region and its slices.
    """
    device = masks.device
    if skip_empty:
        x0_int, y0_int = (
            torch.clamp(boxes.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32).tolist()
        )
        x1_int = int(torch.clamp(boxes[:, 2].max().ceil() + 1, max=img_w).item())
        y1_int = int(torch.clamp(boxes[:, 3].max().ceil() + 1, max=img_h).item())
    else:
        x0_int, y0_int, x1_int, y1_int = 0, 0, img_w, img_h
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)  # each (N, 1)
    n = masks.shape[0]

    # Pixel centres, normalised to [-1, 1] across each box: grid_sample's align_corners=False frame.
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


def _paste_masks_reference(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """detectron2's ``paste_masks_in_image``: grid_sample, chunked, thresholded."""
    n = masks.shape[0]
    img_h, img_w = image_shape
    if n == 0:
        return masks.new_empty((0, img_h, img_w), dtype=torch.uint8)
    device = boxes.device
    if device.type == "cpu":
        # one mask at a time over its own bounding region does the fewest operations on CPU
        num_chunks = n
    else:
        num_chunks = math.ceil(n * img_h * img_w * BYTES_PER_FLOAT / GPU_MEM_LIMIT)
        if num_chunks > n:
            raise ValueError(f"paste_masks: GPU_MEM_LIMIT ({GPU_MEM_LIMIT} bytes) is too small for one mask")
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
        img_masks[(inds, *spatial_inds)] = masks_chunk
    return img_masks


__all__ = ["paste_masks", "paste_masks_in_image"]
