"""Normalisation layers: FrozenBatchNorm2d, NaiveSyncBatchNorm, CycleBatchNormList, channels-first
LayerNorm, get_norm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from det.core.layers.wrappers import BatchNorm2d, eager_cpu_inference


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d whose statistics and affine parameters are fixed buffers, never trained.

    It holds four buffers, ``weight``, ``bias``, ``running_mean``, ``running_var`` (detectron2's
    names), initialised to the identity, and always normalises with the running statistics::

        bn = FrozenBatchNorm2d(64)
        bn.load_state_dict(trained_bn.state_dict())   # same output as trained_bn.eval()
        model = FrozenBatchNorm2d.convert_frozen_batchnorm(model)

    Caffe2 checkpoints carry only ``weight`` and ``bias`` (the statistics folded in); loading one from
    a state-dict version < 2 fills the missing statistics with the identity.
    """

    _version = 3

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        # minus eps so that a fresh layer is exactly the identity
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"FrozenBatchNorm2d({self.num_features}) expects input of shape (N, {self.num_features}, ...), "
                f"got {tuple(x.shape)}"
            )
        if x.requires_grad:
            # Same op as detectron2 on the differentiable path, so gradients match its numbers.
            return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, False, 0.1,
                                    self.eps, torch.backends.cudnn.enabled)
        # Without gradients F.batch_norm is one fused op.
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )

    def normalize_in_place_(self, x: torch.Tensor) -> torch.Tensor | None:
        """``self(x)`` written into ``x`` and returned (the same numbers, bit for bit), or None when
        that does not apply (gradients, tracing, another dtype). Only for a tensor nobody else
        reads: det's ``Conv2d`` passes its own fresh output at CPU inference, which saves allocating
        (and page-faulting) a second map of that size after every convolution.
        """
        # only the CPU kernel is checked bit-exact; an input that requires grad keeps its graph intact
        if x.requires_grad or x.dtype != self.weight.dtype or not eager_cpu_inference(x, self.weight):
            return None
        unused = x.new_empty(0)
        torch.ops.aten.native_batch_norm.out(x, self.weight, self.bias, self.running_mean, self.running_var, False,
                                             0.1, self.eps, out=x, save_mean=unused, save_invstd=unused.clone())
        return x

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        version = local_metadata.get("version", None)
        if version is None or version < 2:
            # Old checkpoints have no statistics: identity ones keep the load silent and correct.
            if prefix + "running_mean" not in state_dict:
                state_dict[prefix + "running_mean"] = torch.zeros_like(self.running_mean)
            if prefix + "running_var" not in state_dict:
                state_dict[prefix + "running_var"] = torch.ones_like(self.running_var)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def __repr__(self) -> str:
        return f"FrozenBatchNorm2d(num_features={self.num_features}, eps={self.eps})"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Replace every BatchNorm2d / SyncBatchNorm in ``module`` by a FrozenBatchNorm2d.

        Returns a new module when ``module`` itself is a BatchNorm, else converts its children in
        place and returns it.
        """
        bn_types = (nn.modules.batchnorm.BatchNorm2d, nn.modules.batchnorm.SyncBatchNorm)
        res = module
        if isinstance(module, bn_types):
            res = cls(module.num_features)
            if module.affine:
                res.weight.data = module.weight.data.clone().detach()
                res.bias.data = module.bias.data.clone().detach()
            res.running_mean.data = module.running_mean.data
            res.running_var.data = module.running_var.data
            res.eps = module.eps
        else:
            for name, child in module.named_children():
                new_child = cls.convert_frozen_batchnorm(child)
                if new_child is not child:
                    res.add_module(name, new_child)
        return res


class LayerNorm(nn.Module):
    """LayerNorm over the channel dimension of an (N, C, H, W) tensor, as detectron2's (ConvNeXt's).

    ``weight`` and ``bias`` have shape (C,); statistics are per pixel::

        ln = LayerNorm(64)
        y = ln(torch.rand(2, 64, 8, 8))   # y.mean(1) ~ 0 everywhere
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.normalized_shape = (normalized_shape,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class _DifferentiableAllReduce(torch.autograd.Function):
    """Sum over workers whose gradient is also the sum over workers."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _world_size() -> int:
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size()


class NaiveSyncBatchNorm(BatchNorm2d):
    """BatchNorm2d whose training statistics are averaged over all workers, correct for unequal batches.

    Same parameters and buffers as ``nn.BatchNorm2d``; with one worker (or in eval) it is exactly
    BatchNorm2d::

        bn = NaiveSyncBatchNorm(64)                    # workers weighted equally
        bn_n = NaiveSyncBatchNorm(64, stats_mode="N")  # workers weighted by batch size; allows N == 0

    With ``stats_mode=""`` the result is the true statistics of all samples only when every worker has
    the same (N, H, W); with ``"N"`` when they have the same (H, W).
    """

    def __init__(self, *args, stats_mode: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if stats_mode not in ("", "N"):
            raise ValueError(f'NaiveSyncBatchNorm: stats_mode must be "" or "N", got {stats_mode!r}')
        self._stats_mode = stats_mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if _world_size() == 1 or not self.training:
            return super().forward(input)

        B, C = input.shape[0], input.shape[1]
        half_input = input.dtype == torch.float16
        if half_input:
            # fp16 is not precise enough for the reduction
            input = input.float()
        mean = torch.mean(input, dim=[0, 2, 3])
        meansqr = torch.mean(input * input, dim=[0, 2, 3])

        if self._stats_mode == "":
            if B == 0:
                raise ValueError('NaiveSyncBatchNorm(stats_mode="") does not support zero batch size')
            vec = torch.cat([mean, meansqr], dim=0)
            vec = _DifferentiableAllReduce.apply(vec) * (1.0 / dist.get_world_size())
            mean, meansqr = torch.split(vec, C)
            momentum = self.momentum
        else:
            if B == 0:
                vec = torch.zeros([2 * C + 1], device=mean.device, dtype=mean.dtype)
                vec = vec + input.sum()  # keeps a gradient path to the input
            else:
                ones = torch.ones([1], device=mean.device, dtype=mean.dtype)
                vec = torch.cat([mean, meansqr, ones], dim=0)
            vec = _DifferentiableAllReduce.apply(vec * B)
            total_batch = vec[-1].detach()
            momentum = total_batch.clamp(max=1) * self.momentum  # no update when nobody had samples
            mean, meansqr, _ = torch.split(vec / total_batch.clamp(min=1), C)

        var = meansqr - mean * mean
        invstd = torch.rsqrt(var + self.eps)
        scale = self.weight * invstd
        bias = self.bias - mean * scale
        self.running_mean += momentum * (mean.detach() - self.running_mean)
        self.running_var += momentum * (var.detach() - self.running_var)
        ret = input * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)
        if half_input:
            ret = ret.half()
        return ret


def _group_norm_32(channels: int) -> nn.Module:
    return nn.GroupNorm(32, channels)


def _naive_sync_bn_n(channels: int) -> nn.Module:
    return NaiveSyncBatchNorm(channels, stats_mode="N")


_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "BN": BatchNorm2d,
    "SyncBN": nn.SyncBatchNorm,
    "FrozenBN": FrozenBatchNorm2d,
    "GN": _group_norm_32,
    "nnSyncBN": nn.SyncBatchNorm,
    "naiveSyncBN": NaiveSyncBatchNorm,
    "naiveSyncBN_N": _naive_sync_bn_n,
    "LN": LayerNorm,
}


class CycleBatchNormList(nn.ModuleList):
    """``length`` BatchNorms used in turn, one per forward call, with one shared affine transform:
    domain-specific statistics (e.g. one per FPN level of a shared head, as RetinaNetHead with
    ``norm="BN"``; :paper:`rethinking-batchnorm` sec. 5.2).

    Invariant: call k normalises with ``self[k % length]``, then multiplies by the shared
    ``weight`` and adds ``bias``::

        norm = CycleBatchNormList(length=5, num_features=256)
        ys = [norm(x) for x in per_level_features]   # level i normalised by norm[i]

    The caller must call it a multiple of ``length`` times per iteration, always in the same order,
    or the statistics mix domains. ``bn_class`` and its keyword arguments (``num_features``
    required) build each BatchNorm with ``affine=False``; ``affine=False`` here also drops the
    shared weight and bias. Parameter and buffer names are detectron2's.
    """

    def __init__(self, length: int, bn_class: type[nn.Module] = nn.BatchNorm2d, **kwargs: Any) -> None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"CycleBatchNormList: length must be a positive int (BatchNorms to cycle), got {length!r}")
        self._affine = kwargs.pop("affine", True)
        super().__init__([bn_class(**kwargs, affine=False) for _ in range(length)])
        if self._affine:
            channels = self[0].num_features
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        self._pos = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self[self._pos](x)
        self._pos = (self._pos + 1) % len(self)
        if not self._affine:
            return out
        return out * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"affine={self._affine}"


def get_norm(norm: str | Callable[[int], nn.Module] | None, out_channels: int) -> nn.Module | None:
    """The normalisation layer for ``out_channels`` channels, or None.

    Args:
        norm: one of "BN", "SyncBN", "FrozenBN", "GN" (32 groups), "nnSyncBN", "naiveSyncBN",
            "naiveSyncBN_N", "LN"; "" or None for no norm; or a callable ``channels -> nn.Module``.
    """
    if norm is None:
        return None
    if isinstance(norm, str):
        if len(norm) == 0:
            return None
        if norm not in _NORMS:
            raise ValueError(f"Unknown norm {norm!r}; expected one of {sorted(_NORMS)}, '' or a callable")
        norm = _NORMS[norm]
    elif not callable(norm):
        raise TypeError(f"get_norm: norm must be a string, a callable or None, got {type(norm).__name__}")
    return norm(out_channels)


__all__ = ["CycleBatchNormList", "FrozenBatchNorm2d", "LayerNorm", "NaiveSyncBatchNorm", "get_norm"]
