"""ROIAlignRotated: ROIAlign over rotated boxes, in plain torch (detectron2's kernel, no C++)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from det.core.layers.ops import dispatch
from det.core.layers.roi_align import check_roi_args

# Upper bound on gathered values (samples x channels) held at once by the reference: keeps a few
# thousand large adaptive boxes from allocating gigabytes.
_MAX_GATHER_ELEMENTS = 1 << 24


def roi_align_rotated(input: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
                      spatial_scale: float, sampling_ratio: int) -> torch.Tensor:
    """ROIAlign of (R, 6) rotated ``rois`` over ``input``: (R, C, h, w); see :class:`ROIAlignRotated`."""
    check_roi_args("roi_align_rotated", input, rois, rotated=True)
    return dispatch("roi_align_rotated", input, rois)(
        input, rois, _pair(output_size), float(spatial_scale), int(sampling_ratio)
    )


class ROIAlignRotated(nn.Module):
    """ROIAlign whose boxes are rotated counter-clockwise by their angle (degrees) about their centre.

    ``rois`` are (R, 6): batch index, cx, cy, w, h, angle. Output bin (i, j) averages bilinear
    samples on the box's own grid, so at angle 0 it equals ``ROIAlign(..., aligned=True)``::

        pool = ROIAlignRotated((7, 7), spatial_scale=1 / 16, sampling_ratio=0)
        rois = torch.tensor([[0, 32.0, 32.0, 64.0, 16.0, 30.0]])
        out = pool(features, rois)   # (1, C, 7, 7)

    Coordinates are always continuous (a pixel at index i is the sample at i + 0.5: no legacy
    mode). fp16 inputs are computed in fp32 and returned in fp16.
    """

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float, sampling_ratio: int):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """input: (N, C, H, W) features; rois: (R, 6) [batch index, cx, cy, w, h, angle]."""
        check_roi_args("ROIAlignRotated", input, rois, rotated=True)
        orig_dtype = input.dtype
        if orig_dtype == torch.float16:
            input = input.float()
            rois = rois.float()
        out = roi_align_rotated(
            input, rois.to(input.dtype), self.output_size, self.spatial_scale, self.sampling_ratio
        )
        return out.to(dtype=orig_dtype)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio})"
        )


def _roi_align_rotated_reference(input: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int],
                                 spatial_scale: float, sampling_ratio: int) -> torch.Tensor:
    """detectron2's ROIAlignRotated forward, vectorised; autograd gives its backward.

    The output is linear in ``input`` with weights that depend only on ``rois``, so the gradient
    autograd computes through the gathers is exactly the kernel's hand-written backward (no gradient
    flows to ``rois``, as in detectron2).
    """
    pooled_h, pooled_w = output_size
    num_rois = rois.shape[0]
    n, channels, height, width = input.shape
    out = input.new_zeros((num_rois, channels, pooled_h, pooled_w))
    if num_rois == 0 or out.numel() == 0:
        return out + input.sum() * 0  # keep the graph connected for empty batches

    rois = rois.detach()
    batch_idx = rois[:, 0].to(torch.int64)  # the kernel casts to int (truncation)
    if (batch_idx < 0).any() or (batch_idx >= n).any():
        raise ValueError(f"roi_align_rotated: batch indices must be in [0, {n}), got {rois[:, 0].tolist()}")
    # Centre-based, continuous coordinates: -0.5 maps pixel centres to integer sample positions.
    center_w = rois[:, 1] * spatial_scale - 0.5
    center_h = rois[:, 2] * spatial_scale - 0.5
    roi_w = rois[:, 3] * spatial_scale
    roi_h = rois[:, 4] * spatial_scale
    if (roi_w < 0).any() or (roi_h < 0).any():
        raise ValueError("roi_align_rotated: ROIs must have non-negative width and height")
    theta = (rois[:, 5].double() * (math.pi / 180.0)).to(rois.dtype)
    cos_t, sin_t = torch.cos(theta), torch.sin(theta)
    bin_h = roi_h / pooled_h
    bin_w = roi_w / pooled_w
    if sampling_ratio > 0:
        grid_h = torch.full_like(batch_idx, sampling_ratio)
        grid_w = torch.full_like(batch_idx, sampling_ratio)
    else:
        grid_h = torch.ceil(roi_h / pooled_h).to(torch.int64)
        grid_w = torch.ceil(roi_w / pooled_w).to(torch.int64)

    # (N*H*W, C): one row per pixel, so each sample gathers a contiguous channel vector.
    flat = input.permute(0, 2, 3, 1).reshape(n * height * width, channels)

    # ROIs with the same sampling grid are computed together; within a group the shapes are fixed.
    pairs = torch.stack([grid_h, grid_w], dim=1)
    for gh, gw in torch.unique(pairs, dim=0).tolist():
        members = ((grid_h == gh) & (grid_w == gw)).nonzero().flatten()
        if gh * gw == 0:
            continue  # no samples: the kernel writes 0
        per_roi = pooled_h * pooled_w * gh * gw * channels
        chunk = max(1, _MAX_GATHER_ELEMENTS // max(per_roi, 1))
        for sel in members.split(chunk):
            out[sel] = _pool_group(
                flat,
                height,
                width,
                batch_idx[sel],
                center_h[sel],
                center_w[sel],
                roi_h[sel],
                roi_w[sel],
                bin_h[sel],
                bin_w[sel],
                cos_t[sel],
                sin_t[sel],
                pooled_h,
                pooled_w,
                gh,
                gw,
            )
    return out


def _pool_group(
    flat,
    height,
    width,
    batch_idx,
    center_h,
    center_w,
    roi_h,
    roi_w,
    bin_h,
    bin_w,
    cos_t,
    sin_t,
    pooled_h,
    pooled_w,
    gh,
    gw,
) -> torch.Tensor:
    """Pooled values (R, C, pooled_h, pooled_w) for ROIs sharing a (gh, gw) sampling grid."""
    device, dtype = flat.device, flat.dtype
    r = batch_idx.shape[0]
    col = lambda v: v.view(r, 1, 1, 1, 1)  # noqa: E731  (R,) -> broadcast over (ph, iy, pw, ix)

    ph = torch.arange(pooled_h, device=device, dtype=dtype).view(1, pooled_h, 1, 1, 1)
    iy = (torch.arange(gh, device=device, dtype=dtype) + 0.5).view(1, 1, gh, 1, 1)
    pw = torch.arange(pooled_w, device=device, dtype=dtype).view(1, 1, 1, pooled_w, 1)
    ix = (torch.arange(gw, device=device, dtype=dtype) + 0.5).view(1, 1, 1, 1, gw)
    # Sample offsets from the box centre, in the box's own (unrotated) frame.
    yy = -col(roi_h) / 2.0 + ph * col(bin_h) + iy * col(bin_h) / gh
    xx = -col(roi_w) / 2.0 + pw * col(bin_w) + ix * col(bin_w) / gw
    # Rotate counter-clockwise by theta about the centre, (y, x) order as the kernel.
    y = yy * col(cos_t) - xx * col(sin_t) + col(center_h)
    x = yy * col(sin_t) + xx * col(cos_t) + col(center_w)

    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low = y.to(torch.int64)
    x_low = x.to(torch.int64)
    y_at_edge = y_low >= height - 1
    x_at_edge = x_low >= width - 1
    y_low = torch.where(y_at_edge, torch.full_like(y_low, height - 1), y_low)
    x_low = torch.where(x_at_edge, torch.full_like(x_low, width - 1), x_low)
    y_high = torch.where(y_at_edge, y_low, y_low + 1)
    x_high = torch.where(x_at_edge, x_low, x_low + 1)
    y = torch.where(y_at_edge, y_low.to(dtype), y)
    x = torch.where(x_at_edge, x_low.to(dtype), x)
    ly = y - y_low.to(dtype)
    lx = x - x_low.to(dtype)
    hy, hx = 1.0 - ly, 1.0 - lx
    keep = (~outside).to(dtype)
    # Samples outside the map contribute 0; their (clamped) indices are still valid to gather.
    weights = [hy * hx * keep, hy * lx * keep, ly * hx * keep, ly * lx * keep]
    base = col(batch_idx) * (height * width)
    positions = [
        base + y_low * width + x_low,
        base + y_low * width + x_high,
        base + y_high * width + x_low,
        base + y_high * width + x_high,
    ]
    shape = y.shape  # (R, ph, gh, pw, gw)
    terms = [
        flat.index_select(0, pos.reshape(-1)).view(*shape, -1) * w.unsqueeze(-1)
        for w, pos in zip(weights, positions)
    ]
    total = terms[0] + terms[1] + terms[2] + terms[3]  # the kernel's w1*v1 + w2*v2 + w3*v3 + w4*v4
    pooled = total.sum(dim=(2, 4)) / float(gh * gw)  # (R, ph, pw, C)
    return pooled.permute(0, 3, 1, 2)


__all__ = ["ROIAlignRotated", "roi_align_rotated"]
