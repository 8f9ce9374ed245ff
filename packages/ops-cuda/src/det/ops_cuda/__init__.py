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

from det.core.lazy import lazy_exports
from det.ops_cuda.version import __version__

_EXPORTS = {
    "nms": "det.ops_cuda.nms_kernels",
    "batched_nms": "det.ops_cuda.nms_kernels",
    "nms_rotated": "det.ops_cuda.nms_kernels",
    "box_iou_rotated": "det.ops_cuda.rotated_iou_kernels",
    "roi_align": "det.ops_cuda.roi_align_kernels",
    "roi_align_rotated": "det.ops_cuda.roi_align_rotated_kernels",
    "paste_masks": "det.ops_cuda.mask_kernels",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = ["__version__", *_EXPORTS]
