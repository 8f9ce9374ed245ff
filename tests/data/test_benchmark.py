"""DataLoaderBenchmark (detectron2's data.benchmark): each stage of a training loader timed apart."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from det.data.benchmark import DataLoaderBenchmark, iter_benchmark
from det.data.samplers import InferenceSampler

LINE = r"avg=[0-9.]+ it/s, p1=\S+s, p5=\S+s, p95=\S+s, p99=\S+s\.$"


def _mapper(item: dict) -> dict:
    return {"image": torch.full((3, 4, 4), float(item["value"])), "value": item["value"]}


def _bench(**kwargs) -> DataLoaderBenchmark:
    dataset = [{"value": i} for i in range(6)]
    return DataLoaderBenchmark(dataset, mapper=_mapper, total_batch_size=2, **kwargs)


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "det.data.benchmark"]


def test_iter_benchmark_times_each_item_after_the_warmup():
    items = iter(range(100))
    avg, times = iter_benchmark(items, num_iter=5, warmup=3)
    assert len(times) == 5 and all(t >= 0 for t in times) and avg >= 0
    assert next(items) == 8  # 3 warm-up + 5 timed items were taken, no more


def test_iter_benchmark_stops_after_max_time():
    avg, times = iter_benchmark(iter(range(10**6)), num_iter=10**6, warmup=0, max_time_seconds=0.0)
    assert len(times) == 1  # the first timed item always counts, then time is up


def test_a_finite_sampler_starts_over_for_dataset_and_mapper(caplog):
    bench = _bench(sampler=InferenceSampler(6))
    with caplog.at_level(logging.INFO, logger="det.data.benchmark"):
        bench.benchmark_mapper(10, warmup=5)  # 15 items from a sampler of 6
    assert re.match(r"Single Process Mapper \(sec/sample\): " + LINE, _messages(caplog)[0])


def test_iter_benchmark_rejects_nonsense():
    with pytest.raises(ValueError, match="num_iter >= 1 and warmup >= 0, got num_iter=0"):
        iter_benchmark(range(3), num_iter=0)


def test_each_benchmark_logs_its_stage(caplog):
    bench = _bench(num_workers=0)
    with caplog.at_level(logging.INFO, logger="det.data.benchmark"):
        bench.benchmark_dataset(4, warmup=1)
        bench.benchmark_mapper(4, warmup=1)
        bench.benchmark_workers(3, warmup=1)
        bench.benchmark_IPC(3, warmup=1)
        bench.benchmark_distributed(3, warmup=1)
    messages = _messages(caplog)
    prefixes = ["Dataset Alone: ", r"Single Process Mapper \(sec/sample\): ", r"DataLoader \(0 workers, bs=2\): ",
                r"DataLoader \(1 workers, bs=2\): ", r"DataLoader \(0 workers, bs=2\) w/o comm: "]
    for message, prefix in zip(messages, prefixes, strict=False):
        assert re.match(prefix + LINE, message), message
    assert re.match(r"Dataloader startup time: [0-9.]+ seconds$", messages[5])
    assert re.match(r"GPU0 DataLoader \(1 GPUs x 0 workers, total bs=2\): " + LINE, messages[6])
    assert len(messages) == 7


def test_accepts_what_build_detection_train_loader_from_config_returns(caplog):
    # detectron2's tools/benchmark.py builds it from the loader's from_config dict, which in det
    # also carries the augmentation seed
    bench = _bench(num_workers=0, seed=7)
    with caplog.at_level(logging.INFO, logger="det.data.benchmark"):
        bench.benchmark_distributed(2, warmup=0)
    assert bench.loader_kwargs == {"seed": 7}
    assert any(m.startswith("GPU0 DataLoader (1 GPUs x 0 workers, total bs=2)") for m in _messages(caplog))


def test_bad_batch_size_is_named():
    with pytest.raises(ValueError, match=r"total_batch_size=0 must be a positive multiple"):
        DataLoaderBenchmark([{"value": 0}], mapper=_mapper, total_batch_size=0)
