"""det plugin declarations of det.ops_cuda: cheap to import (no torch, no triton).

Every kernel is declared for device type "cuda" only: on other devices det-core keeps serving its
reference implementations, and ``DET_FORCE_REFERENCE_OPS=1`` or ``DET_DISABLE_PLUGINS=ops-cuda``
turn these off.
"""

from det.core.hookspecs import OpDecl, hookimpl

DET_PLUGIN_API_VERSION = 1

OPS = {
    "nms": "det.ops_cuda.nms_kernels:nms",
    "batched_nms": "det.ops_cuda.nms_kernels:batched_nms",
    "nms_rotated": "det.ops_cuda.nms_kernels:nms_rotated",
    "box_iou_rotated": "det.ops_cuda.rotated_iou_kernels:box_iou_rotated",
    "roi_align": "det.ops_cuda.roi_align_kernels:roi_align",
    "roi_align_rotated": "det.ops_cuda.roi_align_rotated_kernels:roi_align_rotated",
    "paste_masks": "det.ops_cuda.mask_kernels:paste_masks",
}
"""Op name (det.core.layers.ops) -> "module:attribute" of its Triton implementation."""


@hookimpl
def det_ops() -> list[OpDecl]:
    return [(op, "cuda", target) for op, target in OPS.items()]
