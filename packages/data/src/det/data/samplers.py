"""Index samplers for training (infinite, sharded by rank) and inference (finite, disjoint shards)."""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterator

import torch
from torch.utils.data.sampler import BatchSampler, Sampler

from det.data import comm

__all__ = [
    "GroupedBatchSampler",
    "InferenceSampler",
    "RandomSubsetTrainingSampler",
    "RepeatFactorTrainingSampler",
    "ResumeTrainingSampler",
    "TrainingSampler",
]

logger = logging.getLogger(__name__)


def _check_size(size: object, owner: str) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"{owner} needs the dataset size as a positive int, got {size!r}")
    return size


class _EndlessShardedSampler(Sampler):
    """What the endless training samplers share: a seed every rank agrees on (all ranks draw the
    same stream) and this rank's share ``r, r + world_size, ...`` of ``_infinite_indices()``."""

    def _init_stream(self, shuffle: bool, seed: int | None) -> None:
        self._shuffle = shuffle
        if seed is None:
            seed = comm.shared_random_seed()
        self._seed = int(seed)
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()

    def _infinite_indices(self) -> Iterator[int]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)


class TrainingSampler(_EndlessShardedSampler):
    """An endless stream of dataset indices: each pass is a (seeded) permutation of ``range(size)``
    and rank ``r`` of ``world_size`` yields the elements ``r, r + world_size, ...`` of that stream,
    so that ranks never see the same index at the same step.

        sampler = TrainingSampler(len(dataset), seed=0)
        first_ten = list(itertools.islice(sampler, 10))
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None) -> None:
        self._size = _check_size(size, "TrainingSampler")
        self._init_stream(shuffle, seed)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=g).tolist()
            else:
                yield from range(self._size)


class RandomSubsetTrainingSampler(TrainingSampler):
    """:class:`TrainingSampler` over a fixed random subset of ``int(size * subset_ratio)`` indices,
    e.g. to measure accuracy against the amount of training data.

        sampler = RandomSubsetTrainingSampler(len(dataset), 0.25, seed_shuffle=0, seed_subset=0)

    ``seed_subset`` picks the subset and ``seed_shuffle`` its order in each pass; both default to a
    seed shared by all processes, so every rank draws from the same subset.
    """

    def __init__(self, size: int, subset_ratio: float, shuffle: bool = True,
                 seed_shuffle: int | None = None, seed_subset: int | None = None) -> None:
        super().__init__(size=size, shuffle=shuffle, seed=seed_shuffle)
        if not 0.0 < subset_ratio <= 1.0:
            raise ValueError(f"RandomSubsetTrainingSampler: subset_ratio must be in (0, 1], got {subset_ratio}")
        subset_size = int(self._size * subset_ratio)
        if subset_size == 0:
            raise ValueError(
                f"RandomSubsetTrainingSampler: subset_ratio {subset_ratio} of {self._size} images selects none")
        if seed_subset is None:
            seed_subset = comm.shared_random_seed()
        g = torch.Generator()
        g.manual_seed(int(seed_subset))
        self._indexes_subset = torch.randperm(self._size, generator=g)[:subset_size]
        logger.info("Using RandomSubsetTrainingSampler: %d of %d images", subset_size, self._size)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        subset = self._indexes_subset
        while True:
            if self._shuffle:
                yield from subset[torch.randperm(len(subset), generator=g)].tolist()
            else:
                yield from subset.tolist()


class RepeatFactorTrainingSampler(_EndlessShardedSampler):
    """Like :class:`TrainingSampler`, but image ``i`` appears ``repeat_factors[i]`` times per
    epoch on average (stochastic rounding of the fractional part), to oversample rare classes.

        factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, 0.001)
        sampler = RepeatFactorTrainingSampler(factors, seed=0)
    """

    def __init__(
        self, repeat_factors: torch.Tensor, *, shuffle: bool = True, seed: int | None = None
    ) -> None:
        repeat_factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        if repeat_factors.ndim != 1 or len(repeat_factors) == 0:
            raise ValueError(
                f"repeat_factors must be a non-empty 1-D tensor, got shape {tuple(repeat_factors.shape)}"
            )
        self._init_stream(shuffle, seed)
        self._int_part = torch.trunc(repeat_factors)
        self._frac_part = repeat_factors - self._int_part

    @staticmethod
    def repeat_factors_from_category_frequency(
        dataset_dicts: list[dict], repeat_thresh: float, sqrt: bool = True
    ) -> torch.Tensor:
        """Per-image repeat factor ``max(1, sqrt(t / f(c)))`` over the image's categories ``c``,
        where ``f(c)`` is the fraction of images containing ``c`` (LVIS paper, sec. 2); without
        ``sqrt`` (``DATALOADER.REPEAT_SQRT: False``) the factor is ``max(1, t / f(c))``."""
        category_freq: dict[int, float] = defaultdict(int)
        for dataset_dict in dataset_dicts:
            cat_ids = {ann["category_id"] for ann in dataset_dict["annotations"]}
            for cat_id in cat_ids:
                category_freq[cat_id] += 1
        num_images = len(dataset_dicts)
        for k, v in category_freq.items():
            category_freq[k] = v / num_images
        category_rep = {
            cat_id: max(1.0, math.sqrt(repeat_thresh / cat_freq) if sqrt else repeat_thresh / cat_freq)
            for cat_id, cat_freq in category_freq.items()
        }
        rep_factors = []
        for dataset_dict in dataset_dicts:
            cat_ids = {ann["category_id"] for ann in dataset_dict["annotations"]}
            rep_factors.append(max({category_rep[cat_id] for cat_id in cat_ids}, default=1.0))
        return torch.tensor(rep_factors, dtype=torch.float32)

    def _get_epoch_indices(self, generator: torch.Generator) -> torch.Tensor:
        rands = torch.rand(len(self._frac_part), generator=generator)
        rep_factors = self._int_part + (rands < self._frac_part).float()
        indices: list[int] = []
        for dataset_index, rep_factor in enumerate(rep_factors):
            indices.extend([dataset_index] * int(rep_factor.item()))
        return torch.tensor(indices, dtype=torch.int64)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            indices = self._get_epoch_indices(g)
            if self._shuffle:
                randperm = torch.randperm(len(indices), generator=g)
                yield from indices[randperm].tolist()
            else:
                yield from indices.tolist()


class ResumeTrainingSampler(Sampler):
    """The index stream of a training ``sampler`` from batch ``start_batch`` on, ordered so that
    the training loader's batching yields exactly the batches an uninterrupted run gets from
    that batch on: what a resumed run needs to see the same data in the same order.

    The batching is replayed on indices alone (no image is read): ``batch_size`` indices per
    batch, split into two streams by ``group_ids`` when the loader groups by aspect ratio (one
    id per dataset index: 0 when the image is wider than high, as ``AspectRatioGroupedDataset``
    decides from the dicts' width/height), and each batch after ``start_batch`` is yielded whole,
    so every batch the loader forms is one of the uninterrupted run's::

        sampler = ResumeTrainingSampler(TrainingSampler(len(dicts), seed=0), 2, start_batch=500,
                                        group_ids=[0 if d["width"] > d["height"] else 1 for d in dicts])

    Its :meth:`enumerate_positions` gives each index's position in the uninterrupted stream, so
    that per-image seeded augmentations are the uninterrupted run's as well. Exact as long as the
    mapper returns every image (a mapper returning None makes the loader
    substitute another one, in either run).
    """

    def __init__(self, sampler: Sampler, batch_size: int, start_batch: int,
                 group_ids: list[int] | None = None) -> None:
        if batch_size <= 0 or start_batch < 0:
            raise ValueError(f"ResumeTrainingSampler needs batch_size > 0 and start_batch >= 0, got "
                             f"{batch_size}, {start_batch}")
        self._sampler = sampler
        self._batch_size = int(batch_size)
        self._start_batch = int(start_batch)
        self._group_ids = group_ids

    def __iter__(self) -> Iterator[int]:
        for _, idx in self.enumerate_positions():
            yield idx

    def enumerate_positions(self) -> Iterator[tuple[int, int]]:
        """``(position in the wrapped sampler's stream, index)`` for each index this sampler
        yields: the position the uninterrupted run produced that element at, from which
        :class:`~det.data.common.ToIterableDataset` seeds its augmentations, so that they are the
        uninterrupted run's too."""
        buckets: list[list[tuple[int, int]]] = [[], []]
        emitted = 0
        for position, idx in enumerate(self._sampler):
            bucket = buckets[0 if self._group_ids is None else self._group_ids[idx]]
            bucket.append((position, idx))
            if len(bucket) == self._batch_size:
                if emitted >= self._start_batch:
                    yield from bucket
                emitted += 1
                bucket.clear()


class InferenceSampler(Sampler):
    """Each of ``world_size`` ranks gets one contiguous slice of ``range(size)``; slices are
    disjoint, cover everything once, and differ in length by at most one.

        list(InferenceSampler(5))  # [0, 1, 2, 3, 4] in a single process
    """

    def __init__(self, size: int) -> None:
        self._size = _check_size(size, "InferenceSampler")
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()
        self._local_indices = self._get_local_indices(size, self._world_size, self._rank)

    @staticmethod
    def _get_local_indices(total_size: int, world_size: int, rank: int) -> range:
        shard_size = total_size // world_size
        left = total_size % world_size
        shard_sizes = [shard_size + int(r < left) for r in range(world_size)]
        begin = sum(shard_sizes[:rank])
        end = min(sum(shard_sizes[: rank + 1]), total_size)
        return range(begin, end)

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)


class GroupedBatchSampler(BatchSampler):
    """Batches of ``batch_size`` indices of ``sampler`` that share a group id (e.g. wide vs tall
    images), each emitted as soon as its group has enough; detectron2's ``GroupedBatchSampler``.

        sampler = GroupedBatchSampler(TrainingSampler(n), group_ids=[0, 1, 1, 0, ...], batch_size=2)

    An endless ``sampler`` gives endless batches, so ``len()`` is undefined (TypeError, as torch's
    samplers without a length do); the indices left in a group at the end are dropped.
    """

    def __init__(self, sampler: Sampler, group_ids, batch_size: int) -> None:
        if not isinstance(sampler, Sampler):
            raise ValueError(f"GroupedBatchSampler: sampler must be a torch.utils.data.Sampler, got "
                             f"{type(sampler).__name__}")
        self.sampler = sampler
        self.group_ids = [int(g) for g in group_ids]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"GroupedBatchSampler: batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = batch_size
        self.drop_last = True

    def __iter__(self) -> Iterator[list[int]]:
        waiting: dict[int, list[int]] = defaultdict(list)
        for index in self.sampler:
            group = waiting[self.group_ids[index]]
            group.append(index)
            if len(group) == self.batch_size:
                yield group.copy()
                group.clear()

    def __len__(self) -> int:
        raise TypeError("len() of GroupedBatchSampler is not defined: batches form as groups fill up")
