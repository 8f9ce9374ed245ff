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

if TYPE_CHECKING:  # for type checkers; at run time the names load lazily
    from det.backbones.config import add_torchvision_backbone_config  # noqa: F401
    from det.backbones.convert import convert_torchvision_resnet_checkpoint  # noqa: F401
    from det.backbones.fpn import (  # noqa: F401
        FPN,
        LastLevelMaxPool,
        LastLevelP6P7,
        build_resnet_fpn_backbone,
        build_retinanet_resnet_fpn_backbone,
    )
    from det.backbones.regnet import (  # noqa: F401
        AnyNet,
        RegNet,
        ResBasicBlock,
        ResBottleneckBlock,
        ResStem,
        SimpleStem,
        VanillaBlock,
    )
    from det.backbones.resnet import (  # noqa: F401
        BasicBlock,
        BasicStem,
        BottleneckBlock,
        DeformBottleneckBlock,
        ResNet,
        ResNetBlockBase,
        build_resnet_backbone,
        make_stage,
    )
    from det.backbones.torchvision_backbone import (  # noqa: F401
        TorchvisionBackbone,
        build_torchvision_backbone,
        build_torchvision_fpn_backbone,
    )


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above


__all__ = ["__version__", *exported(__name__)]
