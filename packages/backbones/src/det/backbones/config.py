"""Config keys of det-backbones' own components (imports no torch)."""

from __future__ import annotations

from typing import Any

__all__ = ["add_torchvision_backbone_config"]


def add_torchvision_backbone_config(cfg: Any) -> None:
    """Add ``MODEL.TORCHVISION_BACKBONE`` (used by ``build_torchvision_backbone`` and
    ``build_torchvision_fpn_backbone``) to ``cfg``, a not-frozen yacs CfgNode; existing keys win.

    - ``NAME``: a torchvision classification model name (``torchvision.models.list_models()``),
      built with ``weights=None``.
    - ``OUT_FEATURES``: levels to return, named ``res{k}`` for stride ``2**k`` ("stem" is the
      ResNet stem), e.g. ``["res2", "res3", "res4", "res5"]``.
    - ``NORM``: "FrozenBN" turns the model's BatchNorms into FrozenBatchNorm2d (as detectron2
      fine-tunes ImageNet backbones); "BN" keeps them trainable.

    ``MODEL.BACKBONE.FREEZE_AT`` freezes the first levels as for ResNet (1 = the stem).
    """
    node_type = type(cfg)
    if "TORCHVISION_BACKBONE" not in cfg.MODEL:
        cfg.MODEL.TORCHVISION_BACKBONE = node_type()
    node = cfg.MODEL.TORCHVISION_BACKBONE
    defaults = {
        "NAME": "resnet50",
        "OUT_FEATURES": ["res2", "res3", "res4", "res5"],
        "NORM": "FrozenBN",
    }
    for key, value in defaults.items():
        if key not in node:
            setattr(node, key, value)
