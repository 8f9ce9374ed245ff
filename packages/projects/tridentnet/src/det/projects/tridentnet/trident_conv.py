"""TridentConv: one convolution weight applied by several branches, each at its own dilation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

__all__ = ["TridentConv"]


def _per_branch(value: int | Sequence[int], num_branch: int, name: str) -> list[tuple[int, int]]:
    values = [value] * num_branch if isinstance(value, int) else list(value)
    if len(values) != num_branch:
        raise ValueError(f"TridentConv: {name} needs one value per branch (num_branch={num_branch}), got {value!r}")
    return [_pair(v) for v in values]


class TridentConv(nn.Module):
    """A convolution whose one ``weight`` (and ``bias``) serves ``num_branch`` branches, branch
    ``i`` convolving its own input with ``paddings[i]`` and ``dilations[i]``; ``norm`` and
    ``activation``, if given, follow every branch (the same modules: shared statistics).

    Invariant: the parameters are exactly those of one plain convolution (``weight``, optional
    ``bias``, then ``norm.*``), so a checkpoint of an ordinary ResNet loads into a trident one. In
    training, or at inference with ``test_branch_idx == -1``, ``forward`` takes and returns a list
    of ``num_branch`` tensors; at inference with ``test_branch_idx = i`` it takes and returns a list
    of one, convolved as branch ``i``::

        conv = TridentConv(64, 64, 3, paddings=(1, 2, 3), dilations=(1, 2, 3), num_branch=3)
        y1, y2, y3 = conv([x, x, x])        # y2 == F.conv2d(x, conv.weight, padding=2, dilation=2)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        paddings: int | Sequence[int] = 0,
        dilations: int | Sequence[int] = 1,
        groups: int = 1,
        num_branch: int = 1,
        test_branch_idx: int = -1,
        bias: bool = False,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        super().__init__()
        if num_branch < 1:
            raise ValueError(f"TridentConv needs num_branch >= 1, got {num_branch}")
        if not -1 <= test_branch_idx < num_branch:
            raise ValueError(
                f"TridentConv: test_branch_idx must be -1 (every branch) or a branch index in "
                f"[0, {num_branch}), got {test_branch_idx}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"TridentConv: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.num_branch = num_branch
        self.stride = _pair(stride)
        self.groups = groups
        self.with_bias = bias
        self.paddings = _per_branch(paddings, num_branch, "paddings")
        self.dilations = _per_branch(dilations, num_branch, "dilations")
        self.test_branch_idx = test_branch_idx
        self.norm = norm
        self.activation = activation

        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter("bias", None)
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")

    def _branches(self) -> list[int]:
        """The branch indices this call runs: all in training or with test_branch_idx -1."""
        if self.training or self.test_branch_idx == -1:
            return list(range(self.num_branch))
        return [self.test_branch_idx]

    def forward(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """
        Args:
            inputs: one (N, C, H, W) tensor per branch that runs (see the class invariant).

        Returns:
            list[Tensor]: one output per input, in the same order.
        """
        branches = self._branches()
        if not isinstance(inputs, (list, tuple)) or len(inputs) != len(branches):
            got = f"a list of {len(inputs)}" if isinstance(inputs, (list, tuple)) else type(inputs).__name__
            mode = "training" if self.training else f"inference with test_branch_idx={self.test_branch_idx}"
            raise ValueError(f"TridentConv in {mode} takes a list of {len(branches)} tensors (one per branch), got {got}")
        outputs = [
            F.conv2d(x, self.weight, self.bias, self.stride, self.paddings[b], self.dilations[b], self.groups)
            for x, b in zip(inputs, branches)
        ]
        if self.norm is not None:
            outputs = [self.norm(y) for y in outputs]
        if self.activation is not None:
            outputs = [self.activation(y) for y in outputs]
        return outputs

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"kernel_size={self.kernel_size}, num_branch={self.num_branch}, "
                f"test_branch_idx={self.test_branch_idx}, stride={self.stride}, paddings={self.paddings}, "
                f"dilations={self.dilations}, groups={self.groups}, bias={self.with_bias}")
