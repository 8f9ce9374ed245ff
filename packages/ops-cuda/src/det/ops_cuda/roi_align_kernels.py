"""ROIAlign in Triton, axis-aligned and rotated: forward and backward kernels behind one
``torch.autograd.Function``.

One program handles one ROI and a block of its (channel, bin) outputs, so the ROI's box and its
sampling grid are scalars of the program and the sample loops have the same bounds in every lane
(adaptive grids, ``sampling_ratio <= 0``, differ per ROI, not per lane). The arithmetic is
torchvision's ``roi_align`` (``aligned`` and the legacy mode), so the numbers agree with
det-core's reference up to float rounding. Rotated ROIs (detectron2's ROIAlignRotated, the
``ROTATED`` specialisation of the same kernels) lay the grid out in the box's own frame and rotate
it counter-clockwise by the box angle about its centre; their coordinates are always continuous.
The backward pass scatters each output gradient to the four pixels of every sample with atomic
adds, as torchvision's CUDA kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from det.core.layers.roi_align import check_roi_args
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
def _roi_geometry(rois_ptr, r, spatial_scale, sampling_ratio, ph_count, pw_count,
                  ALIGNED: tl.constexpr, ROTATED: tl.constexpr):
    """One ROI's image, sample-grid origin, bin size and samples per bin; for rotated ROIs also the
    centre and the rotation (the grid is laid out about the centre, in the box's own frame)."""
    if ROTATED:  # [batch, cx, cy, w, h, angle in degrees], always continuous coordinates
        roi = rois_ptr + r * 6
        center_w = tl.load(roi + 1) * spatial_scale - 0.5
        center_h = tl.load(roi + 2) * spatial_scale - 0.5
        roi_w = tl.load(roi + 3) * spatial_scale
        roi_h = tl.load(roi + 4) * spatial_scale
        theta = tl.load(roi + 5) * 0.017453292519943295
        cos_t = tl.cos(theta)
        sin_t = tl.sin(theta)
        start_h = -roi_h / 2.0
        start_w = -roi_w / 2.0
    else:  # [batch, x0, y0, x1, y1]
        roi = rois_ptr + r * 5
        offset = 0.5 if ALIGNED else 0.0
        start_w = tl.load(roi + 1) * spatial_scale - offset
        start_h = tl.load(roi + 2) * spatial_scale - offset
        roi_w = tl.load(roi + 3) * spatial_scale - offset - start_w
        roi_h = tl.load(roi + 4) * spatial_scale - offset - start_h
        if not ALIGNED:
            # legacy (Detectron) mode: boxes are at least one pixel
            roi_w = tl.maximum(roi_w, 1.0)
            roi_h = tl.maximum(roi_h, 1.0)
        center_h = 0.0
        center_w = 0.0
        cos_t = 1.0
        sin_t = 0.0
    batch = tl.load(roi).to(tl.int32)  # truncation, as the C kernels' (int) cast
    bin_h = roi_h / ph_count
    bin_w = roi_w / pw_count
    grid_h = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(roi_h / ph_count).to(tl.int32))
    grid_w = tl.where(sampling_ratio > 0, sampling_ratio, tl.ceil(roi_w / pw_count).to(tl.int32))
    return batch, start_h, start_w, bin_h, bin_w, grid_h, grid_w, center_h, center_w, cos_t, sin_t


