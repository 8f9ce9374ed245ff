"""det.core.layers: detectron2's ``detectron2.layers``, without a compiled extension.

Every op that detectron2 implements in C++/CUDA has a portable reference implementation here
and is routed through :mod:`det.core.layers.ops`, where plugins (e.g. det-ops-cuda) can register
faster ones per device type. Importing this package imports torch but not torchvision::

    from det.core.layers import Conv2d, ShapeSpec, get_norm
    conv = Conv2d(256, 256, 3, padding=1, norm=get_norm("GN", 256))
"""

from det.core.layers.batch_norm import FrozenBatchNorm2d, LayerNorm, NaiveSyncBatchNorm, get_norm
from det.core.layers.blocks import CNNBlockBase
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
    "BatchNorm2d",
    "CNNBlockBase",
    "Conv2d",
    "ConvTranspose2d",
    "FrozenBatchNorm2d",
    "LayerNorm",
    "Linear",
    "NaiveSyncBatchNorm",
    "ShapeSpec",
    "c2_msra_fill",
    "c2_xavier_fill",
    "cat",
    "cross_entropy",
    "empty_input_loss_func_wrapper",
    "get_norm",
    "interpolate",
    "move_device_like",
    "nonzero_tuple",
    "shapes_to_tensor",
]
