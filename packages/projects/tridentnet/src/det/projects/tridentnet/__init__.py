"""det-tridentnet: TridentNet (:paper:`TridentNet`, "Scale-Aware Trident Networks for Object
Detection") as detectron2's project builds it, installed as a det plugin.

Installing it is all it takes: ``get_cfg()`` then has ``MODEL.TRIDENT``, and detectron2's
TridentNet YAMLs build by name (``build_trident_resnet_backbone``, ``TridentRPN``,
``TridentRes5ROIHeads``). Importing this package is cheap; the names below load on first use::

    from det.projects.tridentnet import TridentConv
    conv = TridentConv(64, 64, 3, paddings=(1, 2, 3), dilations=(1, 2, 3), num_branch=3)
    outs = conv([x, x, x])        # one weight, three dilations
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.projects.tridentnet.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.projects.tridentnet.config import add_tridentnet_config as add_tridentnet_config
    from det.projects.tridentnet.trident_backbone import TridentBottleneckBlock as TridentBottleneckBlock
    from det.projects.tridentnet.trident_backbone import (
        build_trident_resnet_backbone as build_trident_resnet_backbone,
    )
    from det.projects.tridentnet.trident_backbone import make_trident_stage as make_trident_stage
    from det.projects.tridentnet.trident_conv import TridentConv as TridentConv
    from det.projects.tridentnet.trident_rcnn import TridentRes5ROIHeads as TridentRes5ROIHeads
    from det.projects.tridentnet.trident_rcnn import TridentStandardROIHeads as TridentStandardROIHeads
    from det.projects.tridentnet.trident_rcnn import merge_branch_instances as merge_branch_instances
    from det.projects.tridentnet.trident_rpn import TridentRPN as TridentRPN

__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
