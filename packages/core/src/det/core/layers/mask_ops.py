"""Pasting fixed-resolution mask predictions into the image, through the op dispatch table."""

from __future__ import annotations

from typing import Any

import torch

from det.core.layers.ops import dispatch


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


def _paste_masks_reference(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """detectron2's ``paste_masks_in_image`` (grid_sample, chunked, thresholded).

    det.structures owns it (``ROIMasks.to_bitmasks`` needs it and structures imports nothing of
    det); the op table routes to it so a plugin can replace it per device.
    """
    from det.structures.mask_ops import paste_masks_in_image as structures_paste

    return structures_paste(masks, boxes, image_shape, threshold)


__all__ = ["paste_masks", "paste_masks_in_image"]