@triton.jit
def _program_outputs(channels, pooled_h, pooled_w, BLOCK: tl.constexpr):
    """This program's ROI and block of its (channel, bin) outputs."""
    r = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    per_roi = channels * pooled_h * pooled_w
    c = offs // (pooled_h * pooled_w)
    ph = (offs // pooled_w) % pooled_h
    pw = offs % pooled_w
    return r, offs, per_roi, offs < per_roi, c, ph, pw


@triton.jit
def _sample(ph, pw, iy, ix, start_h, start_w, bin_h, bin_w, grid_h, grid_w, center_h, center_w, cos_t, sin_t,
            height, width, ROTATED: tl.constexpr):
    """Sample (iy, ix) of bin (ph, pw): its four pixels and their weights (``bilinear_weights``)."""
    y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
    x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
    if ROTATED:  # counter-clockwise about the box centre
        yy = y
        y = yy * cos_t - x * sin_t + center_h
        x = yy * sin_t + x * cos_t + center_w
    return bilinear_weights(y, x, height, width)


@triton.jit
def _roi_align_kernel(
    src_ptr,
    rois_ptr,
    dst_ptr,
    num_images,
    channels,
    height,
    width,
    pooled_h,
    pooled_w,
    spatial_scale,
    sampling_ratio,
    ALIGNED: tl.constexpr,
    ROTATED: tl.constexpr,
    BACKWARD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Forward: ``src`` is the (N, C, H, W) input and ``dst`` the (R, C, h, w) output. Backward:
    ``src`` is the output's gradient, scattered into the input's, ``dst``, with atomic adds."""
    r, offs, per_roi, ok, c, ph, pw = _program_outputs(channels, pooled_h, pooled_w, BLOCK)
    batch, start_h, start_w, bin_h, bin_w, grid_h, grid_w, center_h, center_w, cos_t, sin_t = _roi_geometry(
        rois_ptr, r, spatial_scale, sampling_ratio, pooled_h, pooled_w, ALIGNED, ROTATED
    )
    # an ROI of a missing image touches nothing (0 out) instead of memory out of bounds
    ok_image = ok & (batch >= 0) & (batch < num_images)
    image_offset = (batch * channels + c).to(tl.int64) * height * width
    count = tl.maximum(grid_h * grid_w, 1)
    pooled = r.to(tl.int64) * per_roi + offs
    if BACKWARD:
        plane = dst_ptr + image_offset
        grad = tl.load(src_ptr + pooled, mask=ok, other=0.0) / count
    else:
        plane = src_ptr + image_offset
        acc = tl.zeros([BLOCK], dtype=dst_ptr.dtype.element_ty)
    for iy in range(0, grid_h):
        for ix in range(0, grid_w):
            w1, w2, w3, w4, p1, p2, p3, p4, inside = _sample(
                ph, pw, iy, ix, start_h, start_w, bin_h, bin_w, grid_h, grid_w, center_h, center_w, cos_t, sin_t,
                height, width, ROTATED,
            )
            m = ok_image & inside
            if BACKWARD:
                tl.atomic_add(plane + p1, grad * w1, mask=m)
                tl.atomic_add(plane + p2, grad * w2, mask=m)
                tl.atomic_add(plane + p3, grad * w3, mask=m)
                tl.atomic_add(plane + p4, grad * w4, mask=m)
            else:
                acc += (
                    w1 * tl.load(plane + p1, mask=m, other=0.0)
                    + w2 * tl.load(plane + p2, mask=m, other=0.0)
                    + w3 * tl.load(plane + p3, mask=m, other=0.0)
                    + w4 * tl.load(plane + p4, mask=m, other=0.0)
                )
    if not BACKWARD:
        tl.store(dst_ptr + pooled, acc / count, mask=ok)


def _launch(backward, src, rois, dst, input_shape, output_size, spatial_scale, sampling_ratio, aligned, rotated):
    n, c, h, w = input_shape
    pooled_h, pooled_w = output_size
    per_roi = c * pooled_h * pooled_w
    if rois.shape[0] == 0 or per_roi == 0 or n * h * w == 0:
        return
    block = block_size(per_roi)
    grid = (rois.shape[0], triton.cdiv(per_roi, block))
    _roi_align_kernel[grid](
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
        ROTATED=bool(rotated),
        BACKWARD=backward,
        BLOCK=block,
    )


class ROIAlignFunction(torch.autograd.Function):
    """Forward and backward Triton kernels of both ROIAlign kinds (``rotated``: (R, 6) rois);
    gradients flow to ``input`` only (none to ``rois``)."""

    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio, aligned, rotated):
        op = "roi_align_rotated" if rotated else "roi_align"
        ctx.save_for_backward(rois)
        ctx.args = (op, tuple(input.shape), input.dtype, output_size, spatial_scale, sampling_ratio, aligned,
                    rotated)
        dtype = compute_dtype(op, input)
        x = input.to(dtype).contiguous()
        output = x.new_zeros((rois.shape[0], input.shape[1], *output_size))
        _launch(False, x, rois.to(dtype).contiguous(), output, input.shape, *ctx.args[3:])
        return output.to(input.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        op, input_shape, input_dtype = ctx.args[:3]
        dtype = compute_dtype(op, grad_output)
        grad_input = grad_output.new_zeros(input_shape, dtype=dtype)
        _launch(True, grad_output.to(dtype).contiguous(), rois.to(dtype).contiguous(),
                grad_input, input_shape, *ctx.args[3:])
        return grad_input.to(input_dtype), None, None, None, None, None, None


def apply_roi_align(op: str, input: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
                    spatial_scale: float, sampling_ratio: int, aligned: bool, rotated: bool) -> torch.Tensor:
    """Check ``op``'s arguments (rois (R, 5), or (R, 6) when ``rotated``) and run the kernels."""
    check_roi_args(op, input, rois, rotated)
    check_device(op, input, rois)
    pooled_h, pooled_w = _pair(output_size)
    return ROIAlignFunction.apply(input, rois, (int(pooled_h), int(pooled_w)), float(spatial_scale),
                                  int(sampling_ratio), bool(aligned), bool(rotated))


def roi_align(input: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """ROIAlign of (R, 5) ``rois`` [batch index, x0, y0, x1, y1] over (N, C, H, W) ``input``.

    Arguments, defaults and result are ``torchvision.ops.roi_align``'s: (R, C, h, w), differentiable
    in ``input``. ROIs whose batch index is not an image of ``input`` pool zeros.
    """
    return apply_roi_align("roi_align", input, rois, output_size, spatial_scale, sampling_ratio, aligned, False)


__all__ = ["ROIAlignFunction", "apply_roi_align", "bilinear_weights", "block_size", "roi_align"]
