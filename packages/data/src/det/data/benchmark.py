"""Where a training data loader spends its time (detectron2's ``data.benchmark``).

:class:`DataLoaderBenchmark` takes what ``build_detection_train_loader`` takes and times its
stages apart: reading dataset items, mapping them in this process, the loader with 0, 1 and N
workers, the loader with the inter-process transfer of results left out, and the loader in every
distributed process. Each benchmark logs one line: iterations per second and the 1st, 5th, 95th
and 99th percentile of single iterations::

    kwargs = build_detection_train_loader.from_config(cfg)
    kwargs.pop("aspect_ratio_grouping", None)
    bench = DataLoaderBenchmark(**kwargs)
    bench.benchmark_mapper(100)  # "Single Process Mapper (sec/sample): avg=41.3 it/s, p1=..."
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch.utils.data

from det.data import comm
from det.data.build import build_batch_data_loader
from det.data.common import DatasetFromList, MapDataset
from det.data.samplers import TrainingSampler

__all__ = ["DataLoaderBenchmark", "iter_benchmark"]

logger = logging.getLogger(__name__)


def iter_benchmark(iterator: Iterable[Any], num_iter: int, warmup: int = 5,
                   max_time_seconds: float = 60) -> tuple[float, list[float]]:
    """Time ``num_iter`` items of ``iterator`` after ``warmup`` untimed ones, stopping early once
    ``max_time_seconds`` have gone into the timed part.

    Returns the mean seconds per item and the seconds of each timed item.
    """
    num_iter, warmup = int(num_iter), int(warmup)
    if num_iter <= 0 or warmup < 0:
        raise ValueError(f"iter_benchmark needs num_iter >= 1 and warmup >= 0, got num_iter={num_iter}, "
                         f"warmup={warmup}")
    items = iter(iterator)
    for _ in range(warmup):
        next(items)
    times: list[float] = []
    start = time.perf_counter()
    for _ in _progress(num_iter):
        if times and time.perf_counter() - start > max_time_seconds:
            break
        before = time.perf_counter()
        next(items)
        times.append(time.perf_counter() - before)
    return (time.perf_counter() - start) / len(times), times


def _progress(total: int) -> Iterable[int]:
    # a bar on a terminal; nothing in logs and pipes
    if not sys.stderr.isatty():
        return range(total)
    from tqdm import tqdm

    return tqdm(range(total), leave=False)


class _DiscardMapped(torch.utils.data.Dataset):
    """Maps every item (the work) but hands back a constant: what is left of a loader's time is
    reading, mapping and batching, without sending the mapped tensors between processes."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> list[int]:
        self.dataset[index]
        return [0]


