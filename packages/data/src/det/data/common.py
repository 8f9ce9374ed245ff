"""Dataset wrappers used by the loaders: list -> dataset, per-item mapping, aspect-ratio batching."""

from __future__ import annotations

import copy
import itertools
import logging
import pickle
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch.utils.data as data

__all__ = ["AspectRatioGroupedDataset", "DatasetFromList", "MapDataset", "ToIterableDataset"]

logger = logging.getLogger(__name__)


class DatasetFromList(data.Dataset):
    """A map-style dataset over a list; item ``i`` is (a copy of) ``lst[i]``.

    With ``serialize=True`` the items are pickled into one numpy buffer, so that DataLoader
    workers share it copy-on-write instead of touching refcounts of millions of Python objects::

        ds = DatasetFromList([{"file_name": "a.png"}], copy=False)
        ds[0]["file_name"]  # 'a.png'
    """

    def __init__(self, lst: list, copy: bool = True, serialize: bool = True) -> None:
        if not isinstance(lst, list):
            raise TypeError(f"DatasetFromList needs a list, got {type(lst).__name__}")
        self._lst = lst
        self._copy = copy
        self._serialize = serialize
        if self._serialize:
            blobs = [np.frombuffer(pickle.dumps(x, protocol=-1), dtype=np.uint8) for x in self._lst]
            self._addr = np.cumsum(np.asarray([len(b) for b in blobs], dtype=np.int64))
            self._lst = np.concatenate(blobs) if blobs else np.zeros(0, dtype=np.uint8)  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self._addr) if self._serialize else len(self._lst)

    def __getitem__(self, idx: int) -> Any:
        if self._serialize:
            start = 0 if idx == 0 else int(self._addr[idx - 1])
            end = int(self._addr[idx])
            return pickle.loads(memoryview(self._lst[start:end]))  # type: ignore[arg-type]
        if self._copy:
            return copy.deepcopy(self._lst[idx])
        return self._lst[idx]


class MapDataset(data.Dataset):
    """``map_func`` applied lazily to every item of ``dataset``.

    When ``map_func`` returns None (e.g. a crop lost every box) another, previously good item is
    used instead, as detectron2 does; iterable datasets are mapped as they stream::

        ds = MapDataset(DatasetFromList([1, 2]), lambda x: x * 10)
        ds[1]  # 20
    """

    def __init__(self, dataset: Any, map_func: Callable[[Any], Any]) -> None:
        self._dataset = dataset
        self._map_func = map_func
        self._rng = random.Random(42)
        self._fallback_candidates = set(range(len(dataset))) if hasattr(dataset, "__len__") else set()

    def __new__(cls, dataset: Any = None, map_func: Callable[[Any], Any] | None = None):  # type: ignore[no-untyped-def]
        # (arguments are optional so that pickle, which calls __new__(cls), can rebuild instances)
        streaming = isinstance(dataset, data.IterableDataset) or (
            not hasattr(dataset, "__getitem__") and hasattr(dataset, "__iter__")
        )
        if dataset is not None and map_func is not None and streaming:
            return _MapIterableDataset(dataset, map_func)
        return super().__new__(cls)

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, idx: int) -> Any:
        retry_count = 0
        cur_idx = int(idx)
        while True:
            mapped = self._map_func(self._dataset[cur_idx])
            if mapped is not None:
                self._fallback_candidates.add(cur_idx)
                return mapped
            retry_count += 1
            self._fallback_candidates.discard(cur_idx)
            if not self._fallback_candidates:
                raise RuntimeError(
                    "MapDataset: map_func returned None for every item tried; nothing to fall back to"
                )
            cur_idx = self._rng.sample(sorted(self._fallback_candidates), k=1)[0]
            if retry_count >= 3:
                logger.warning("Failed to apply `_map_func` for idx: %d, retry count: %d", idx, retry_count)


class _MapIterableDataset(data.IterableDataset):
    def __init__(self, dataset: Any, map_func: Callable[[Any], Any]) -> None:
        self._dataset = dataset
        self._map_func = map_func

    def __len__(self) -> int:
        return len(self._dataset)

    def __iter__(self) -> Iterator[Any]:
        for x in map(self._map_func, self._dataset):
            if x is not None:
                yield x


class ToIterableDataset(data.IterableDataset):
    """Streams ``dataset[i]`` for the indices of ``sampler``; with DataLoader workers each worker
    takes every ``num_workers``-th index so nothing is produced twice.

        it = iter(ToIterableDataset(DatasetFromList([5, 6, 7]), [2, 0]))  # yields 7, 5
    """

    def __init__(self, dataset: Any, sampler: Any, shard_sampler: bool = True) -> None:
        if isinstance(dataset, data.IterableDataset):
            raise TypeError("ToIterableDataset needs a map-style dataset, got an IterableDataset")
        self.dataset = dataset
        self.sampler = sampler
        self.shard_sampler = shard_sampler

    def __iter__(self) -> Iterator[Any]:
        indices = iter(self.sampler)
        if self.shard_sampler:
            info = data.get_worker_info()
            if info is not None and info.num_workers > 1:
                indices = itertools.islice(indices, info.id, None, info.num_workers)
        for idx in indices:
            yield self.dataset[idx]

    def __len__(self) -> int:
        return len(self.sampler)


class AspectRatioGroupedDataset(data.IterableDataset):
    """Batches of ``batch_size`` dataset dicts that all have width > height, or all not, so that
    padding a batch to its largest image wastes little. Needs "width" and "height" in each dict.

        batches = AspectRatioGroupedDataset(loader_of_single_dicts, batch_size=2)
        next(iter(batches))  # a list of 2 dicts of the same orientation
    """

    def __init__(self, dataset: Any, batch_size: int) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self._buckets: list[list[Any]] = [[] for _ in range(2)]

    def __iter__(self) -> Iterator[list[Any]]:
        for d in self.dataset:
            w, h = d["width"], d["height"]
            bucket_id = 0 if w > h else 1
            bucket = self._buckets[bucket_id]
            bucket.append(d)
            if len(bucket) == self.batch_size:
                batch = bucket[:]
                del bucket[:]
                yield batch
