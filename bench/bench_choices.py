"""Each of det's CPU inference choices on this machine, on against off, as the machine chooses them.

    .venv/bin/python bench/bench_choices.py [--pairs 3] [--runs 4] [--threads 2]
                                            [--only channels_last,onednn_linear,retain_freed_memory,fused_conv,fast32,threads]

``det.core.machine.inference_choices()`` decides, per machine, whether eval batches run channels_last,
whether ``det.core.layers.Linear`` uses oneDNN, whether fast mode fuses conv+ReLU into one oneDNN op
and whether the allocator keeps freed memory. This script measures each one as the user gets it:
DefaultPredictor on the full-size Mask R-CNN R50-FPN (800x1067, 100 detections, _common.py), in fresh
processes (the allocator setting is process-wide), with the choice forced on and off through
``DET_CPU_CHOICES``. Processes alternate (off, on, off, on, ...) so that load changes hit both alike;
each prints the median of ``--runs`` warm inferences and the parent prints, per choice, the median over
processes and the ratio on/off (< 1: the choice pays here). ``fast32`` compares fast_mode(bf16=False)
with the default model; ``threads`` compares 1 thread with ``--threads``.

Wall time is what a user waits; on a machine shared with other work it moves with the load. The
process's CPU time (``*_cpu_s``, user + system, page faults included) at ``--threads 1`` moves much
less with load, so on a busy machine it is the figure to decide by (2 threads on 2 busy cores add
OpenMP spin-waiting to it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit, load_line, machine_line

CHOICES = ("channels_last", "onednn_linear", "retain_freed_memory", "fused_conv", "fast32", "threads")


def child(args) -> None:
    import torch
    from _common import bgr_numpy, build_det_predictor, make_image

    torch.set_num_threads(args.child_threads)
    predictor = build_det_predictor()
    if args.child_fast:
        from det.core.fast import fast_mode

        fast_mode(predictor.model, bf16=False)
    image = bgr_numpy(make_image())
    predictor(image)  # warm-up
    times, cpu = [], []
    for _ in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = predictor(image)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    from det.core.machine import inference_choices

    print(json.dumps({
        "median_s": statistics.median(times), "min_s": min(times), "cpu_s": statistics.median(cpu),
        "detections": len(out["instances"]),
        "choices": inference_choices().as_dict(),
    }))


def run_child(args, *, choices: str, fast: bool, threads: int) -> dict:
    env = {**os.environ, "DET_CPU_CHOICES": choices}
    env.pop("DET_KEEP_FREED_MEMORY", None)
    cmd = [sys.executable, __file__, "--child", "--runs", str(args.runs), "--child-threads", str(threads)]
    if fast:
        cmd.append("--child-fast")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def variants(name: str, threads: int) -> tuple[dict, dict]:
    """(off, on) keyword arguments of run_child for one choice."""
    if name == "fast32":
        return dict(choices="", fast=False, threads=threads), dict(choices="", fast=True, threads=threads)
    if name == "threads":
        return dict(choices="", fast=False, threads=threads), dict(choices="", fast=False, threads=1)
    fast = name == "fused_conv"  # only fast mode fuses
    return (
        dict(choices=f"{name}=0", fast=fast, threads=threads),
        dict(choices=f"{name}=1", fast=fast, threads=threads),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=",".join(c for c in CHOICES if c != "threads"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-fast", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-threads", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(CHOICES)
    if unknown:
        raise SystemExit(f"unknown choices {sorted(unknown)}: expected some of {', '.join(CHOICES)}")
    print(machine_line())
    for name in names:
        off_kw, on_kw = variants(name, args.threads)
        off, on, loads = [], [], []
        for _ in range(args.pairs):
            loads.append(load_line())
            off.append(run_child(args, **off_kw))
            on.append(run_child(args, **on_kw))
        t_off = statistics.median(r["median_s"] for r in off)
        t_on = statistics.median(r["median_s"] for r in on)
        c_off = statistics.median(r["cpu_s"] for r in off)
        c_on = statistics.median(r["cpu_s"] for r in on)
        emit({
            "choice": name,
            "threads": args.threads,
            "off_s": f"{t_off:.3f}",
            "on_s": f"{t_on:.3f}",
            "ratio_on_off": f"{t_on / t_off:.3f}",
            "off_cpu_s": f"{c_off:.3f}",
            "on_cpu_s": f"{c_on:.3f}",
            "cpu_ratio_on_off": f"{c_on / c_off:.3f}",
            "off_each": "/".join(f"{r['median_s']:.2f}" for r in off),
            "on_each": "/".join(f"{r['median_s']:.2f}" for r in on),
            "detections": f"{off[0]['detections']}/{on[0]['detections']}",
            "load_first": f'"{loads[0]}"',
        })
    print(load_line())


if __name__ == "__main__":
    main()
