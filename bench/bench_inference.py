"""Inference time of det's Mask R-CNN R50-FPN against torchvision's, in one process.

    .venv/bin/python bench/bench_inference.py [--runs 5] [--threads 2] [--variants tv,det,fast32,fast]

Variants: ``tv`` = torchvision ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
box_score_thresh=0)``; ``det`` = det default (float32, bit-faithful to detectron2); ``fast32`` =
``det.core.fast.fast_mode(model, bf16=False)``; ``fast`` = ``fast_mode(model)`` (bf16 when the CPU
has it). All take the same 800x1067 image, predictors calibrated to return 100 detections
(see _common.py). Runs are interleaved (tv, det, ... , tv, det, ...) so that load changes hit every
variant alike; each variant's median of ``--runs`` warm runs is printed with its ratio to tv and
its throughput in GFLOP/s (FLOPs of convolutions and matmuls counted by torch's FlopCounterMode on
one det run).

Two phases: first torchvision and plain det under glibc's default allocator, then every variant
after ``det.core.allocator.retain_freed_memory_where_chosen()`` (what DefaultPredictor, fast mode and
the det commands call: it keeps freed memory where ``det.core.machine.inference_choices()`` says so;
process-wide, so torchvision gets it too in phase 2; ``allocator=glibc-default`` in both phases where
the machine's choice is off). ``ratio_to_tv`` divides by torchvision as shipped (phase 1);
``ratio_to_tv_same_allocator`` by torchvision in the same phase. The phases run one after the other,
so a load change between them shows as an allocator effect: ``bench_choices.py`` measures the
allocator choice itself, in alternating processes.

Every line starts with the CPU model and capability (det.core.machine); ``cpu_s`` is the median CPU
time of the process per call (user + system), which moves much less than wall time when other work
shares the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    build_det_model,
    build_tv_model,
    det_inputs,
    emit,
    load_line,
    machine_line,
    make_image,
    set_threads,
    tv_inputs,
)


def count_gflop(model, inputs) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    # With autograd on, det takes its training-path kernels (F.linear, torchvision's roi_align), whose
    # FLOPs the counter knows; the oneDNN linear of the inference path is not in its table.
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return counter.get_total_flops() / 1e9


def n_detections(name, out) -> int:
    return len(out[0]["instances"]) if name != "tv" else len(out[0]["boxes"])


def time_interleaved(variants: dict, runs: int) -> tuple[dict[str, list[float]], dict[str, list[float]], list[str]]:
    """``runs`` rounds of one call of each variant in turn (so load changes hit all alike): wall
    times, process CPU times, load lines."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    loads = []
    for _ in range(runs):
        loads.append(load_line())
        for name, (model, inputs) in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            model(inputs)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return times, cpu, loads


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="tv,det,fast32,fast")
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--width", type=int, default=1067)
    args = ap.parse_args()

    import torch

    from det.core.allocator import retain_freed_memory_where_chosen

    set_threads(args.threads)
    print(machine_line())
    image = make_image(args.height, args.width)
    names = args.variants.split(",")
    unknown = set(names) - {"tv", "det", "fast32", "fast"}
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}: expected tv, det, fast32 or fast")

    # Phase 1, glibc's default allocator (what torchvision gets as shipped): tv and plain det.
    # Phase 2, after det.core.allocator.retain_freed_memory_where_chosen() (what DefaultPredictor,
    # fast mode and the det commands call, process-wide): every variant, torchvision included.
    plain = {}
    if "tv" in names:
        plain["tv"] = (build_tv_model(), tv_inputs(image))
    if "det" in names:
        plain["det"] = (build_det_model(), det_inputs(image))

    gflop = {}
    dets = {}
    with torch.no_grad():
        for name, (model, inputs) in plain.items():
            gflop[name] = count_gflop(model, inputs)
            dets[name] = n_detections(name, model(inputs))  # also the warm-up
        times_default, cpu_default, loads = time_interleaved(plain, args.runs)

        retained = retain_freed_memory_where_chosen()
        tuned = dict(plain)
        for name in ("fast32", "fast"):
            if name in names:
                from det.core.fast import fast_mode

                model = fast_mode(build_det_model(), bf16=False if name == "fast32" else None)
                tuned[name] = (model, det_inputs(image))
        for name, (model, inputs) in tuned.items():
            dets[name] = n_detections(name, model(inputs))
            model(inputs)  # warm-up with the new allocator setting
        times_tuned, cpu_tuned, loads_tuned = time_interleaved(tuned, args.runs)
    loads += loads_tuned
    print(f"load during runs: {loads[0]} ... {loads[-1]}")
    print(f"retain_freed_memory applied (the machine's choice): {retained}")

    tv_default = statistics.median(times_default["tv"]) if "tv" in times_default else None
    tv_tuned = statistics.median(times_tuned["tv"]) if "tv" in times_tuned else None
    gflop_det = gflop.get("det")
    phases = (("glibc-default", times_default, cpu_default), ("retain" if retained else "glibc-default", times_tuned, cpu_tuned))
    for phase, (allocator, times, cpu) in enumerate(phases, start=1):
        for name, ts in times.items():
            med = statistics.median(ts)
            count = gflop.get("tv") if name == "tv" else gflop_det
            emit(
                {
                    "variant": name,
                    "phase": phase,
                    "allocator": allocator,
                    "image": f"{args.height}x{args.width}",
                    "median_s": f"{med:.3f}",
                    "min_s": f"{min(ts):.3f}",
                    "cpu_s": f"{statistics.median(cpu[name]):.3f}",
                    "runs": len(ts),
                    "ratio_to_tv": f"{med / tv_default:.3f}" if tv_default else "n/a",
                    "ratio_to_tv_same_allocator": (
                        f"{med / (tv_default if phase == 1 else tv_tuned):.3f}"
                        if tv_default and tv_tuned
                        else "n/a"
                    ),
                    "cpu_ratio_to_tv_same_phase": (
                        f"{statistics.median(cpu[name]) / statistics.median(cpu['tv']):.3f}" if "tv" in cpu else "n/a"
                    ),
                    "gflop": f"{count:.0f}" if count else "n/a",
                    "gflop_per_s": f"{count / med:.0f}" if count else "n/a",
                    "detections": dets[name],
                }
            )
    print(load_line())


if __name__ == "__main__":
    main()
