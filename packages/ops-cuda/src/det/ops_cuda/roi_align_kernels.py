"""ROIAlign in Triton: forward and backward kernels behind a ``torch.autograd.Function``.

One program handles one ROI and a block of its (channel, bin) outputs, so the ROI's box and its
sampling grid are scalars of the program and the sample loops have the same bounds in every lane
(adaptive grids, ``sampling_ratio <= 0``, differ per ROI, not per lane). The arithmetic is
torchvision's ``roi_align`` (``aligned`` and the legacy mode), so the numbers agree with
det-core's reference up to float rounding. The backward pass scatters each output gradient to the
four pixels of every sample with atomic adds, as torchvision's CUDA kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from det.ops_cuda._utils import INTERPRETED, check_device, compute_dtype

# Outputs per program: a warp-friendly block on a GPU; the interpreter runs fewer, wider programs.
BLOCK = 4096 if INTERPRETED else 128


def block_size(per_roi: int) -> int:
    """Outputs per program; in the interpreter no wider than one ROI's outputs need."""
    return min(BLOCK, triton.next_power_of_2(per_roi)) if INTERPRETED else BLOCK


@triton.jit
def bilinear_weights(y, x, height, width):
    """The four pixels around (y, x) and their weights, torchvision's ``bilinear_interpolate``.

    Samples more than one pixel outside the map get weight 0 (``inside`` is False); within a pixel
    of the border they are clamped onto it.
    """
    inside = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
    # Clamping to [0, size] changes nothing for inside samples and keeps the int casts defined.
    y = tl.minimum(tl.maximum(y, 0.0), height)
    x = tl.minimum(tl.maximum(x, 0.0), width)
    y_low = y.to(tl.int32)
    x_low = x.to(tl.int32)
    y_edge = y_low >= height - 1
    x_edge = x_low >= width - 1
    y_low = tl.where(y_edge, height - 1, y_low)
    x_low = tl.where(x_edge, width - 1, x_low)
    y_high = tl.where(y_edge, y_low, y_low + 1)
    x_high = tl.where(x_edge, x_low, x_low + 1)
    y = tl.where(y_edge, y_low.to(y.dtype), y)
    x = tl.where(x_edge, x_low.to(x.dtype), x)
    ly = y - y_low.to(y.dtype)
    lx = x - x_low.to(x.dtype)
    hy = 1.0 - ly
    hx = 1.0 - lx
    w1 = tl.where(inside, hy * hx, 0.0)
    w2 = tl.where(inside, hy * lx, 0.0)
    w3 = tl.where(inside, ly * hx, 0.0)
    w4 = tl.where(inside, ly * lx, 0.0)
    return (
        w1,
        w2,
        w3,
        w4,
        y_low * width + x_low,
        y_low * width + x_high,
        y_high * width + x_low,
        y_high * width + x_high,
        inside,
    )


@triton.jit
def _roi_geometry(rois_ptr, r, spatial_scale, sampling_ratio, ph_count, pw_count, ALIGNED: tl.constexpr):
    roi = rois_ptr + r * 5
    batch = tl.load(roi).to(tl.int32)  # truncation, as the C kernels' (int) cast
    offset = 0.5 if ALIGNED else 0.0
    start_w = tl.load(roi + 1) * spatial_scale - offset
    start_h = tl.load(roi + 2) * spatial_scale - offset
    roi_w = tl.load(roi + 3) * spatial_scale - offset - start_w
    roi_h = tl.load(roi + 4) * spatial_scale - offset - start_h
    if not ALIGNED:
        # legacy (Detectron) mode: boxes are at least one pixel
        roi_w = tl.maximum(roi_w, 1.0)
        roi_h = tl.maximum(roi_h, 1.0)
    bin_h = roi_h / ph_count
    bin_w = roi_w / pw_count
    grid_h = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(roi_h / ph_count).to(tl.int32))
    grid_w = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(roi_w / pw_count).to(tl.int32))
    return batch, start_h, start_w, bin_h, bin_w, grid_h, grid_w


