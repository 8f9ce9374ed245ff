"""``det benchmark``: time one part of a config's pipeline (detectron2's ``tools/benchmark.py``).

    det benchmark --config-file out/config.yaml --task eval --iters 100
    det benchmark --config-file out/config.yaml --task train MODEL.DEVICE cuda
    det benchmark --config-file out/config.yaml --task data_advanced --num-gpus 2

``train`` times training iterations on up to 100 cached batches (the model alone: no data
loading; ``SOLVER.BASE_LR`` is 0.001 unless overridden, which keeps random weights finite);
``eval`` times inference on up to 100 cached test images of ``DATASETS.TEST[0]``; ``data`` times
the training loader (reading, mapping, workers, batching); ``data_advanced`` times the stages of
it one by one: the dataset list, the mapper, then the loader with ``DATALOADER.NUM_WORKERS``. The
first ``--warmup`` iterations are not timed. Each result is a line ``<task>: ... s/iter ...``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from det.engine.commands._common import (
    USER_ERRORS,
    CommandError,
    add_config_overrides,
    report_user_error,
    require_datasets,
    setup_cfg,
    show_examples,
)

__all__ = ["TASKS", "main", "register", "run"]

TASKS = ("train", "eval", "data", "data_advanced")
DEFAULT_ITERS = {"train": 400, "eval": 300, "data": 250, "data_advanced": 100}
_CACHED_BATCHES = 100

logger = logging.getLogger("det.benchmark")


def _peak_memory() -> str:
    try:
        import resource
    except ImportError:  # not on Windows
        return ""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return f", peak RSS {peak / (1 << 30 if sys.platform == 'darwin' else 1 << 20):.2f} GB"


def _report(task: str, what: str, count: int, seconds: float, images: int, out=None) -> dict[str, float]:
    per = seconds / max(count, 1)
    rate = images / seconds if seconds > 0 else float("inf")
    print(f"{task}: {count} {what} in {seconds:.3f} s: {per:.4f} s/iter, {rate:.2f} images/s", file=out)
    return {"iterations": count, "seconds": seconds, "seconds_per_iter": per, "images_per_second": rate}


def _timed(items: Iterable[Any], iters: int, warmup: int, step: Callable[[Any], int], desc: str,
           progress: bool) -> tuple[float, int]:
    """Call ``step`` on ``warmup + iters`` items; return (seconds of the last ``iters``, images
    they held: the sum of what ``step`` returned)."""
    from tqdm import tqdm

    images = 0
    start = time.perf_counter()
    with tqdm(total=warmup + iters, desc=desc, unit="it", leave=False, disable=not progress) as bar:
        for i, item in enumerate(itertools.islice(items, warmup + iters)):
            if i == warmup:
                start, images = time.perf_counter(), 0
            images += step(item)
            bar.update()
    return time.perf_counter() - start, images


def _cycle(batches: Sequence[Any]) -> Iterable[Any]:
    while True:
        yield from batches


def _load_model(cfg: Any) -> Any:
    from det.checkpoint import DetectionCheckpointer
    from det.core.modeling.build import build_model

    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model


def benchmark_eval(cfg: Any, iters: int, warmup: int, progress: bool = True) -> dict[str, float]:
    import torch

    from det.data.build import build_detection_test_loader

    name = require_datasets(cfg.DATASETS.TEST, "DATASETS.TEST")[0]
    model = _load_model(cfg).eval()
    batches = list(itertools.islice(build_detection_test_loader(cfg, name), _CACHED_BATCHES))
    if not batches:
        raise CommandError(f"dataset {name!r} has no images")

    def step(batch: Any) -> int:
        model(batch)
        return len(batch)

    with torch.no_grad():
        seconds, images = _timed(_cycle(batches), iters, warmup, step, "eval", progress)
    return _report("eval", "iterations", iters, seconds, images)


def benchmark_train(cfg: Any, iters: int, warmup: int, progress: bool = True) -> dict[str, float]:
    from det.data.build import build_detection_train_loader
    from det.engine.train import comm, hooks
    from det.engine.train.defaults import create_ddp_model
    from det.engine.train.solver import build_optimizer
    from det.engine.train.train_loop import AMPTrainer, HookBase, SimpleTrainer

    require_datasets(cfg.DATASETS.TRAIN, "DATASETS.TRAIN")
    model = _load_model(cfg)
    optimizer = build_optimizer(cfg, model)
    model = create_ddp_model(model, broadcast_buffers=False)
    # cached batches: the model's time alone, not the loader's
    batches = list(itertools.islice(build_detection_train_loader(cfg), min(_CACHED_BATCHES, warmup + iters)))
    trainer = (AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer)(model, _cycle(batches), optimizer)

    class StepTimer(HookBase):
        """Times the iterations after the first ``warmup``."""

        start = end = 0.0

        def before_step(self) -> None:
            if self.trainer.iter == warmup:
                self.start = time.perf_counter()

        def after_step(self) -> None:
            self.end = time.perf_counter()

    timer = StepTimer()
    trainer.register_hooks([timer, hooks.ProgressBar(leave=False) if progress and comm.is_main_process() else None])
    trainer.train(0, warmup + iters)
    seconds = timer.end - timer.start
    return _report("train", "iterations", iters, seconds, iters * len(batches[0]) * comm.get_world_size())


def benchmark_data(cfg: Any, iters: int, warmup: int, progress: bool = True) -> dict[str, float]:
    from det.data.build import build_detection_train_loader

    require_datasets(cfg.DATASETS.TRAIN, "DATASETS.TRAIN")
    loader = build_detection_train_loader(cfg)
    seconds, images = _timed(iter(loader), iters, warmup, len, "data", progress)
    result = _report("data", "batches", iters, seconds, images)
    print(f"data: {cfg.DATALOADER.NUM_WORKERS} workers{_peak_memory()}")
    return result


def benchmark_data_advanced(cfg: Any, iters: int, warmup: int, progress: bool = True) -> dict[str, dict[str, float]]:
    """The loader's stages one at a time: dataset indexing, mapper, loader with workers."""
    from det.data.build import build_detection_train_loader, get_detection_dataset_dicts
    from det.data.common import DatasetFromList
    from det.data.dataset_mapper import DatasetMapper

    names = require_datasets(cfg.DATASETS.TRAIN, "DATASETS.TRAIN")
    start = time.perf_counter()
    dicts = get_detection_dataset_dicts(
        names, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
        min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0)
    print(f"data_advanced: loading {len(dicts)} dataset dicts took {time.perf_counter() - start:.3f} s"
          f"{_peak_memory()}")
    dataset = DatasetFromList(dicts, copy=False)
    results = {}
    n = len(dataset)
    seconds, images = _timed((dataset[i % n] for i in itertools.count()), iters, warmup, lambda _: 1,
                             "dataset", progress)
    results["dataset"] = _report("data_advanced dataset", "items", iters, seconds, images)
    mapper = DatasetMapper(cfg, True)
    seconds, images = _timed((dataset[i % n] for i in itertools.count()), iters, warmup,
                             lambda d: int(mapper(d) is not None), "mapper", progress)
    results["mapper"] = _report("data_advanced mapper", "images", iters, seconds, images)
    loader = build_detection_train_loader(cfg)
    seconds, images = _timed(iter(loader), iters, warmup, len, "loader", progress)
    results["loader"] = _report(f"data_advanced loader ({cfg.DATALOADER.NUM_WORKERS} workers)", "batches",
                                iters, seconds, images)
    return results


