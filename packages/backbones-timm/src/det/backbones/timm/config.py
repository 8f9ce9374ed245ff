"""Config keys of det-backbones-timm (imports no torch, no timm)."""

from __future__ import annotations

from typing import Any

__all__ = ["add_timm_config"]


def add_timm_config(cfg: Any) -> None:
    """Add ``MODEL.TIMM`` (read by ``build_timm_backbone`` and ``build_timm_fpn_backbone``) to
    ``cfg``, a not-frozen yacs CfgNode; keys already present win.

    - ``NAME``: a timm model name that supports ``features_only`` (``timm.list_models()``), e.g.
      "convnext_tiny", "efficientnet_b0", "resnet50", "regnety_032"; a pretrained tag may follow
      ("convnext_tiny.fb_in22k").
    - ``OUT_INDICES``: timm feature levels to return (indices into the model's feature_info);
      empty = the levels at strides 4, 8, 16 and 32, named res2..res5.
    - ``PRETRAINED``: load timm's pretrained weights (timm downloads them once into its cache,
      ``$HF_HOME`` / ``$TORCH_HOME``).
    - ``PRETRAINED_FILE``: load pretrained weights from this local timm checkpoint instead.
    - ``NORM``: "FrozenBN" (default, as detectron2 fine-tunes), "GN", "BN" or "".

    ``MODEL.BACKBONE.FREEZE_AT`` freezes the first feature levels (timm ResNets: 1 = stem).
    """
    node_type = type(cfg)
    if "TIMM" not in cfg.MODEL:
        cfg.MODEL.TIMM = node_type()
    node = cfg.MODEL.TIMM
    defaults: dict[str, Any] = {
        "NAME": "resnet50",
        "OUT_INDICES": [],
        "PRETRAINED": False,
        "PRETRAINED_FILE": "",
        "NORM": "FrozenBN",
    }
    for key, value in defaults.items():
        if key not in node:
            setattr(node, key, value)
