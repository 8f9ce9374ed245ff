"""Thin wrappers over torch.nn layers and tensor helpers, as detectron2's ``layers.wrappers``.

They exist for features torch lacks (norm + activation inside a conv, a copy-free ``cat``) and for
behaviour under tracing/scripting, so model code can use one name everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from det.core.machine import inference_choices


def shapes_to_tensor(x: Sequence[int | torch.Tensor], device: torch.device | None = None) -> torch.Tensor:
    """Turn a list of ints (or scalar int tensors) into a 1-D tensor, keeping traces dynamic.

    Under tracing the elements are expected to be scalar tensors, stacked so the output stays tied to
    the inputs; ``torch.as_tensor`` would record them as constants.
    """
    if torch.jit.is_scripting():
        return torch.as_tensor(x, device=device)
    if torch.jit.is_tracing():
        if not all(isinstance(t, torch.Tensor) for t in x):
            raise TypeError("shapes_to_tensor: during tracing every shape must be a scalar tensor")
        ret = torch.stack(list(x))
        if ret.device != device:  # don't record a hard-coded device unless needed
            ret = ret.to(device=device)
        return ret
    return torch.as_tensor(x, device=device)


def cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """``torch.cat`` that returns a single tensor as is instead of copying it."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"cat expects a list or tuple of tensors, got {type(tensors).__name__}")
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim)


def empty_input_loss_func_wrapper(loss_func: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Wrap a loss so that an empty target with ``reduction="mean"`` gives 0 (connected), not nan."""

    def wrapped_loss_func(input, target, *, reduction="mean", **kwargs):
        if target.numel() == 0 and reduction == "mean":
            return input.sum() * 0.0  # keeps the graph connected for DDP
        return loss_func(input, target, reduction=reduction, **kwargs)

    return wrapped_loss_func


cross_entropy = empty_input_loss_func_wrapper(F.cross_entropy)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by an optional ``norm`` module and ``activation`` callable, in that order.

    Parameters are named as nn.Conv2d's (``weight``, ``bias``) and the norm's sit under ``norm.``, so
    detectron2 checkpoints load unchanged::

        conv = Conv2d(3, 16, kernel_size=3, padding=1, bias=False,
                      norm=get_norm("BN", 16), activation=F.relu)
        y = conv(torch.rand(2, 3, 8, 8))  # (2, 16, 8, 8)

    Empty batches (N == 0) pass through and give an empty output of the right shape, except with
    ``nn.SyncBatchNorm`` in training, which cannot handle them.
    """

    def __init__(self, *args, norm: nn.Module | None = None, activation: Callable | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"Conv2d expects a tensor, got {type(x).__name__}")
            if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
                raise ValueError(
                    f"Conv2d expects input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
                )
            if x.numel() == 0 and self.training and isinstance(self.norm, nn.SyncBatchNorm):
                # https://github.com/pytorch/pytorch/issues/12013
                raise ValueError("SyncBatchNorm does not support empty inputs!")
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.norm is not None:
            normalize_in_place_ = getattr(self.norm, "normalize_in_place_", None)  # FrozenBatchNorm2d
            normalized = normalize_in_place_(x) if normalize_in_place_ is not None else None
            x = self.norm(x) if normalized is None else normalized
        if self.activation is not None:
            x = self.activation(x)
        return x


# torch's own layers handle empty inputs since 1.x; the names are kept for detectron2 code.
ConvTranspose2d = nn.ConvTranspose2d
BatchNorm2d = nn.BatchNorm2d
interpolate = F.interpolate


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and checkpoint names) that runs CPU float32 inference on
    oneDNN's inner product instead of the BLAS behind ``F.linear``.

    On the bench machine (AMD EPYC, AVX512) the box head's 12544->1024 layer on 1000 boxes takes
    56 ms there against 120 ms through ``F.linear``; results are equal up to float rounding. Where
    the machine's choice says otherwise (:func:`det.core.machine.inference_choices`, e.g. the
    portable level) it is ``F.linear``.
    Wherever a gradient may be needed, under tracing or compilation, or off the CPU, it is
    ``F.linear``: training stays bit-identical to detectron2's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _onednn_linear_applies(x, self.weight):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [None], "")
        return F.linear(x, self.weight, self.bias)


def _onednn_linear_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        _HAS_ONEDNN_LINEAR
        and torch.backends.mkldnn.enabled
        and x.dtype == weight.dtype == torch.float32
        and x.dim() == 2
        and x.shape[0] > 0
        and eager_cpu_inference(x, weight)
        and inference_choices().onednn_linear
    )


def eager_cpu_inference(*tensors: torch.Tensor) -> bool:
    """Whether an op on ``tensors`` may take det's CPU inference route: all on the CPU, no gradient
    can flow to any of them, and nothing is being scripted, traced or compiled (those see the
    training path's ops, whose numbers are detectron2's bit for bit)."""
    return (
        all(t.device.type == "cpu" for t in tensors)
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
        and not torch.jit.is_scripting()
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
    )


_HAS_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def nonzero_tuple(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``x.nonzero(as_tuple=True)`` that also works in TorchScript (and on 0-d tensors there)."""
    if torch.jit.is_scripting():
        if x.dim() == 0:
            return x.unsqueeze(0).nonzero().unbind(1)
        return x.nonzero().unbind(1)
    return x.nonzero(as_tuple=True)


@torch.jit.script_if_tracing
def move_device_like(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Move ``src`` to ``dst``'s device; scripted under tracing so the device is not a constant."""
    return src.to(dst.device)


class _NewEmptyTensorOp(torch.autograd.Function):
    """An empty tensor of ``new_shape`` that stays in the autograd graph of ``x`` (its gradient
    is an empty tensor of ``x``'s shape). torch's layers accept empty batches now; this remains
    because detectron2's project code (TridentNet's ``TridentConv``) imports it from
    ``detectron2.layers.wrappers``::

        y = _NewEmptyTensorOp.apply(x, [0, 256, 7, 7])
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, new_shape: Sequence[int]) -> torch.Tensor:
        ctx.shape = x.shape
        return x.new_empty(new_shape)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _NewEmptyTensorOp.apply(grad, ctx.shape), None


__all__ = [
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Linear",
    "cat",
    "cross_entropy",
    "empty_input_loss_func_wrapper",
    "interpolate",
    "move_device_like",
    "nonzero_tuple",
    "shapes_to_tensor",
]