class DataLoaderBenchmark:
    """Benchmarks of the parts of a standard training loader (dataset, mapper, sampler).

    Args:
        dataset: a list of dataset dicts or a map-style dataset.
        mapper: called on each dataset item (e.g. ``DatasetMapper(cfg, True)``).
        sampler: indices to read; a :class:`TrainingSampler` over the dataset by default.
        total_batch_size: images per step over all processes.
        num_workers: the loader's worker processes.
        max_time_seconds: each benchmark stops early after this long.
        loader_kwargs: the rest of what ``build_detection_train_loader.from_config`` returns
            (det's augmentation ``seed``), passed on to the loaders built here.
    """

    def __init__(self, dataset: Any, *, mapper: Callable[[Any], Any], sampler: Any = None,
                 total_batch_size: int, num_workers: int = 0, max_time_seconds: float = 90,
                 **loader_kwargs: Any) -> None:
        if isinstance(dataset, list):
            dataset = DatasetFromList(dataset, copy=False, serialize=True)
        world_size = comm.get_world_size()
        if total_batch_size <= 0 or total_batch_size % world_size:
            raise ValueError(f"DataLoaderBenchmark: total_batch_size={total_batch_size} must be a positive "
                             f"multiple of the number of processes ({world_size})")
        self.dataset = dataset
        self.mapper = mapper
        self.sampler = TrainingSampler(len(dataset)) if sampler is None else sampler
        self.total_batch_size = total_batch_size
        self.num_workers = num_workers
        self.per_gpu_batch_size = total_batch_size // world_size
        self.max_time_seconds = max_time_seconds
        self.loader_kwargs = loader_kwargs

    def _items(self) -> Iterator[Any]:
        while True:  # a finite sampler (e.g. InferenceSampler) starts over
            for index in self.sampler:
                yield self.dataset[index]

    def _loader(self, dataset: Any, num_workers: int) -> Any:
        return build_batch_data_loader(dataset, self.sampler, self.total_batch_size, num_workers=num_workers,
                                       **self.loader_kwargs)

    def _benchmark(self, iterator: Iterable[Any], num_iter: int, warmup: int,
                   msg: str | None = None) -> tuple[float, list[float]]:
        avg, times = iter_benchmark(iterator, num_iter, warmup, self.max_time_seconds)
        if msg is not None:
            self._log_time(msg, avg, times)
        return avg, times

    def _log_time(self, msg: str, avg: float, times: list[float], distributed: bool = False) -> None:
        percentiles = [float(np.percentile(times, q, method="nearest")) for q in (1, 5, 95, 99)]
        if not distributed:
            logger.info(_time_line(msg, avg, percentiles))
            return
        averages, all_percentiles = comm.all_gather(avg), comm.all_gather(percentiles)
        if comm.get_rank() == 0:
            for rank, (avg_r, percentiles_r) in enumerate(zip(averages, all_percentiles, strict=True)):
                logger.info(_time_line(f"GPU{rank} {msg}", avg_r, percentiles_r))

    def benchmark_dataset(self, num_iter: int, warmup: int = 5) -> None:
        """Reading raw items of the dataset in the sampler's order."""
        self._benchmark(self._items(), num_iter, warmup, "Dataset Alone")

    def benchmark_mapper(self, num_iter: int, warmup: int = 5) -> None:
        """Reading and mapping items in this process, one at a time."""
        mapped = (self.mapper(item) for item in self._items())
        self._benchmark(mapped, num_iter, warmup, "Single Process Mapper (sec/sample)")

    def benchmark_workers(self, num_iter: int, warmup: int = 10) -> None:
        """The batched loader with 0, 1 and ``num_workers`` workers (N workers run N times the
        iterations, so each worker is timed as long)."""
        dataset = MapDataset(self.dataset, self.mapper)
        for workers in dict.fromkeys([0, 1, self.num_workers]):
            loader = self._loader(dataset, workers)
            scale = max(workers, 1)
            self._benchmark(iter(loader), num_iter * scale, warmup * scale,
                            f"DataLoader ({workers} workers, bs={self.per_gpu_batch_size})")
            del loader

    def benchmark_IPC(self, num_iter: int, warmup: int = 10) -> None:
        """The loader with ``num_workers`` workers that map but send nothing back: compared with
        :meth:`benchmark_workers`, the cost of moving mapped results between processes."""
        loader = self._loader(_DiscardMapped(MapDataset(self.dataset, self.mapper)), self.num_workers)
        scale = max(self.num_workers, 1)
        self._benchmark(iter(loader), num_iter * scale, warmup * scale,
                        f"DataLoader ({self.num_workers} workers, bs={self.per_gpu_batch_size}) w/o comm")

    def benchmark_distributed(self, num_iter: int, warmup: int = 10) -> None:
        """The loader in every process at once, each process's speed logged by rank 0; also logs
        how long the first batch took (worker start-up)."""
        loader = iter(self._loader(MapDataset(self.dataset, self.mapper), self.num_workers))
        start = time.perf_counter()
        next(loader)
        logger.info("Dataloader startup time: %.2f seconds", time.perf_counter() - start)
        comm.synchronize()
        scale = max(self.num_workers, 1)
        avg, times = self._benchmark(loader, num_iter * scale, warmup * scale)
        del loader
        self._log_time(f"DataLoader ({comm.get_world_size()} GPUs x {self.num_workers} workers, "
                       f"total bs={self.total_batch_size})", avg, times, distributed=True)


def _time_line(msg: str, avg: float, percentiles: list[float]) -> str:
    p1, p5, p95, p99 = percentiles
    return f"{msg}: avg={1.0 / avg:.1f} it/s, p1={p1:.2g}s, p5={p5:.2g}s, p95={p95:.2g}s, p99={p99:.2g}s."