@triton.jit
def _roi_align_forward_kernel(
    input_ptr,
    rois_ptr,
    output_ptr,
    num_images,
    channels,
    height,
    width,
    pooled_h,
    pooled_w,
    spatial_scale,
    sampling_ratio,
    ALIGNED: tl.constexpr,
    BLOCK: tl.constexpr,
):
    r = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    per_roi = channels * pooled_h * pooled_w
    ok = offs < per_roi
    c = offs // (pooled_h * pooled_w)
    ph = (offs // pooled_w) % pooled_h
    pw = offs % pooled_w
    batch, start_h, start_w, bin_h, bin_w, grid_h, grid_w = _roi_geometry(
        rois_ptr, r, spatial_scale, sampling_ratio, pooled_h, pooled_w, ALIGNED
    )
    # an ROI of a missing image reads nothing (0 out) instead of memory out of bounds
    ok_image = ok & (batch >= 0) & (batch < num_images)
    plane = input_ptr + (batch * channels + c).to(tl.int64) * height * width
    acc = tl.zeros([BLOCK], dtype=output_ptr.dtype.element_ty)
    for iy in range(0, grid_h):
        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(0, grid_w):
            x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            w1, w2, w3, w4, p1, p2, p3, p4, inside = bilinear_weights(y, x, height, width)
            m = ok_image & inside
            acc += (
                w1 * tl.load(plane + p1, mask=m, other=0.0)
                + w2 * tl.load(plane + p2, mask=m, other=0.0)
                + w3 * tl.load(plane + p3, mask=m, other=0.0)
                + w4 * tl.load(plane + p4, mask=m, other=0.0)
            )
    count = tl.maximum(grid_h * grid_w, 1)
    tl.store(output_ptr + r.to(tl.int64) * per_roi + offs, acc / count, mask=ok)


@triton.jit
def _roi_align_backward_kernel(
    grad_output_ptr,
    rois_ptr,
    grad_input_ptr,
    num_images,
    channels,
    height,
    width,
    pooled_h,
    pooled_w,
    spatial_scale,
    sampling_ratio,
    ALIGNED: tl.constexpr,
    BLOCK: tl.constexpr,
):
    r = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    per_roi = channels * pooled_h * pooled_w
    ok = offs < per_roi
    c = offs // (pooled_h * pooled_w)
    ph = (offs // pooled_w) % pooled_h
    pw = offs % pooled_w
    batch, start_h, start_w, bin_h, bin_w, grid_h, grid_w = _roi_geometry(
        rois_ptr, r, spatial_scale, sampling_ratio, pooled_h, pooled_w, ALIGNED
    )
    ok_image = ok & (batch >= 0) & (batch < num_images)
    plane = grad_input_ptr + (batch * channels + c).to(tl.int64) * height * width
    count = tl.maximum(grid_h * grid_w, 1)
    grad = tl.load(grad_output_ptr + r.to(tl.int64) * per_roi + offs, mask=ok, other=0.0) / count
    for iy in range(0, grid_h):
        y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(0, grid_w):
            x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            w1, w2, w3, w4, p1, p2, p3, p4, inside = bilinear_weights(y, x, height, width)
            m = ok_image & inside
            tl.atomic_add(plane + p1, grad * w1, mask=m)
            tl.atomic_add(plane + p2, grad * w2, mask=m)
            tl.atomic_add(plane + p3, grad * w3, mask=m)
            tl.atomic_add(plane + p4, grad * w4, mask=m)


def _launch(kernel, src, rois, dst, input_shape, output_size, spatial_scale, sampling_ratio, aligned):
    n, c, h, w = input_shape
    pooled_h, pooled_w = output_size
    per_roi = c * pooled_h * pooled_w
    if rois.shape[0] == 0 or per_roi == 0 or n * h * w == 0:
        return
    block = block_size(per_roi)
    grid = (rois.shape[0], triton.cdiv(per_roi, block))
    kernel[grid](
        src,
        rois,
        dst,
        n,
        c,
        h,
        w,
        pooled_h,
        pooled_w,
        float(spatial_scale),
        int(sampling_ratio),
        ALIGNED=bool(aligned),
        BLOCK=block,
    )


class _ROIAlign(torch.autograd.Function):
    """Forward and backward Triton kernels; gradients flow to ``input`` only (none to ``rois``)."""

    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio, aligned):
        dtype = compute_dtype("roi_align", input)
        ctx.save_for_backward(rois)
        ctx.args = (tuple(input.shape), input.dtype, output_size, spatial_scale, sampling_ratio, aligned)
        x = input.to(dtype).contiguous()
        rois_c = rois.to(dtype).contiguous()
        output = x.new_zeros((rois.shape[0], input.shape[1], *output_size))
        _launch(
            _roi_align_forward_kernel,
            x,
            rois_c,
            output,
            input.shape,
            output_size,
            spatial_scale,
            sampling_ratio,
            aligned,
        )
        return output.to(input.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        input_shape, input_dtype, output_size, spatial_scale, sampling_ratio, aligned = ctx.args
        dtype = compute_dtype("roi_align", grad_output)
        grad_input = grad_output.new_zeros(input_shape, dtype=dtype)
        _launch(
            _roi_align_backward_kernel,
            grad_output.to(dtype).contiguous(),
            rois.to(dtype).contiguous(),
            grad_input,
            input_shape,
            output_size,
            spatial_scale,
            sampling_ratio,
            aligned,
        )
        return grad_input.to(input_dtype), None, None, None, None, None


def roi_align(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """ROIAlign of (R, 5) ``rois`` [batch index, x0, y0, x1, y1] over (N, C, H, W) ``input``.

    Arguments, defaults and result are ``torchvision.ops.roi_align``'s: (R, C, h, w), differentiable
    in ``input``. ROIs whose batch index is not an image of ``input`` pool zeros.
    """
    if not isinstance(input, torch.Tensor) or input.dim() != 4:
        shape = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
        raise ValueError(f"roi_align: input must be an (N, C, H, W) tensor, got {shape}")
    if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != 5:
        shape = tuple(rois.shape) if isinstance(rois, torch.Tensor) else type(rois).__name__
        raise ValueError(
            f"roi_align: rois must be an (R, 5) tensor [batch index, x0, y0, x1, y1], got {shape}"
        )
    check_device("roi_align", input, rois)
    pooled_h, pooled_w = _pair(output_size)
    return _ROIAlign.apply(
        input,
        rois,
        (int(pooled_h), int(pooled_w)),
        float(spatial_scale),
        int(sampling_ratio),
        bool(aligned),
    )


__all__ = ["bilinear_weights", "block_size", "roi_align"]
