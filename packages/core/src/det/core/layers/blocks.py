"""CNN building blocks: CNNBlockBase (backbone blocks that can be frozen) and
DepthwiseSeparableConv2d."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from det.core.layers.batch_norm import FrozenBatchNorm2d, get_norm
from det.core.layers.weight_init import c2_msra_fill
from det.core.layers.wrappers import Conv2d


class CNNBlockBase(nn.Module):
    """A CNN block with fixed ``in_channels``, ``out_channels`` and ``stride`` attributes.

    Subclasses (ResNet stems and bottlenecks) build their layers in ``__init__`` and can be frozen
    for fine-tuning::

        block = MyBlock(in_channels=64, out_channels=256, stride=1)
        block.freeze()   # no parameter requires grad; BatchNorms became FrozenBatchNorm2d
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self) -> CNNBlockBase:
        """Stop training this block: no gradient to its parameters, BatchNorms converted to frozen.

        Returns the block itself.
        """
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


class DepthwiseSeparableConv2d(nn.Module):
    """A k x k convolution of each channel on its own (``depthwise``), then a 1 x 1 convolution
    mixing channels (``pointwise``); each may have its own norm and activation (Xception puts
    them on the second only, MobileNet on both)::

        block = DepthwiseSeparableConv2d(256, 256, 3, padding=6, dilation=6, norm2="BN",
                                         activation2=torch.relu)

    A conv followed by a norm has no bias. Weights start as detectron2's (``c2_msra_fill``), and
    the state-dict keys are detectron2's (``depthwise.*``, ``pointwise.*``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        dilation: int = 1,
        *,
        norm1: str | Callable[[int], nn.Module] | None = None,
        activation1: Callable[[torch.Tensor], torch.Tensor] | None = None,
        norm2: str | Callable[[int], nn.Module] | None = None,
        activation2: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.depthwise = Conv2d(
            in_channels, in_channels, kernel_size=kernel_size, padding=padding, dilation=dilation,
            groups=in_channels, bias=not norm1, norm=get_norm(norm1, in_channels), activation=activation1,
        )  # fmt: skip
        self.pointwise = Conv2d(
            in_channels, out_channels, kernel_size=1,
            bias=not norm2, norm=get_norm(norm2, out_channels), activation=activation2,
        )  # fmt: skip
        c2_msra_fill(self.depthwise)
        c2_msra_fill(self.pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.pointwise(self.depthwise(x))
        return out


__all__ = ["CNNBlockBase", "DepthwiseSeparableConv2d"]
