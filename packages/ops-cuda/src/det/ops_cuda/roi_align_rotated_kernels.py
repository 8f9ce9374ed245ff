"""ROIAlignRotated in Triton: detectron2's rotated ROIAlign, forward and backward.

Same layout as :mod:`det.ops_cuda.roi_align_kernels` (one program per ROI and block of outputs);
the sample grid is laid out in the box's own frame and rotated counter-clockwise by the box angle
about its centre. Coordinates are always continuous (the 0.5 pixel shift; there is no legacy mode).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from det.ops_cuda._utils import check_device, compute_dtype
from det.ops_cuda.roi_align_kernels import bilinear_weights, block_size


@triton.jit
def _rotated_geometry(rois_ptr, r, spatial_scale, sampling_ratio, ph_count, pw_count):
    roi = rois_ptr + r * 6
    batch = tl.load(roi).to(tl.int32)
    center_w = tl.load(roi + 1) * spatial_scale - 0.5
    center_h = tl.load(roi + 2) * spatial_scale - 0.5
    roi_w = tl.load(roi + 3) * spatial_scale
    roi_h = tl.load(roi + 4) * spatial_scale
    theta = tl.load(roi + 5) * 0.017453292519943295
    cos_t = tl.cos(theta)
    sin_t = tl.sin(theta)
    bin_h = roi_h / ph_count
    bin_w = roi_w / pw_count
    grid_h = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(roi_h / ph_count).to(tl.int32))
    grid_w = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(roi_w / pw_count).to(tl.int32))
    return batch, center_h, center_w, -roi_h / 2.0, -roi_w / 2.0, bin_h, bin_w, cos_t, sin_t, grid_h, grid_w


@triton.jit
def _roi_align_rotated_forward_kernel(
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
    BLOCK: tl.constexpr,
):
    r = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    per_roi = channels * pooled_h * pooled_w
    ok = offs < per_roi
    c = offs // (pooled_h * pooled_w)
    ph = (offs // pooled_w) % pooled_h
    pw = offs % pooled_w
    batch, center_h, center_w, start_h, start_w, bin_h, bin_w, cos_t, sin_t, grid_h, grid_w = (
        _rotated_geometry(rois_ptr, r, spatial_scale, sampling_ratio, pooled_h, pooled_w)
    )
    ok_image = ok & (batch >= 0) & (batch < num_images)
    plane = input_ptr + (batch * channels + c).to(tl.int64) * height * width
    acc = tl.zeros([BLOCK], dtype=output_ptr.dtype.element_ty)
    for iy in range(0, grid_h):
        yy = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(0, grid_w):
            xx = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            y = yy * cos_t - xx * sin_t + center_h
            x = yy * sin_t + xx * cos_t + center_w
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
def _roi_align_rotated_backward_kernel(
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
    BLOCK: tl.constexpr,
):
    r = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    per_roi = channels * pooled_h * pooled_w
    ok = offs < per_roi
    c = offs // (pooled_h * pooled_w)
    ph = (offs // pooled_w) % pooled_h
    pw = offs % pooled_w
    batch, center_h, center_w, start_h, start_w, bin_h, bin_w, cos_t, sin_t, grid_h, grid_w = (
        _rotated_geometry(rois_ptr, r, spatial_scale, sampling_ratio, pooled_h, pooled_w)
    )
    ok_image = ok & (batch >= 0) & (batch < num_images)
    plane = grad_input_ptr + (batch * channels + c).to(tl.int64) * height * width
    count = tl.maximum(grid_h * grid_w, 1)
    grad = tl.load(grad_output_ptr + r.to(tl.int64) * per_roi + offs, mask=ok, other=0.0) / count
    for iy in range(0, grid_h):
        yy = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
        for ix in range(0, grid_w):
            xx = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            y = yy * cos_t - xx * sin_t + center_h
            x = yy * sin_t + xx * cos_t + center_w
            w1, w2, w3, w4, p1, p2, p3, p4, inside = bilinear_weights(y, x, height, width)
            m = ok_image & inside
            tl.atomic_add(plane + p1, grad * w1, mask=m)
            tl.atomic_add(plane + p2, grad * w2, mask=m)
            tl.atomic_add(plane + p3, grad * w3, mask=m)
            tl.atomic_add(plane + p4, grad * w4, mask=m)


def _launch(kernel, src, rois, dst, input_shape, output_size, spatial_scale, sampling_ratio):
    n, c, h, w = input_shape
    pooled_h, pooled_w = output_size
    per_roi = c * pooled_h * pooled_w
    if rois.shape[0] == 0 or per_roi == 0 or n * h * w == 0:
        return
    block = block_size(per_roi)
    grid = (rois.shape[0], triton.cdiv(per_roi, block))
    kernel[grid](
        src, rois, dst, n, c, h, w, pooled_h, pooled_w, float(spatial_scale), int(sampling_ratio), BLOCK=block
    )


class _ROIAlignRotated(torch.autograd.Function):
    """Forward and backward Triton kernels; gradients flow to ``input`` only (none to ``rois``)."""

    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio):
        dtype = compute_dtype("roi_align_rotated", input)
        ctx.save_for_backward(rois)
        ctx.args = (tuple(input.shape), input.dtype, output_size, spatial_scale, sampling_ratio)
        x = input.to(dtype).contiguous()
        output = x.new_zeros((rois.shape[0], input.shape[1], *output_size))
        _launch(
            _roi_align_rotated_forward_kernel,
            x,
            rois.to(dtype).contiguous(),
            output,
            input.shape,
            output_size,
            spatial_scale,
            sampling_ratio,
        )
        return output.to(input.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        input_shape, input_dtype, output_size, spatial_scale, sampling_ratio = ctx.args
        dtype = compute_dtype("roi_align_rotated", grad_output)
        grad_input = grad_output.new_zeros(input_shape, dtype=dtype)
        _launch(
            _roi_align_rotated_backward_kernel,
            grad_output.to(dtype).contiguous(),
            rois.to(dtype).contiguous(),
            grad_input,
            input_shape,
            output_size,
            spatial_scale,
            sampling_ratio,
        )
        return grad_input.to(input_dtype), None, None, None, None


def roi_align_rotated(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
) -> torch.Tensor:
    """ROIAlign of (R, 6) rotated ``rois`` [batch index, cx, cy, w, h, angle in degrees]: (R, C, h, w).

    detectron2's ROIAlignRotated, differentiable in ``input``. Boxes with a negative size and ROIs
    of an image not in ``input`` pool zeros (det-core's reference raises for them instead: checking
    would cost a device synchronisation on every call).
    """
    if not isinstance(input, torch.Tensor) or input.dim() != 4:
        shape = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
        raise ValueError(f"roi_align_rotated: input must be an (N, C, H, W) tensor, got {shape}")
    if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != 6:
        shape = tuple(rois.shape) if isinstance(rois, torch.Tensor) else type(rois).__name__
        raise ValueError(
            f"roi_align_rotated: rois must be an (R, 6) tensor [batch index, cx, cy, w, h, angle], got {shape}"
        )
    check_device("roi_align_rotated", input, rois)
    pooled_h, pooled_w = _pair(output_size)
    return _ROIAlignRotated.apply(
        input, rois, (int(pooled_h), int(pooled_w)), float(spatial_scale), int(sampling_ratio)
    )


__all__ = ["roi_align_rotated"]
