"""ASPP: DeepLab's atrous spatial pyramid pooling (detectron2's ``layers.ASPP``)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from det.core.layers.batch_norm import get_norm
from det.core.layers.blocks import DepthwiseSeparableConv2d
from det.core.layers.weight_init import c2_xavier_fill
from det.core.layers.wrappers import Conv2d

__all__ = ["ASPP"]


class ASPP(nn.Module):
    """Five parallel branches over one feature map, concatenated and projected to
    ``out_channels``: a 1 x 1 conv, three 3 x 3 convs dilated by ``dilations``, and image pooling
    (average pool, 1 x 1 conv, upsampled back)::

        aspp = ASPP(2048, 256, [6, 12, 18], norm="BN", activation=F.relu, dropout=0.1)
        out = aspp(res5)  # (N, 256, H, W)

    ``norm`` applies to every conv but the pooled one (its input is 1 x 1, as in detectron2).
    ``pool_kernel_size=(kh, kw)`` pools over a fixed window instead of the whole map (train at
    that size and inference pools the same extent); the input's size must then be a multiple of
    it. ``use_depthwise_separable_conv`` makes the dilated branches DepthwiseSeparableConv2d.
    Submodule names and initialisation are detectron2's, so its checkpoints load.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int],
        *,
        norm: str | Callable[[int], nn.Module] | None,
        activation: Callable[[torch.Tensor], torch.Tensor] | nn.Module | None,
        pool_kernel_size: tuple[int, int] | list[int] | None = None,
        dropout: float = 0.0,
        use_depthwise_separable_conv: bool = False,
    ) -> None:
        super().__init__()
        if len(dilations) != 3:
            raise ValueError(f"ASPP expects 3 dilations, got {len(dilations)}: {list(dilations)}")
        if pool_kernel_size is not None and len(pool_kernel_size) != 2:
            raise ValueError(f"ASPP: pool_kernel_size must be (kh, kw) or None, got {pool_kernel_size!r}")
        self.pool_kernel_size: tuple[int, int] | None = (
            None if pool_kernel_size is None else (int(pool_kernel_size[0]), int(pool_kernel_size[1]))
        )
        self.dropout = dropout
        use_bias = norm == ""

        def conv(in_ch: int, kernel_size: int, dilation: int = 1) -> Conv2d:
            layer = Conv2d(
                in_ch, out_channels, kernel_size=kernel_size, padding=dilation if kernel_size == 3 else 0,
                dilation=dilation, bias=use_bias, norm=get_norm(norm, out_channels),
                activation=copy.deepcopy(activation),
            )  # fmt: skip
            c2_xavier_fill(layer)
            return layer

        self.convs = nn.ModuleList([conv(in_channels, 1)])
        for dilation in dilations:
            if use_depthwise_separable_conv:
                self.convs.append(DepthwiseSeparableConv2d(
                    in_channels, out_channels, kernel_size=3, padding=dilation, dilation=dilation,
                    norm1=norm, activation1=copy.deepcopy(activation),
                    norm2=norm, activation2=copy.deepcopy(activation),
                ))  # fmt: skip
            else:
                self.convs.append(conv(in_channels, 3, dilation))
        pool = nn.AdaptiveAvgPool2d(1) if self.pool_kernel_size is None else nn.AvgPool2d(self.pool_kernel_size, stride=1)
        pooled_conv = Conv2d(in_channels, out_channels, 1, bias=True, activation=copy.deepcopy(activation))
        c2_xavier_fill(pooled_conv)
        self.convs.append(nn.Sequential(pool, pooled_conv))
        self.project = conv(5 * out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"ASPP expects an (N, C, H, W) feature map, got shape {tuple(x.shape)}")
        size = x.shape[-2:]
        if self.pool_kernel_size is not None and (
            size[0] % self.pool_kernel_size[0] or size[1] % self.pool_kernel_size[1]
        ):
            raise ValueError(
                f"ASPP: the input's size {tuple(size)} must be a multiple of pool_kernel_size "
                f"{tuple(self.pool_kernel_size)}"
            )
        branches = [branch(x) for branch in self.convs]
        branches[-1] = F.interpolate(branches[-1], size=size, mode="bilinear", align_corners=False)
        out = self.project(torch.cat(branches, dim=1))
        return F.dropout(out, self.dropout, training=self.training) if self.dropout > 0 else out
