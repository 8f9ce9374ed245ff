"""A pure-torch ROIAlign, for when torchvision is not installed (det-structures must not need it).

It reproduces torchvision's CPU ``roi_align`` bit for bit, not just approximately: thresholding
ROIAligned bitmasks at 0.5 (Mask R-CNN's targets) turns any last-bit difference at an exact 0.5
into a flipped pixel. So every quantity is computed in the input's precision with torchvision's
operation order: the sample position ``(start + p * bin) + ((i + 0.5) * bin) / grid``, the four
bilinear weights ``hy * hx, hy * lx, ly * hx, ly * lx`` (samples more than one pixel outside
weigh 0, others are clamped to the image), each sample's value
``((w1 v1 + w2 v2) + w3 v3) + w4 v4``, samples summed in row-major order, then divided by
their count. Bins are processed for all ROIs at once, one row of sample positions at a time.
"""

from __future__ import annotations

import torch

__all__ = ["roi_align"]


def _axis_samples(
    start: torch.Tensor, bin_size: torch.Tensor, grid: torch.Tensor, pooled: int, length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Along one axis, for every ROI (K), bin (P) and sample (G): low/high pixel, their weights, validity."""
    dtype = start.dtype
    num_samples = max(int(grid.max().item()), 0) if grid.numel() else 0
    p = torch.arange(pooled, device=start.device, dtype=dtype)
    g = torch.arange(num_samples, device=start.device, dtype=dtype)
    base = start[:, None] + p[None, :] * bin_size[:, None]  # (K, P)
    step = ((g[None, :] + 0.5) * bin_size[:, None]) / grid.clamp(min=1).to(dtype)[:, None]  # (K, G)
    coord = base[:, :, None] + step[:, None, :]  # (K, P, G)
    valid = ~((coord < -1.0) | (coord > length))
    valid &= torch.arange(num_samples, device=start.device)[None, None, :] < grid[:, None, None]
    coord = torch.where(coord <= 0, torch.zeros_like(coord), coord)
    low = coord.floor().to(torch.long)
    at_end = low >= length - 1
    low = torch.where(at_end, torch.full_like(low, length - 1), low)
    high = torch.where(at_end, low, low + 1)
    coord = torch.where(at_end, low.to(dtype), coord)
    frac = coord - low.to(dtype)
    # Invalid samples read pixel 0 with weight 0, as torchvision does.
    low = torch.where(valid, low, torch.zeros_like(low))
    high = torch.where(valid, high, torch.zeros_like(high))
    frac = torch.where(valid, frac, torch.zeros_like(frac))
    rest = torch.where(valid, 1.0 - frac, torch.zeros_like(frac))
    return low, high, frac, rest, valid


def roi_align(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
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
    scale = torch.tensor(spatial_scale, dtype=dtype, device=input.device)
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * scale - offset
    start_h = rois[:, 2] * scale - offset
    roi_w = (rois[:, 3] * scale - offset) - start_w
    roi_h = (rois[:, 4] * scale - offset) - start_h
    if not aligned:
        # torchvision's legacy behaviour: ROIs are at least one pixel wide.
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_h = roi_h / pooled_h
    bin_w = roi_w / pooled_w
    if sampling_ratio > 0:
        grid_h = torch.full((num,), sampling_ratio, dtype=torch.long, device=input.device)
        grid_w = grid_h
    else:
        grid_h = torch.ceil(roi_h / pooled_h).to(torch.long)
        grid_w = torch.ceil(roi_w / pooled_w).to(torch.long)
    count = (grid_h * grid_w).clamp(min=1).to(dtype)

    y_low, y_high, ly, hy, _ = _axis_samples(start_h, bin_h, grid_h.clamp(min=0), pooled_h, height)
    x_low, x_high, lx, hx, _ = _axis_samples(start_w, bin_w, grid_w.clamp(min=0), pooled_w, width)

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
