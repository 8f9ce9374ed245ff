"""``CycleBatchNormList``: per-level BatchNorm statistics for a head shared across feature levels."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CycleBatchNormList"]


class CycleBatchNormList(nn.ModuleList):
    """``length`` BatchNorm layers used in turn, one per call, with one shared affine transform.

    Invariant: call k uses ``self[k % length]`` for normalisation, then multiplies by the shared
    ``weight`` and adds ``bias`` (when affine). A head applied to the L levels of an FPN in order
    therefore keeps separate statistics per level while sharing everything else::

        norm = CycleBatchNormList(length=5, num_features=256)
        ys = [norm(x) for x in per_level_features]   # level i normalised by norm[i]
        norm.weight.shape                            # torch.Size([256])

    It is detectron2's ``detectron2.layers.CycleBatchNormList`` (used by RetinaNetHead with
    ``norm="BN"``/``"SyncBN"``); parameter and buffer names are the same.
    """

    def __init__(self, length: int, bn_class: type[nn.Module] = nn.BatchNorm2d, **kwargs):
        """
        Args:
            length: number of BatchNorm layers, i.e. calls per cycle (the number of levels).
            bn_class: the BatchNorm class, built with ``affine=False`` and ``**kwargs``.
            kwargs: arguments of ``bn_class`` (``num_features`` required); ``affine`` (default
                True) adds the shared ``weight`` and ``bias``.
        """
        if not isinstance(length, int) or length <= 0:
            raise ValueError(f"CycleBatchNormList: length must be a positive int, got {length!r}")
        self._affine = kwargs.pop("affine", True)
        super().__init__([bn_class(**kwargs, affine=False) for _ in range(length)])
        if self._affine:
            channels = self[0].num_features
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        self._pos = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ret = self[self._pos](x)
        self._pos = (self._pos + 1) % len(self)
        if self._affine:
            return ret * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)
        return ret

    def extra_repr(self) -> str:
        return f"affine={self._affine}"
