"""Seconds per training iteration of demo recipes, measured side by side in one process.

Each variant is a recipe YAML plus overrides; all variants train on the demo's shapes data from
the same seed, interleaved in rounds (variant A a few iterations, then B, ...), so that a change
of the machine's load hits every variant alike. Printed per variant: the median wall seconds and
the median CPU seconds (``time.process_time``) per iteration after warm-up, the ratio to the first
variant, the thread count, the machine and the load average. CPU seconds with one thread are
what an idle core would take, and change little when other processes share the machine::

    .venv/bin/python bench/demo_speed.py --threads 1 --iters 12 \
        --variant base=packages/engine/src/det/engine/demo.yaml \
        --variant gn=bench/recipes/detectron2_best.yaml \
        --variant gn-native=bench/recipes/detectron2_best.yaml:INPUT.MIN_SIZE_TRAIN=(0,)

A ``+sep`` item trains with det's separable ROIAlign (``_separable_roi_align`` below),
``+cl`` with the model in channels_last memory format.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _variant(text: str) -> tuple[str, str, list[str], set[str]]:
    name, _, rest = text.partition("=")
    path, *overrides = rest.split(":")
    opts: list[str] = []
    flags = set()
    for item in overrides:
        if item.startswith("+"):
            flags.add(item[1:])
            continue
        key, _, value = item.partition("=")
        opts += [key, value]
    return name, path, opts, flags


@contextlib.contextmanager
def _separable_roi_align(enabled: bool) -> Iterator[None]:
    """With ``enabled``, ROIAlign on CPU tensors that need gradients runs det's separable form
    (:func:`det.core.layers.roi_align.roi_align_separable`: two small matrix products per box,
    differentiated by autograd) instead of torchvision's kernel, whose CPU backward is a
    single-threaded scatter; registered as an in-process op and removed on exit. Measured at 0.99x
    the demo recipe's time per iteration (128 regions per image): the demo does not use it."""
    if not enabled:
        yield
        return
    import torch

    from det.core.layers import ops
    from det.core.layers.roi_align import roi_align_separable

    reference = ops.dispatch("roi_align", torch.empty(0))

    def roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned):  # type: ignore[no-untyped-def]
        if input.requires_grad and torch.is_grad_enabled() and input.dtype == torch.float32 and rois.numel():
            sides = (rois[:, 3:5] - rois[:, 1:3]).amax() * spatial_scale / min(output_size)
            if sampling_ratio > 0 or float(sides) <= 64:  # the sample grid stays small
                return roi_align_separable(input, rois, output_size, spatial_scale, sampling_ratio, aligned)
        return reference(input, rois, output_size, spatial_scale, sampling_ratio, aligned)

    ops.register_op("roi_align", "cpu", roi_align, provider="bench.demo_speed")
    try:
        yield
    finally:
        ops.unregister_op("roi_align", "cpu")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=YAML[:KEY=VALUE...]")
    parser.add_argument("--iters", type=int, default=12, help="timed iterations per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="the timed iterations come in this many rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top ops per variant")
    args = parser.parse_args(argv)

    import torch
    from _common import load_line

    from det.core.events import EventStorage
    from det.core.machine import machine_info
    from det.data import DatasetCatalog
    from det.data.shapes import ShapesConfig, register_shapes
    from det.engine.demo import DEMO_DATASETS, get_demo_cfg
    from det.engine.train.defaults import DefaultTrainer, seed_all_rng

    torch.set_num_threads(args.threads)
    print("machine:", machine_info().describe(), f"threads {args.threads}")
    print("before:", load_line())
    register_shapes(ShapesConfig(), names=DEMO_DATASETS, replace=True)
    DatasetCatalog.get(DEMO_DATASETS[0])
    runs = []
    for text in args.variant:
        name, path, opts, flags = _variant(text)
        cfg = get_demo_cfg("/tmp/det-demo-speed", config_file=path, opts=opts)
        cfg.DATASETS.TRAIN = (DEMO_DATASETS[0],)
        seed_all_rng(0)
        model = DefaultTrainer.build_model(cfg)
        model.train()
        optimizer = DefaultTrainer.build_optimizer(cfg, model)
        loader = iter(DefaultTrainer.build_train_loader(cfg))
        if "cl" in flags:
            model = model.to(memory_format=torch.channels_last)
        runs.append({"name": name, "model": model, "opt": optimizer, "loader": loader, "wall": [], "cpu": [], "flags": flags,
                     "params": sum(p.numel() for p in model.parameters())})

    def step(run: dict, record: bool) -> None:
        data = next(run["loader"])
        w0, c0 = time.perf_counter(), time.process_time()
        with EventStorage(), _separable_roi_align("sep" in run["flags"]):
            losses = run["model"](data)
            total = sum(losses.values())
            run["opt"].zero_grad()
            total.backward()
            run["opt"].step()
        if record:
            run["wall"].append(time.perf_counter() - w0)
            run["cpu"].append(time.process_time() - c0)

    for run in runs:
        for _ in range(args.warmup):
            step(run, False)
    per_round = max(1, args.iters // args.rounds)
    for _ in range(args.rounds):
        for run in runs:
            for _ in range(per_round):
                step(run, True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for run in runs:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    step(run, False)
            print(f"--- {run['name']}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
    print("after:", load_line())
    base = statistics.median(runs[0]["cpu"])
    for run in runs:
        cpu, wall = statistics.median(run["cpu"]), statistics.median(run["wall"])
        print(f"{run['name']}: cpu_s_per_iter={cpu:.3f} wall_s_per_iter={wall:.3f} ratio_to_{runs[0]['name']}={cpu / base:.2f} "
              f"params={run['params'] / 1e6:.2f}M")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DET_CACHE", "/tmp/demo_cache")
    sys.exit(main())
