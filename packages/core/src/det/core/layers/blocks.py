"""CNNBlockBase: the base of backbone blocks that can be frozen."""

from __future__ import annotations

from torch import nn

from det.core.layers.batch_norm import FrozenBatchNorm2d


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


__all__ = ["CNNBlockBase"]
