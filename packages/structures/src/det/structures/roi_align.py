"""ROIAlign's sampling geometry, and a pure-torch ROIAlign for when torchvision is not installed
(det-structures must not need it).

:func:`roi_align_samples` is the geometry every CPU ROIAlign of det uses (this module's
:func:`roi_align` and det-core's separable one): where each bin's samples lie along each axis, which
pixels they interpolate and with which weights, by torchvision's rules::

    rows, cols = roi_align_samples(rois, (7, 7), 1 / 16, 0, True, (height, width))
    rows.low.shape   # (R, 7, samples): the pixel row at or above each sample

:func:`roi_align` reproduces torchvision's CPU ``roi_align`` bit for bit, not just approximately:
thresholding ROIAligned bitmasks at 0.5 (Mask R-CNN's targets) turns any last-bit difference at an
exact 0.5 into a flipped pixel. So every quantity is computed in the input's precision with
torchvision's operation order: the sample position ``(start + p * bin) + ((i + 0.5) * bin) / grid``,
the four bilinear weights ``hy * hx, hy * lx, ly * hx, ly * lx`` (samples more than one pixel
outside weigh 0, others are clamped to the image), each sample's value
``((w1 v1 + w2 v2) + w3 v3) + w4 v4``, samples summed in row-major order, then divided by their
count. Bins are processed for all ROIs at once, one row of sample positions at a time.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["AxisSamples", "roi_align", "roi_align_samples"]


class AxisSamples(NamedTuple):
    """The samples of every ROI (R), bin (P) and sample (G) along one axis.

    ``low``/``high`` (R, P, G) long: the pixels on either side of the sample (``high == low`` on
    the last pixel); ``frac`` (R, P, G): the weight of ``high`` (``low``'s is ``1 - frac``);
    ``valid`` (R, P, G) bool: the sample exists (``g < grid``) and lies at most one pixel outside
    the map (others weigh 0); ``grid`` (R,) long: samples per bin along this axis.
    """

    low: torch.Tensor
    high: torch.Tensor
    frac: torch.Tensor
    valid: torch.Tensor
    grid: torch.Tensor


def _axis_samples(start: torch.Tensor, bin_size: torch.Tensor, grid: torch.Tensor, pooled: int, length: int,
                  min_samples: int) -> AxisSamples:
    dtype = start.dtype
    num_samples = max(int(grid.max().item()) if grid.numel() else 0, min_samples)
    p = torch.arange(pooled, device=start.device, dtype=dtype)
    g = torch.arange(num_samples, device=start.device, dtype=dtype)
    base = start[:, None] + p[None, :] * bin_size[:, None]  # (R, P)
    step = ((g[None, :] + 0.5) * bin_size[:, None]) / grid.clamp(min=1).to(dtype)[:, None]  # (R, G)
    coord = base[:, :, None] + step[:, None, :]  # (R, P, G)
    valid = ~((coord < -1.0) | (coord > length))
    valid &= torch.arange(num_samples, device=start.device)[None, None, :] < grid[:, None, None]
    coord = torch.where(coord <= 0, torch.zeros_like(coord), coord)
    low = coord.floor().to(torch.long)
    at_end = low >= length - 1
    low = torch.where(at_end, torch.full_like(low, length - 1), low)
    high = torch.where(at_end, low, low + 1)
    coord = torch.where(at_end, low.to(dtype), coord)
    return AxisSamples(low, high, coord - low.to(dtype), valid, grid)


def roi_align_samples(
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
    size: tuple[int, int],
    *,
    min_samples: int = 0,
) -> tuple[AxisSamples, AxisSamples]:
    """The (rows, columns) :class:`AxisSamples` of ROIAlign over a ``size`` = (H, W) map.

    ``rois`` (R, 5) [batch index, x0, y0, x1, y1] in the dtype to compute in; torchvision's
    arguments (``sampling_ratio <= 0``: adaptive, ``ceil(box side / bins)`` samples; ``aligned``
    shifts by half a pixel, else boxes are at least 1x1). ``min_samples``: at least that many
    sample slots per axis (invalid beyond ``grid``).
    """
    pooled_h, pooled_w = output_size
    height, width = size
    dtype = rois.dtype
    scale = torch.tensor(spatial_scale, dtype=dtype, device=rois.device)
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * scale - offset
    start_h = rois[:, 2] * scale - offset
    roi_w = (rois[:, 3] * scale - offset) - start_w
    roi_h = (rois[:, 4] * scale - offset) - start_h
    if not aligned:
        # torchvision's legacy behaviour: ROIs are at least one pixel wide.
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full((rois.shape[0],), sampling_ratio, dtype=torch.long, device=rois.device)
        grid_w = grid_h
    else:
        grid_h = torch.ceil(roi_h / pooled_h).to(torch.long).clamp(min=0)
        grid_w = torch.ceil(roi_w / pooled_w).to(torch.long).clamp(min=0)
    rows = _axis_samples(start_h, roi_h / pooled_h, grid_h, pooled_h, height, min_samples)
    cols = _axis_samples(start_w, roi_w / pooled_w, grid_w, pooled_w, width, min_samples)
    return rows, cols


def roi_align(input: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """(K, C, ph, pw) ROIAlign of ``input`` (B, C, H, W) over ``rois`` (K, 5) of (batch, x1, y1, x2, y2).

    Same arguments and results as ``torchvision.ops.roi_align`` on the CPU.
    """
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    pooled_h, pooled_w = int(output_size[0]), int(output_size[1])
    if input.dim() != 4:
        raise ValueError(f"roi_align expects input of shape (B, C, H, W), got {tuple(input.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"roi_align expects rois of shape (K, 5), got {tuple(rois.shape)}")
    _, channels, height, width = input.shape
    num = rois.shape[0]
    if num == 0:
        return input.new_zeros((0, channels, pooled_h, pooled_w))

    dtype = input.dtype if input.dtype in (torch.float32, torch.float64) else torch.float32
    x = input.to(dtype)
    rois = rois.to(device=input.device, dtype=dtype)
    rows, cols = roi_align_samples(rois, (pooled_h, pooled_w), spatial_scale, sampling_ratio, aligned, (height, width))
    count = (rows.grid * cols.grid).clamp(min=1).to(dtype)
    # Invalid samples read pixel 0 with weight 0, as torchvision does.
    y_low, y_high, ly, hy = _zero_invalid(rows)
    x_low, x_high, lx, hx = _zero_invalid(cols)

    batch = rois[:, 0].to(torch.long)[:, None, None, None]  # (K, 1, 1, 1)
    # Channels-last rows, so one gather of flat pixel indices fetches every channel.
    pixels = x.permute(0, 2, 3, 1).reshape(-1, channels)
    out = torch.zeros((num, pooled_h, pooled_w, channels), dtype=dtype, device=input.device)
    for iy in range(y_low.shape[2]):
        # One row of samples (every ix) is gathered at once; the sum still goes sample by sample.
        yl, yh = y_low[:, :, None, iy, None], y_high[:, :, None, iy, None]  # (K, ph, 1, 1)
        wy_low, wy_high = hy[:, :, None, iy, None], ly[:, :, None, iy, None]
        xl, xh = x_low[:, None], x_high[:, None]  # (K, 1, pw, Gw)
        wx_low, wx_high = hx[:, None], lx[:, None]
        w1 = (wy_low * wx_low)[..., None]  # (K, ph, pw, Gw, 1)
        w2 = (wy_low * wx_high)[..., None]
        w3 = (wy_high * wx_low)[..., None]
        w4 = (wy_high * wx_high)[..., None]
        row_low = (batch * height + yl) * width
        row_high = (batch * height + yh) * width
        values = (
            (w1 * pixels[row_low + xl] + w2 * pixels[row_low + xh]) + w3 * pixels[row_high + xl]
        ) + w4 * pixels[row_high + xh]
        for ix in range(values.shape[3]):
            out += values[:, :, :, ix]
    out = out / count[:, None, None, None]
    return out.permute(0, 3, 1, 2).contiguous().to(input.dtype)


def _zero_invalid(samples: AxisSamples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(low, high, weight of high, weight of low), invalid samples at pixel 0 with weight 0."""
    low, high, frac, valid, _ = samples
    zero = torch.zeros_like(frac)
    return (torch.where(valid, low, torch.zeros_like(low)), torch.where(valid, high, torch.zeros_like(high)),
            torch.where(valid, frac, zero), torch.where(valid, 1.0 - frac, zero))
