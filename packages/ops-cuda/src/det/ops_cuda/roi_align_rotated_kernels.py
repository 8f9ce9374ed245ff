"""ROIAlignRotated in Triton: detectron2's rotated ROIAlign, forward and backward.

The kernels are :mod:`det.ops_cuda.roi_align_kernels`' (their ``ROTATED`` specialisation): the
sample grid is laid out in the box's own frame and rotated counter-clockwise by the box angle about
its centre. Coordinates are always continuous (the 0.5 pixel shift; there is no legacy mode).
"""

from __future__ import annotations

import torch

from det.ops_cuda.roi_align_kernels import apply_roi_align


def roi_align_rotated(input: torch.Tensor, rois: torch.Tensor, output_size: int | tuple[int, int],
                      spatial_scale: float, sampling_ratio: int) -> torch.Tensor:
    """ROIAlign of (R, 6) rotated ``rois`` [batch index, cx, cy, w, h, angle in degrees]: (R, C, h, w).

    detectron2's ROIAlignRotated, differentiable in ``input``. Boxes with a negative size and ROIs
    of an image not in ``input`` pool zeros (det-core's reference raises for them instead: checking
    would cost a device synchronisation on every call).
    """
    return apply_roi_align("roi_align_rotated", input, rois, output_size, spatial_scale, sampling_ratio, True, True)


__all__ = ["roi_align_rotated"]
