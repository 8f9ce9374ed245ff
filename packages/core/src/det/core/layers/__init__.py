"""det.core.layers: detectron2's ``detectron2.layers``, without a compiled extension.

Every op that detectron2 implements in C++/CUDA has a portable reference implementation here
and is routed through :mod:`det.core.layers.ops`, where plugins (e.g. det-ops-cuda) can register
faster ones per device type. Importing this package imports torch but not torchvision::

    from det.core.layers import Conv2d, ShapeSpec, get_norm
    conv = Conv2d(256, 256, 3, padding=1, norm=get_norm("GN", 256))
"""

from det.core.layers.aspp import ASPP
from det.core.layers.batch_norm import (
    CycleBatchNormList,
    FrozenBatchNorm2d,
    LayerNorm,
    NaiveSyncBatchNorm,
    get_norm,
)
from det.core.layers.blocks import CNNBlockBase, DepthwiseSeparableConv2d
from det.core.layers.deform_conv import DeformConv, ModulatedDeformConv
from det.core.layers.losses import (
    ciou_loss,
    diou_loss,
    giou_loss,
    sigmoid_focal_loss,
    sigmoid_focal_loss_jit,
    sigmoid_focal_loss_star,
    sigmoid_focal_loss_star_jit,
    smooth_l1_loss,
)
from det.core.layers.mask_ops import paste_masks, paste_masks_in_image
from det.core.layers.nms import batched_nms, batched_nms_rotated, nms, nms_rotated
from det.core.layers.roi_align import ROIAlign, roi_align
from det.core.layers.roi_align_rotated import ROIAlignRotated, roi_align_rotated
from det.core.layers.rotated_boxes import box_iou_rotated, pairwise_iou_rotated
from det.core.layers.shape_spec import ShapeSpec
from det.core.layers.weight_init import c2_msra_fill, c2_xavier_fill
from det.core.layers.wrappers import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Linear,
    cat,
    cross_entropy,
    empty_input_loss_func_wrapper,
    interpolate,
    move_device_like,
    nonzero_tuple,
    shapes_to_tensor,
)

__all__ = [
    "ASPP",
    "BatchNorm2d",
    "CNNBlockBase",
    "Conv2d",
    "ConvTranspose2d",
    "CycleBatchNormList",
    "DeformConv",
    "DepthwiseSeparableConv2d",
    "FrozenBatchNorm2d",
    "LayerNorm",
    "Linear",
    "ModulatedDeformConv",
    "NaiveSyncBatchNorm",
    "ROIAlign",
    "ROIAlignRotated",
    "ShapeSpec",
    "batched_nms",
    "batched_nms_rotated",
    "box_iou_rotated",
    "c2_msra_fill",
    "c2_xavier_fill",
    "cat",
    "ciou_loss",
    "cross_entropy",
    "diou_loss",
    "empty_input_loss_func_wrapper",
    "get_norm",
    "giou_loss",
    "interpolate",
    "move_device_like",
    "nms",
    "nms_rotated",
    "nonzero_tuple",
    "pairwise_iou_rotated",
    "paste_masks",
    "paste_masks_in_image",
    "roi_align",
    "roi_align_rotated",
    "shapes_to_tensor",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_jit",
    "sigmoid_focal_loss_star",
    "sigmoid_focal_loss_star_jit",
    "smooth_l1_loss",
]
