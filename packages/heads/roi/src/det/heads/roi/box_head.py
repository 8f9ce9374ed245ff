"""Box heads: the layers between the pooled region features and the box predictor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from det.core.config import configurable
from det.core.layers import Conv2d, Linear, ShapeSpec, get_norm, weight_init
from det.core.registry import ROI_BOX_HEAD_REGISTRY  # detectron2 defines it in this module

__all__ = ["ROI_BOX_HEAD_REGISTRY", "FastRCNNConvFCHead", "build_box_head"]


def build_box_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """Build the box head named by ``cfg.MODEL.ROI_BOX_HEAD.NAME`` (a ``ROI_BOX_HEAD`` component)."""
    from det.core.registry import get_component

    name = cfg.MODEL.ROI_BOX_HEAD.NAME
    if not name:
        raise ValueError(
            "MODEL.ROI_BOX_HEAD.NAME is empty: name a ROI_BOX_HEAD component, e.g. FastRCNNConvFCHead"
        )
    return get_component("ROI_BOX_HEAD", name)(cfg, input_shape)


class FastRCNNConvFCHead(nn.Sequential):
    """``conv_dims`` 3x3 convs (each + optional norm + ReLU), then a flatten and ``fc_dims``
    fully connected layers (each + ReLU): detectron2's box head.

    Invariant: ``output_shape`` describes what ``forward`` returns: ShapeSpec(channels=fc_dims[-1])
    when there are FC layers, else the conv output's (C, H, W). Parameters are named ``conv1``,
    ``conv2``, ..., ``fc1``, ``fc2``, ... as in detectron2's checkpoints::

        head = FastRCNNConvFCHead(ShapeSpec(channels=16, height=7, width=7), conv_dims=[], fc_dims=[64, 64])
        head(torch.rand(5, 16, 7, 7)).shape   # (5, 64)
        head.output_shape                     # ShapeSpec(channels=64, height=None, width=None, stride=None)
    """

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, conv_dims: Sequence[int], fc_dims: Sequence[int], conv_norm=""):
        """
        Args:
            input_shape: shape of the pooled region features (channels, height, width).
            conv_dims: output channels of each conv layer.
            fc_dims: output size of each fully connected layer.
            conv_norm: normalisation after each conv (a ``get_norm`` name or callable).
        """
        super().__init__()
        if len(conv_dims) + len(fc_dims) == 0:
            raise ValueError("FastRCNNConvFCHead needs at least one conv or fc layer (conv_dims and fc_dims are empty)")
        if not isinstance(input_shape, ShapeSpec) or not input_shape.channels:
            raise ValueError(f"FastRCNNConvFCHead: input_shape must be a ShapeSpec with channels, got {input_shape!r}")
        if len(conv_dims) and (input_shape.height is None or input_shape.width is None):
            raise ValueError(
                f"FastRCNNConvFCHead: conv layers need the input height and width, got {input_shape!r}"
            )

        self._output_size = (input_shape.channels, input_shape.height, input_shape.width)

        self.conv_norm_relus = []
        for k, conv_dim in enumerate(conv_dims):
            conv = Conv2d(self._output_size[0], conv_dim, kernel_size=3, padding=1, bias=not conv_norm,
                          norm=get_norm(conv_norm, conv_dim), activation=nn.ReLU())
            self.add_module(f"conv{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            self._output_size = (conv_dim, self._output_size[1], self._output_size[2])

        self.fcs = []
        for k, fc_dim in enumerate(fc_dims):
            if k == 0:
                self.add_module("flatten", nn.Flatten())
            in_size = int(np.prod([d or 1 for d in self._output_size])) if isinstance(self._output_size, tuple) else self._output_size
            fc = Linear(in_size, fc_dim)
            self.add_module(f"fc{k + 1}", fc)
            self.add_module(f"fc_relu{k + 1}", nn.ReLU())
            self.fcs.append(fc)
            self._output_size = fc_dim

        for layer in self.conv_norm_relus:
            weight_init.c2_msra_fill(layer)
        for layer in self.fcs:
            weight_init.c2_xavier_fill(layer)

    @classmethod
    def from_config(cls, cfg, input_shape):
        num_conv = cfg.MODEL.ROI_BOX_HEAD.NUM_CONV
        conv_dim = cfg.MODEL.ROI_BOX_HEAD.CONV_DIM
        num_fc = cfg.MODEL.ROI_BOX_HEAD.NUM_FC
        fc_dim = cfg.MODEL.ROI_BOX_HEAD.FC_DIM
        return {
            "input_shape": input_shape,
            "conv_dims": [conv_dim] * num_conv,
            "fc_dims": [fc_dim] * num_fc,
            "conv_norm": cfg.MODEL.ROI_BOX_HEAD.NORM,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return x

    @property
    def output_shape(self) -> ShapeSpec:
        """The shape of this head's output (channels, and height/width while there is no FC)."""
        o = self._output_size
        if isinstance(o, int):
            return ShapeSpec(channels=o)
        return ShapeSpec(channels=o[0], height=o[1], width=o[2])
