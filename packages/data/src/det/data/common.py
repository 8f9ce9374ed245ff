"""Dataset wrappers used by the loaders: list -> dataset, per-item mapping, aspect-ratio batching."""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import pickle
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data as data

from det.data import comm

__all__ = [
    "AspectRatioGroupedDataset",
    "DatasetFromList",
    "MapDataset",
    "ToIterableDataset",
    "set_default_dataset_from_list_serialize_method",
]

logger = logging.getLogger(__name__)


def _roundrobin(*iterables: Iterable[Any]) -> Iterator[Any]:
    """One element of each iterable in turn until all are exhausted ("ABC", "D", "EF" -> A D E B F C)."""
    iterators = [iter(it) for it in iterables]
    while iterators:
        alive = []
        for it in iterators:
            try:
                yield next(it)
            except StopIteration:
                continue
            alive.append(it)
        iterators = alive


def _shard_iterator_dataloader_worker(iterable: Iterable[Any], chunk_size: int = 1) -> Iterator[Any]:
    """This DataLoader worker's share of ``iterable``: chunks of ``chunk_size`` consecutive
    elements dealt to the workers in turn (worker 0 takes chunk 0, worker 1 chunk 1, ...), so
    that the DataLoader, which takes one batch from each worker in turn, delivers the elements
    in their original order. Outside a worker, everything."""
    info = data.get_worker_info()
    if info is None or info.num_workers == 1:
        yield from iterable
        return
    yield from _roundrobin(*[
        itertools.islice(iterable, info.id * chunk_size + i, None, info.num_workers * chunk_size)
        for i in range(chunk_size)
    ])


class _TorchSerializedList:
    """A read-only list whose items are pickled into one uint8 buffer (a numpy array viewed as a
    torch tensor) with an int64 array of end offsets.

    Why: a Python list of dicts is millions of refcounted objects; every DataLoader worker that
    reads them (or whose garbage collector walks them) writes to their pages and so copies them
    (copy-on-write turns into copy-on-read). Two flat buffers have no Python objects to touch:
    with the "fork" start method workers share the parent's pages, and with "spawn" /
    "forkserver" torch's pickler moves the tensors to shared memory. Each item is unpickled
    afresh, so callers get their own copy::

        lst = _TorchSerializedList([{"file_name": "a.jpg"}, {"file_name": "b.jpg"}])
        lst[1]["file_name"]  # 'b.jpg'
    """

    def __init__(self, lst: list) -> None:
        logger.info("Serializing %d elements to byte tensors and concatenating them all ...", len(lst))
        blobs = [np.frombuffer(pickle.dumps(x, protocol=-1), dtype=np.uint8) for x in lst]
        self._addr = torch.from_numpy(np.cumsum(np.asarray([len(b) for b in blobs], dtype=np.int64)))
        self._lst = torch.from_numpy(np.concatenate(blobs) if blobs else np.zeros(0, dtype=np.uint8))
        logger.info("Serialized dataset takes %.2f MiB", len(self._lst) / 1024**2)

    def __len__(self) -> int:
        return len(self._addr)

    def __getitem__(self, idx: int) -> Any:
        idx = int(idx)
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for a serialized list of {len(self)} items")
        idx %= len(self)
        start = 0 if idx == 0 else int(self._addr[idx - 1])
        end = int(self._addr[idx])
        return pickle.loads(memoryview(self._lst[start:end].numpy()))  # type: ignore[arg-type]


_DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD: Callable[[list], Any] = _TorchSerializedList


@contextlib.contextmanager
def set_default_dataset_from_list_serialize_method(new: Callable[[list], Any]) -> Iterator[None]:
    """Within the block, ``DatasetFromList(lst, serialize=True)`` stores ``new(lst)`` (a
    list-like object) instead of a :class:`_TorchSerializedList`."""
    global _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD
    orig = _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD
    _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD = new
    try:
        yield
    finally:
        _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD = orig


