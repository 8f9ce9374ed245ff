"""The few torch.distributed helpers the data pipeline and evaluators need.

Everything degrades to the single-process answer when torch.distributed is not initialized.
"""

from __future__ import annotations

import numpy as np
import torch.distributed as dist


def get_world_size() -> int:
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size()


def get_rank() -> int:
    if not dist.is_available() or not dist.is_initialized():
        return 0
    return dist.get_rank()


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    if get_world_size() > 1:
        dist.barrier()


def all_gather(data: object) -> list:
    """Gather a picklable object from every rank (list indexed by rank)."""
    if get_world_size() == 1:
        return [data]
    output: list = [None] * get_world_size()
    dist.all_gather_object(output, data)
    return output


def gather(data: object, dst: int = 0) -> list:
    """Gather a picklable object on rank ``dst`` (other ranks get an empty list)."""
    world_size = get_world_size()
    if world_size == 1:
        return [data]
    if get_rank() == dst:
        output: list = [None] * world_size
        dist.gather_object(data, output, dst=dst)
        return output
    dist.gather_object(data, None, dst=dst)
    return []


def shared_random_seed() -> int:
    """A random int that is the same on every rank (all ranks must call this)."""
    ints = np.random.randint(2**31)
    return int(all_gather(ints)[0])


__all__ = [
    "all_gather",
    "gather",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "shared_random_seed",
    "synchronize",
]
