"""det-backbones: detectron2's ResNet/ResNeXt and FPN backbones, plus a torchvision adapter.

Importing ``det.backbones`` is cheap (the plugin module ``det.backbones._plugin`` lives in it);
every public name below is imported on first use::

    from det.backbones import FPN, LastLevelMaxPool, ResNet, BasicStem
    resnet = ResNet(BasicStem(), ResNet.make_default_stages(50), out_features=["res4", "res5"])
"""

from __future__ import annotations

import pkgutil
from typing import TYPE_CHECKING

# Other distributions add subpackages under det.backbones (det-backbones-vit: det.backbones.vit,
# det-backbones-timm: det.backbones.timm) from their own folders. A regular package searches only
# its own folder, which is enough when every wheel unpacks into one site-packages, but not for
# editable installs (each distribution's src/ is its own sys.path entry). extend_path adds every
# det/backbones folder found along det's namespace path; those folders have no __init__.py.
__path__ = pkgutil.extend_path(__path__, __name__)

from det.backbones.version import __version__
from det.core.lazy import lazy_exports

_LAZY = {
    "ResNetBlockBase": "det.backbones.resnet",
    "BasicBlock": "det.backbones.resnet",
    "BottleneckBlock": "det.backbones.resnet",
    "DeformBottleneckBlock": "det.backbones.resnet",
    "BasicStem": "det.backbones.resnet",
    "ResNet": "det.backbones.resnet",
    "make_stage": "det.backbones.resnet",
    "build_resnet_backbone": "det.backbones.resnet",
    "FPN": "det.backbones.fpn",
    "LastLevelMaxPool": "det.backbones.fpn",
    "LastLevelP6P7": "det.backbones.fpn",
    "build_resnet_fpn_backbone": "det.backbones.fpn",
    "build_retinanet_resnet_fpn_backbone": "det.backbones.fpn",
    "TorchvisionBackbone": "det.backbones.torchvision_backbone",
    "build_torchvision_backbone": "det.backbones.torchvision_backbone",
    "build_torchvision_fpn_backbone": "det.backbones.torchvision_backbone",
    "add_torchvision_backbone_config": "det.backbones.config",
    "convert_torchvision_resnet_checkpoint": "det.backbones.convert",
}

if TYPE_CHECKING:
    from det.backbones.config import add_torchvision_backbone_config
    from det.backbones.convert import convert_torchvision_resnet_checkpoint
    from det.backbones.fpn import (
        FPN,
        LastLevelMaxPool,
        LastLevelP6P7,
        build_resnet_fpn_backbone,
        build_retinanet_resnet_fpn_backbone,
    )
    from det.backbones.resnet import (
        BasicBlock,
        BasicStem,
        BottleneckBlock,
        DeformBottleneckBlock,
        ResNet,
        ResNetBlockBase,
        build_resnet_backbone,
        make_stage,
    )
    from det.backbones.torchvision_backbone import (
        TorchvisionBackbone,
        build_torchvision_backbone,
        build_torchvision_fpn_backbone,
    )


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "FPN",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "ResNet",
    "ResNetBlockBase",
    "TorchvisionBackbone",
    "__version__",
    "add_torchvision_backbone_config",
    "build_resnet_backbone",
    "build_resnet_fpn_backbone",
    "build_retinanet_resnet_fpn_backbone",
    "build_torchvision_backbone",
    "build_torchvision_fpn_backbone",
    "convert_torchvision_resnet_checkpoint",
    "make_stage",
]
assert set(__all__) == {"__version__", *_LAZY}