class DatasetFromList(data.Dataset):
    """A map-style dataset over a list; item ``i`` is (a copy of) ``lst[i]``.

    With ``serialize=True`` (the default) the items are pickled into one buffer
    (:class:`_TorchSerializedList`, or what ``serialize`` returns when it is a callable), so
    that DataLoader workers share it instead of copying millions of Python objects; every item
    is then a fresh copy. Without, ``copy`` says whether items are deep copies::

        ds = DatasetFromList([{"file_name": "a.png"}], copy=False)
        ds[0]["file_name"]  # 'a.png'
    """

    def __init__(self, lst: list, copy: bool = True, serialize: bool | Callable[[list], Any] = True) -> None:
        if not isinstance(lst, list):
            raise TypeError(f"DatasetFromList needs a list, got {type(lst).__name__}")
        if not isinstance(serialize, bool) and not callable(serialize):
            raise TypeError(
                f"DatasetFromList: serialize must be a bool or a callable, got {type(serialize).__name__}"
            )
        self._lst: Any = lst
        self._copy = copy
        self._serialize = serialize is not False
        if self._serialize:
            method = serialize if callable(serialize) else _DEFAULT_DATASET_FROM_LIST_SERIALIZE_METHOD
            self._lst = method(lst)

    def __len__(self) -> int:
        return len(self._lst)

    def __getitem__(self, idx: int) -> Any:
        if self._copy and not self._serialize:
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


class _Enumerated:
    """``enumerate(sampler)`` that can be iterated more than once (each chunk of a worker's
    share iterates the sampler on its own). A sampler that reorders another one's stream (e.g.
    ``ResumeTrainingSampler``) says each element's original position with ``enumerate_positions()``."""

    def __init__(self, sampler: Iterable[Any]) -> None:
        self._sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        enumerate_positions = getattr(self._sampler, "enumerate_positions", None)
        return enumerate_positions() if enumerate_positions is not None else enumerate(self._sampler)


@contextlib.contextmanager
def _rng_seeded(seed: int) -> Iterator[None]:
    """Python's, numpy's and torch's global generators seeded with ``seed`` for the block, and
    put back as they were afterwards (the main process keeps its own random stream)."""
    states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


class ToIterableDataset(data.IterableDataset):
    """Streams ``dataset[i]`` for the indices of ``sampler``. With DataLoader workers each worker
    takes its share in chunks of ``shard_chunk_size`` consecutive indices (see
    ``_shard_iterator_dataloader_worker``), so nothing is produced twice and, with the chunk
    equal to the loader's batch size, batches come out in the sampler's order.

    ``seed`` (det's addition) makes the random augmentations independent of the number of
    workers: the element at position ``k`` of the stream is produced with Python's, numpy's and
    torch's generators seeded from ``(seed, rank, k)``, whichever worker produces it::

        it = iter(ToIterableDataset(DatasetFromList([5, 6, 7]), [2, 0]))  # yields 7, 5
    """

    def __init__(
        self,
        dataset: Any,
        sampler: Any,
        shard_sampler: bool = True,
        shard_chunk_size: int = 1,
        *,
        seed: int | None = None,
    ) -> None:
        if isinstance(dataset, data.IterableDataset):
            raise TypeError("ToIterableDataset needs a map-style dataset, got an IterableDataset")
        if shard_chunk_size < 1:
            raise ValueError(f"ToIterableDataset: shard_chunk_size must be >= 1, got {shard_chunk_size}")
        self.dataset = dataset
        self.sampler = sampler
        self.shard_sampler = shard_sampler
        self.shard_chunk_size = shard_chunk_size
        self.seed = seed
        self._rank = comm.get_rank()

    def __iter__(self) -> Iterator[Any]:
        # With a map-style dataset DataLoader runs the sampler once, in the main process; here
        # every worker runs it and keeps only its share (samplers are cheap to iterate).
        positions: Iterable[tuple[int, Any]] = _Enumerated(self.sampler)
        if self.shard_sampler:
            positions = _shard_iterator_dataloader_worker(positions, self.shard_chunk_size)
        if self.seed is None:
            for _, idx in positions:
                yield self.dataset[idx]
            return
        for position, idx in positions:
            element_seed = int(np.random.SeedSequence([self.seed, self._rank, position]).generate_state(1)[0])
            with _rng_seeded(element_seed):
                element = self.dataset[idx]
            yield element

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
