"""Triton kernels for det's ops on CUDA devices, registered over det-core's reference ops.

Installing det-ops-cuda is enough: det-core's op dispatch (:mod:`det.core.layers.ops`) serves CUDA
tensors with these kernels and every other device with its references. The kernels can also be
called directly; they take CUDA tensors, or CPU tensors when ``TRITON_INTERPRET=1`` was set before
this package's kernels were imported (Triton's interpreter, which the tests use)::

    from det.ops_cuda import nms, roi_align
    keep = nms(boxes.cuda(), scores.cuda(), 0.5)

Importing this package imports neither torch nor triton; each kernel module is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.ops_cuda.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.ops_cuda.mask_kernels import paste_masks as paste_masks
    from det.ops_cuda.nms_kernels import batched_nms as batched_nms
    from det.ops_cuda.nms_kernels import nms as nms
    from det.ops_cuda.nms_kernels import nms_rotated as nms_rotated
    from det.ops_cuda.roi_align_kernels import roi_align as roi_align
    from det.ops_cuda.roi_align_rotated_kernels import roi_align_rotated as roi_align_rotated
    from det.ops_cuda.rotated_iou_kernels import box_iou_rotated as box_iou_rotated


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
