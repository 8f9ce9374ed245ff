"""A pure-torch ROIAlign, for when torchvision is not installed (det-structures must not need it).

It follows torchvision's ``roi_align`` sample for sample: each output bin averages
``grid_h x grid_w`` bilinear samples (``sampling_ratio`` or, when <= 0, ``ceil(roi_size / bin)``),
with torchvision's border rules (a sample more than one pixel outside is 0, otherwise coordinates
are clamped to the image). Bilinear interpolation and those rules are separable in x and y, so
each ROI's output is ``Wy @ image @ Wx^T`` with small per-ROI weight matrices.
"""

from __future__ import annotations

import torch

__all__ = ["roi_align"]


def _axis_weights(
    start: torch.Tensor, size: torch.Tensor, pooled: int, sampling_ratio: int, length: int
) -> torch.Tensor:
    """(K, pooled, length) float64: the averaged bilinear weights of every bin along one axis."""
    k = start.shape[0]
    bin_size = size / pooled
    if sampling_ratio > 0:
        grid = torch.full((k,), sampling_ratio, dtype=torch.long, device=start.device)
    else:
        grid = torch.ceil(size / pooled).clamp(min=0).to(torch.long)
    max_grid = max(int(grid.max().item()) if k else 0, 1)
    g = torch.arange(max_grid, device=start.device, dtype=torch.float64)
    p = torch.arange(pooled, device=start.device, dtype=torch.float64)
    grid_f = grid.clamp(min=1).to(torch.float64)
    # (K, pooled, G) sample coordinates
    coord = (
        start[:, None, None]
        + p[None, :, None] * bin_size[:, None, None]
        + (g[None, None, :] + 0.5) * (bin_size / grid_f)[:, None, None]
    )
    used = g[None, None, :] < grid[:, None, None].to(torch.float64)
    inside = (coord >= -1.0) & (coord <= length)
    coord = coord.clamp(min=0)
    low = coord.floor().to(torch.long)
    at_end = low >= length - 1
    low = torch.where(at_end, torch.full_like(low, length - 1), low)
    high = torch.where(at_end, low, low + 1)
    coord = torch.where(at_end, low.to(coord.dtype), coord)
    frac = coord - low.to(coord.dtype)
    keep = (used & inside).to(torch.float64) / grid_f[:, None, None]
    weights = torch.zeros((k, pooled, length), dtype=torch.float64, device=start.device)
    weights.scatter_add_(2, low, (1 - frac) * keep)
    weights.scatter_add_(2, high, frac * keep)
    return weights


def roi_align(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """(K, C, ph, pw) ROIAlign of ``input`` (B, C, H, W) over ``rois`` (K, 5) of (batch, x1, y1, x2, y2).

    Same arguments and results as ``torchvision.ops.roi_align`` (computed in float64, returned in
    the input's dtype).
    """
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    ph, pw = output_size
    if input.dim() != 4:
        raise ValueError(f"roi_align expects input of shape (B, C, H, W), got {tuple(input.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"roi_align expects rois of shape (K, 5), got {tuple(rois.shape)}")
    _, channels, height, width = input.shape
    num = rois.shape[0]
    if num == 0:
        return input.new_zeros((0, channels, ph, pw))
    rois = rois.to(device=input.device, dtype=torch.float64)
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        # torchvision's legacy behaviour: ROIs are at least one pixel wide.
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    wy = _axis_weights(y1, roi_h, ph, sampling_ratio, height)  # (K, ph, H)
    wx = _axis_weights(x1, roi_w, pw, sampling_ratio, width)  # (K, pw, W)
    images = input.to(torch.float64)[rois[:, 0].to(torch.long)]  # (K, C, H, W)
    out = torch.matmul(torch.matmul(wy[:, None], images), wx[:, None].transpose(-1, -2))
    return out.to(input.dtype)
