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
from det.core.lazy import exported, lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.backbones.config import add_torchvision_backbone_config as add_torchvision_backbone_config
    from det.backbones.convert import (
        convert_torchvision_resnet_checkpoint as convert_torchvision_resnet_checkpoint,
    )
    from det.backbones.fpn import FPN as FPN
    from det.backbones.fpn import LastLevelMaxPool as LastLevelMaxPool
    from det.backbones.fpn import LastLevelP6P7 as LastLevelP6P7
    from det.backbones.fpn import build_resnet_fpn_backbone as build_resnet_fpn_backbone
    from det.backbones.fpn import build_retinanet_resnet_fpn_backbone as build_retinanet_resnet_fpn_backbone
    from det.backbones.regnet import AnyNet as AnyNet
    from det.backbones.regnet import RegNet as RegNet
    from det.backbones.regnet import ResBasicBlock as ResBasicBlock
    from det.backbones.regnet import ResBottleneckBlock as ResBottleneckBlock
    from det.backbones.regnet import ResStem as ResStem
    from det.backbones.regnet import SimpleStem as SimpleStem
    from det.backbones.regnet import VanillaBlock as VanillaBlock
    from det.backbones.resnet import BasicBlock as BasicBlock
    from det.backbones.resnet import BasicStem as BasicStem
    from det.backbones.resnet import BottleneckBlock as BottleneckBlock
    from det.backbones.resnet import DeformBottleneckBlock as DeformBottleneckBlock
    from det.backbones.resnet import ResNet as ResNet
    from det.backbones.resnet import ResNetBlockBase as ResNetBlockBase
    from det.backbones.resnet import build_resnet_backbone as build_resnet_backbone
    from det.backbones.resnet import make_stage as make_stage
    from det.backbones.torchvision_backbone import TorchvisionBackbone as TorchvisionBackbone
    from det.backbones.torchvision_backbone import build_torchvision_backbone as build_torchvision_backbone
    from det.backbones.torchvision_backbone import (
        build_torchvision_fpn_backbone as build_torchvision_fpn_backbone,
    )


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
