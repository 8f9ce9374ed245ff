"""ToyBackbone: a plain stack of strided 3x3 convs, the smallest useful det Backbone."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from det.core.config import configurable
from det.core.layers import Conv2d, ShapeSpec, c2_msra_fill
from det.core.modeling.backbone import Backbone

__all__ = ["ToyBackbone"]


class ToyBackbone(Backbone):
    """Levels ``toy2``, ``toy3``, ... of stride 4, 8, ... and ``channels`` channels each.

    Invariant: level ``toy{k}`` has stride ``2**k``; levels after the last requested one are
    not built. Usable with plain arguments or a config (``MODEL.TOY_BACKBONE``)::

        backbone = ToyBackbone(in_channels=3, channels=16, out_features=["toy3", "toy4"])
        feats = backbone(torch.rand(1, 3, 64, 64))   # {"toy3": (1,16,8,8), "toy4": (1,16,4,4)}
        backbone = ToyBackbone(cfg, ShapeSpec(channels=3))
    """

    @configurable
    def __init__(self, *, in_channels: int = 3, channels: int = 16, out_features: Sequence[str] = ("toy5",)):
        super().__init__()
        out_features = list(out_features)
        bad = [f for f in out_features if not (f.startswith("toy") and f[3:].isdigit() and int(f[3:]) >= 2)]
        if bad or not out_features:
            raise ValueError(f"ToyBackbone out_features must be names toy2, toy3, ..., got {out_features}")
        last = max(int(f[3:]) for f in out_features)
        # toy2 (stride 4) comes from two stride-2 convs; every later level adds one.
        self.stem = Conv2d(in_channels, channels, 3, stride=2, padding=1, activation=F.relu)
        self.level_names = [f"toy{k}" for k in range(2, last + 1)]
        self.levels = nn.ModuleList(
            Conv2d(channels, channels, 3, stride=2, padding=1, activation=F.relu) for _ in self.level_names
        )
        for conv in (self.stem, *self.levels):
            c2_msra_fill(conv)
        self._out_features = out_features
        self._out_feature_channels = {f: channels for f in out_features}
        self._out_feature_strides = {f: 2 ** int(f[3:]) for f in out_features}

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        return {
            "in_channels": input_shape.channels,
            "channels": cfg.MODEL.TOY_BACKBONE.CHANNELS,
            "out_features": cfg.MODEL.TOY_BACKBONE.OUT_FEATURES,
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"ToyBackbone takes an (N, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        outputs = {}
        x = self.stem(x)
        for name, level in zip(self.level_names, self.levels):
            x = level(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs
