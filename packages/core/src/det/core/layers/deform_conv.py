"""Deformable convolutions (v1 and modulated v2), detectron2's modules over the ``deform_conv`` op.

The reference op is ``torchvision.ops.deform_conv2d``, imported when first run. Its offset layout
is detectron2's: (N, 2 * deformable_groups * kh * kw, H_out, W_out) with (dy, dx) pairs per kernel
position, and the modulation mask (N, deformable_groups * kh * kw, H_out, W_out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from det.core.layers.ops import dispatch


def _empty_output(x: torch.Tensor, module: Any) -> torch.Tensor:
    """An empty batch's output, of the shape the convolution would give, still tied to ``x``."""
    kernel = module.kernel_size
    stride, padding, dilation = _pair(module.stride), _pair(module.padding), _pair(module.dilation)
    spatial = [
        (size + 2 * p - (d * (k - 1) + 1)) // s + 1
        for size, p, d, k, s in zip(x.shape[-2:], padding, dilation, kernel, stride)
    ]
    return x.new_zeros([x.shape[0], module.weight.shape[0], *spatial]) + x.sum() * 0


def _check_deform_args(name: str, module: Any, x: Any, offset: Any, mask: Any = None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != module.in_channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: x must be (N, {module.in_channels}, H, W), got {shape}")
    kh, kw = module.kernel_size
    per_group = kh * kw
    _check_per_tap(name, "offset", offset, x.shape[0], 2 * module.deformable_groups * per_group,
                   "2 * deformable_groups * kh * kw")
    if mask is not None:
        _check_per_tap(name, "mask", mask, x.shape[0], module.deformable_groups * per_group,
                       "deformable_groups * kh * kw")


def _check_per_tap(name: str, what: str, t: Any, batch: int, channels: int, formula: str) -> None:
    """ValueError unless ``t`` (the offsets or the mask) is a (batch, channels, H_out, W_out) tensor."""
    if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[:2] != (batch, channels):
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(
            f"{name}: {what} must be (N, {formula}, H_out, W_out) = ({batch}, {channels}, H_out, W_out), got {shape}"
        )


def _check_groups(name: str, in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels % groups != 0:
        raise ValueError(f"{name}: in_channels {in_channels} is not divisible by groups {groups}")
    if out_channels % groups != 0:
        raise ValueError(f"{name}: out_channels {out_channels} is not divisible by groups {groups}")


class _DeformConvBase(nn.Module):
    """What both deformable convolutions share: detectron2's attributes, the weight (and bias),
    the argument checks, the dispatched op, then ``norm`` and ``activation``."""

    _name = "DeformConv"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: Any,
                 padding: Any, dilation: Any, groups: int, deformable_groups: int, bias: bool,
                 norm: nn.Module | None, activation: Callable | None):
        super().__init__()
        _check_groups(self._name, in_channels, out_channels, groups)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.norm = norm
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias: nn.Parameter | None = nn.Parameter(torch.empty(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        if self.bias is not None:
            nn.init.constant_(self.bias, 0)

    def _deform(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.numel() == 0:
            return _empty_output(x, self)
        _check_deform_args(self._name, self, x, offset, mask)
        tensors = (x, offset) if mask is None else (x, offset, mask)
        x = dispatch("deform_conv", *tensors)(
            x, offset, self.weight, self.bias, _pair(self.stride), _pair(self.padding), _pair(self.dilation), mask
        )
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
            f"deformable_groups={self.deformable_groups}, bias={self.bias is not None}"
        )


class DeformConv(_DeformConvBase):
    """Deformable convolution (v1): each kernel tap samples at its position plus a learned offset.

    ``weight`` is (out_channels, in_channels // groups, kh, kw) and there is no bias (detectron2's
    DeformConv has none); the offsets come from a separate conv::

        offset_conv = Conv2d(64, 2 * 3 * 3, 3, padding=1)
        conv = DeformConv(64, 64, 3, padding=1)
        y = conv(x, offset_conv(x))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, deformable_groups: int = 1,
                 bias: bool = False, norm: nn.Module | None = None, activation: Callable | None = None):
        if bias:
            raise ValueError("DeformConv has no bias (as detectron2's); use ModulatedDeformConv for one")
        # detectron2's DeformConv keeps its geometry as pairs
        super().__init__(in_channels, out_channels, kernel_size, _pair(stride), _pair(padding), _pair(dilation),
                         groups, deformable_groups, False, norm, activation)

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return self._deform(x, offset)


class ModulatedDeformConv(_DeformConvBase):
    """Modulated deformable convolution (v2): offsets plus a per-tap mask that scales each sample.

    ``weight`` (out_channels, in_channels // groups, kh, kw) and ``bias`` (out_channels,) when
    ``bias=True``; offsets and mask come from a separate conv (mask through a sigmoid)::

        offset_mask = Conv2d(64, 3 * 3 * 3, 3, padding=1)(x)
        offset, mask = offset_mask[:, :18], offset_mask[:, 18:].sigmoid()
        y = ModulatedDeformConv(64, 64, 3, padding=1)(x, offset, mask)
    """

    _name = "ModulatedDeformConv"

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, deformable_groups: int = 1,
                 bias: bool = True, norm: nn.Module | None = None, activation: Callable | None = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         deformable_groups, bias, norm, activation)
        self.with_bias = bias

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._deform(x, offset, mask)


def _deform_conv_reference(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    from det.core.layers.ops import torchvision_ops

    return torchvision_ops().deform_conv2d(
        input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask
    )


__all__ = ["DeformConv", "ModulatedDeformConv"]
