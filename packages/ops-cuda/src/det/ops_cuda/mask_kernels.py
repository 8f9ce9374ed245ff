"""Pasting per-ROI mask predictions into the image in Triton: ``paste_masks``.

Each output pixel samples its box's (M, M) mask bilinearly exactly as detectron2's GPU path does
(``grid_sample`` with ``align_corners=False`` and zero padding over the whole image), and is
thresholded in the same pass, so no float (N, H, W) intermediate is ever allocated and there is no
chunking under a memory budget.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from det.ops_cuda._utils import INTERPRETED, check_device

BLOCK = 8192 if INTERPRETED else 512


@triton.jit
def _corner(masks_ptr, base, yi, xi, size, weight, ok):
    inside = ok & (yi >= 0) & (yi < size) & (xi >= 0) & (xi < size)
    return weight * tl.load(masks_ptr + base + yi * size + xi, mask=inside, other=0.0)


@triton.jit
def _paste_masks_kernel(
    masks_ptr,
    boxes_ptr,
    out_ptr,
    mask_size,
    img_h,
    img_w,
    threshold,
    BINARY: tl.constexpr,
    BLOCK: tl.constexpr,
):
    n = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < img_h * img_w
    py = (offs // img_w).to(tl.float32) + 0.5
    px = (offs % img_w).to(tl.float32) + 0.5
    box = boxes_ptr + n * 4
    x0 = tl.load(box)
    y0 = tl.load(box + 1)
    x1 = tl.load(box + 2)
    y1 = tl.load(box + 3)
    # A zero-size box maps every pixel to +-inf in grid_sample, which samples NaN: False at
    # any threshold (and 0 as uint8, what the NaN casts to), so nothing is sampled here.
    box_ok = (x1 != x0) & (y1 != y0)
    gy = (py - y0) / tl.where(box_ok, y1 - y0, 1.0) * 2.0 - 1.0
    gx = (px - x0) / tl.where(box_ok, x1 - x0, 1.0) * 2.0 - 1.0
    # grid_sample's unnormalisation for align_corners=False
    iy = ((gy + 1.0) * mask_size - 1.0) / 2.0
    ix = ((gx + 1.0) * mask_size - 1.0) / 2.0
    # Far-outside samples read nothing; clamping keeps the int casts defined.
    iy = tl.minimum(tl.maximum(iy, -2.0), mask_size + 1.0)
    ix = tl.minimum(tl.maximum(ix, -2.0), mask_size + 1.0)
    fy = tl.floor(iy)
    fx = tl.floor(ix)
    ty = iy - fy
    tx = ix - fx
    yi = fy.to(tl.int32)
    xi = fx.to(tl.int32)
    m = tl.where(box_ok, ok, False)
    base = n.to(tl.int64) * mask_size * mask_size
    value = (
        _corner(masks_ptr, base, yi, xi, mask_size, (1.0 - tx) * (1.0 - ty), m)
        + _corner(masks_ptr, base, yi, xi + 1, mask_size, tx * (1.0 - ty), m)
        + _corner(masks_ptr, base, yi + 1, xi, mask_size, (1.0 - tx) * ty, m)
        + _corner(masks_ptr, base, yi + 1, xi + 1, mask_size, tx * ty, m)
    )
    if BINARY:  # noqa: SIM108  (constexpr branch: triton compiles one side only)
        result = ((value >= threshold) & m).to(tl.uint8)
    else:
        result = (value * 255.0).to(tl.uint8)
    tl.store(out_ptr + n.to(tl.int64) * img_h * img_w + offs, result, mask=ok)


def paste_masks(
    masks: torch.Tensor, boxes: torch.Tensor, image_shape: tuple[int, int], threshold: float = 0.5
) -> torch.Tensor:
    """Paste (N, M, M) soft masks into their (N, 4) XYXY boxes: (N, image_h, image_w).

    bool ``value >= threshold``, or uint8 ``value * 255`` when ``threshold < 0``: detectron2's
    ``paste_masks_in_image`` on a GPU (every pixel of the image is sampled).
    """
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3 or masks.shape[-1] != masks.shape[-2]:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"paste_masks: masks must be an (N, M, M) tensor (square masks), got {shape}")
    if not isinstance(boxes, torch.Tensor) or boxes.shape != (masks.shape[0], 4):
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"paste_masks: boxes must be an ({masks.shape[0]}, 4) XYXY tensor, got {shape}")
    if len(image_shape) != 2:
        raise ValueError(f"paste_masks: image_shape must be (height, width), got {image_shape!r}")
    device = check_device("paste_masks", masks, boxes)
    img_h, img_w = int(image_shape[0]), int(image_shape[1])
    n, size = masks.shape[0], masks.shape[-1]
    binary = threshold >= 0
    out = torch.zeros((n, img_h, img_w), dtype=torch.uint8, device=device)
    if n and img_h * img_w and size:
        grid = (n, triton.cdiv(img_h * img_w, BLOCK))
        _paste_masks_kernel[grid](
            masks.to(torch.float32).contiguous(),
            boxes.to(torch.float32).contiguous(),
            out,
            size,
            img_h,
            img_w,
            float(threshold),
            BINARY=binary,
            BLOCK=BLOCK,
        )
    return out.view(torch.bool) if binary else out


__all__ = ["paste_masks"]
