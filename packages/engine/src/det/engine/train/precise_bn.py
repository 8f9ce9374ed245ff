"""Precise BatchNorm statistics (fvcore's ``nn.precise_bn``, which detectron2's ``PreciseBN`` hook uses).

During training a BN layer keeps an exponential moving average of batch statistics taken while the
weights kept changing, so at the end of training it does not describe the final model.
:func:`update_bn_stats` runs the model, weights fixed, over ``num_iters`` batches and sets each BN
layer's running mean and variance to the plain average of the per-batch values::

    from det.engine.train.precise_bn import get_bn_modules, update_bn_stats
    if get_bn_modules(model):              # BN layers in training mode
        update_bn_stats(model, loader, num_iters=200)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["BN_MODULE_TYPES", "get_bn_modules", "update_bn_stats"]

BN_MODULE_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
)
"""What counts as a BN layer (subclasses included, e.g. det's ``NaiveSyncBatchNorm``)."""


def get_bn_modules(model: nn.Module) -> list[nn.Module]:
    """The BN layers of ``model`` (instances of :data:`BN_MODULE_TYPES`) that are in training mode,
    in ``model.modules()`` order. Frozen BN (``FrozenBatchNorm2d``) and BN in eval mode are left out:
    their statistics are not meant to change."""
    return [m for m in model.modules() if m.training and isinstance(m, BN_MODULE_TYPES)]


@torch.no_grad()
def update_bn_stats(model: nn.Module, data_loader: Iterable[Any], num_iters: int = 200) -> None:
    """Set every training-mode BN layer's ``running_mean``/``running_var`` to the average over
    ``num_iters`` batches of ``data_loader`` of the batch mean and batch variance, as
    ``model(batch)`` computes them.

    The variance is the average of the per-batch variances the layer puts into ``running_var``
    (unbiased for torch's BN), as fvcore computes it; it does not include the spread of the batch
    means. Each layer's ``momentum``
    is restored afterwards, and nothing else about the model is changed: the caller puts the layers
    to update in training mode, and other stateful layers run their forward as usual.

    Raises:
        ValueError: ``num_iters`` < 1.
        RuntimeError: ``data_loader`` gave fewer than ``num_iters`` batches. The BN statistics
            are then left as they were.
    """
    if num_iters < 1:
        raise ValueError(f"update_bn_stats: num_iters must be >= 1, got {num_iters}")
    # a layer without running statistics (track_running_stats=False) has nothing to update
    layers = [
        bn
        for bn in get_bn_modules(model)
        if isinstance(bn, _BatchNorm) and bn.running_mean is not None and bn.running_var is not None
    ]
    if not layers:
        return

    momenta = [bn.momentum for bn in layers]
    # kept to undo the pass when it cannot finish
    saved = [{k: v.clone() for k, v in bn.named_buffers(recurse=False)} for bn in layers]
    # momentum 1 makes running_mean/var the statistics of the last batch alone
    for bn in layers:
        bn.momentum = 1.0
    # accumulate in at least float32, so that fp16 buffers lose nothing over hundreds of batches
    mean_sums = [torch.zeros_like(m, dtype=_accumulation_dtype(m)) for m, _ in map(_running_stats, layers)]
    var_sums = [torch.zeros_like(v, dtype=_accumulation_dtype(v)) for _, v in map(_running_stats, layers)]

    num_batches = 0
    finished = False
    try:
        for batch in itertools.islice(data_loader, num_iters):
            model(batch)
            num_batches += 1
            for bn, mean_sum, var_sum in zip(layers, mean_sums, var_sums):
                mean, var = _running_stats(bn)  # this batch's, read again: a layer may replace them
                mean_sum += mean
                var_sum += var
        if num_batches < num_iters:
            raise RuntimeError(
                f"update_bn_stats needs {num_iters} batches, but the data loader stopped after "
                f"{num_batches}; give it a longer (or infinite) loader or a smaller num_iters"
            )
        for bn, mean_sum, var_sum in zip(layers, mean_sums, var_sums):
            mean, var = _running_stats(bn)
            # in place: the buffers stay the same tensors (DDP and user code may hold them)
            mean.copy_(mean_sum / num_batches)
            var.copy_(var_sum / num_batches)
        finished = True
    finally:
        for bn, momentum, buffers in zip(layers, momenta, saved):
            bn.momentum = momentum
            if not finished:
                for name, value in buffers.items():
                    getattr(bn, name).copy_(value)


def _running_stats(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_mean is not None and bn.running_var is not None  # filtered in update_bn_stats
    return bn.running_mean, bn.running_var


def _accumulation_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.promote_types(t.dtype, torch.float32)