_TASK_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "train": benchmark_train, "eval": benchmark_eval, "data": benchmark_data, "data_advanced": benchmark_data_advanced,
}


def _worker(task: str, config_file: str, opts: list[str], iters: int, warmup: int, progress: bool) -> Any:
    from det.engine.train import comm

    cfg = setup_cfg(config_file, opts)
    return _TASK_FUNCTIONS[task](cfg, iters, warmup, progress=progress and comm.is_main_process())


def _opts(task: str, opts: Sequence[str] | None) -> list[str]:
    opts = list(opts or [])
    if opts and opts[0] == "--":
        opts = opts[1:]
    if task == "train":
        return ["SOLVER.BASE_LR", "0.001", *opts]  # random weights stay finite; the user may override
    if task == "eval":
        return [*opts, "DATALOADER.NUM_WORKERS", "0"]  # cached batches: no worker is needed
    return opts


def main(config_file: str, task: str, *, iters: int | None = None, warmup: int = 5,
         opts: Sequence[str] | None = None, progress: bool = True) -> Any:
    """Run benchmark ``task`` (one of :data:`TASKS`) in this process; print and return timings."""
    if task not in TASKS:
        raise CommandError(f"unknown --task {task!r}: choose among {', '.join(TASKS)}")
    iters = DEFAULT_ITERS[task] if iters is None else iters
    if iters <= 0:
        raise CommandError(f"--iters must be positive, got {iters}")
    if warmup < 0:
        raise CommandError(f"--warmup must be >= 0, got {warmup}")
    return _worker(task, config_file, _opts(task, opts), iters, warmup, progress)


def run(args: argparse.Namespace) -> int:
    from det.engine.train.launch import launch

    try:
        if args.num_gpus * args.num_machines == 1:
            main(args.config_file, args.task, iters=args.iters, warmup=args.warmup, opts=args.opts,
                 progress=not args.no_progress)
            return 0
        if args.task == "eval":
            raise CommandError("--task eval runs in one process: drop --num-gpus/--num-machines")
        iters = DEFAULT_ITERS[args.task] if args.iters is None else args.iters
        opts = _opts(args.task, args.opts)
        setup_cfg(args.config_file, opts)  # a bad config fails here, before any worker starts
    except USER_ERRORS as e:
        return report_user_error("benchmark", e)
    launch(_worker, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args.task, args.config_file, opts, iters, args.warmup, not args.no_progress))
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    parser.add_argument("--task", required=True, choices=TASKS, help="what to time")
    parser.add_argument("--iters", type=int, default=None,
                        help="timed iterations (default: train 400, eval 300, data 250, data_advanced 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine (train and data tasks)")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine")
    parser.add_argument("--dist-url", default="auto", help="torch.distributed init URL ('auto': one machine)")
    add_config_overrides(parser)
    show_examples(parser, __doc__)
    return run
