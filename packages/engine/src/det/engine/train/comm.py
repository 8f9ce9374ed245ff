"""torch.distributed helpers (detectron2's ``detectron2.utils.comm``).

Every function gives the single-process answer when torch.distributed is not initialized, so
training code can call them unconditionally::

    from det.engine.train import comm
    if comm.is_main_process():
        save_metrics()
    losses = comm.reduce_dict(loss_dict)   # averaged over ranks, on rank 0
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

# The data pipeline owns the basic helpers; they are re-exported here so that there is one
# implementation and one public place (``det.engine.train.comm``) to import them from.
from det.data.comm import (
    all_gather,
    gather,
    get_rank,
    get_world_size,
    is_main_process,
    shared_random_seed,
    synchronize,
)

__all__ = [
    "all_gather",
    "gather",
    "get_local_rank",
    "get_local_size",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "reduce_dict",
    "shared_random_seed",
    "synchronize",
]


def get_local_rank() -> int:
    """Rank of this process within its machine (torchrun's ``LOCAL_RANK``; 0 when not distributed)."""
    if get_world_size() == 1:
        return 0
    return int(os.environ.get("LOCAL_RANK", get_rank()))


def get_local_size() -> int:
    """Number of processes on this machine (torchrun's ``LOCAL_WORLD_SIZE``)."""
    if get_world_size() == 1:
        return 1
    return int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))


def reduce_dict(input_dict: dict[str, torch.Tensor], average: bool = True) -> dict[str, torch.Tensor]:
    """Reduce the scalar tensors of ``input_dict`` over all ranks; only rank 0 gets the result.

    Every rank must pass the same keys. ``average=False`` sums instead of averaging.
    """
    world_size = get_world_size()
    if world_size < 2:
        return input_dict
    with torch.no_grad():
        names = sorted(input_dict.keys())  # same order on every rank
        values = torch.stack([input_dict[k].detach().reshape(()) for k in names])
        dist.reduce(values, dst=0)
        if dist.get_rank() == 0 and average:
            values /= world_size
        return dict(zip(names, values))
