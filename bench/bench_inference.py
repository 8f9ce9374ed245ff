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

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return counter.get_total_flops() / 1e9


def n_detections(name, out) -> int:
    return len(out[0]["instances"]) if name != "tv" else len(out[0]["boxes"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="tv,det,fast32,fast")
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--width", type=int, default=1067)
    args = ap.parse_args()

    import torch

    set_threads(args.threads)
    print(machine_line())
    image = make_image(args.height, args.width)
    variants = {}
    for name in args.variants.split(","):
        if name == "tv":
            variants[name] = (build_tv_model(), tv_inputs(image))
        elif name in ("det", "fast32", "fast"):
            model = build_det_model()
            if name != "det":
                from det.core.fast import fast_mode

                model = fast_mode(model, bf16=False if name == "fast32" else None)
            variants[name] = (model, det_inputs(image))
        else:
            raise SystemExit(f"unknown variant {name!r}: expected tv, det, fast32 or fast")

    gflop_det = gflop_tv = None
    with torch.no_grad():
        if "det" in variants or "fast32" in variants:
            key = "det" if "det" in variants else "fast32"
            gflop_det = count_gflop(*variants[key])
        if "tv" in variants:
            gflop_tv = count_gflop(*variants["tv"])
        dets = {}
        for name, (model, inputs) in variants.items():  # warm-up
            dets[name] = n_detections(name, model(inputs))
        times = {name: [] for name in variants}
        loads = []
        for _ in range(args.runs):
            loads.append(load_line())
            for name, (model, inputs) in variants.items():
                t0 = time.perf_counter()
                model(inputs)
                times[name].append(time.perf_counter() - t0)
    print(f"load during runs: {loads[0]} ... {loads[-1]}")
    tv_med = statistics.median(times["tv"]) if "tv" in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        gflop = gflop_tv if name == "tv" else gflop_det
        emit(
            {
                "variant": name,
                "image": f"{args.height}x{args.width}",
                "median_s": f"{med:.3f}",
                "min_s": f"{min(ts):.3f}",
                "runs": len(ts),
                "ratio_to_tv": f"{med / tv_med:.3f}" if tv_med else "n/a",
                "gflop": f"{gflop:.0f}" if gflop else "n/a",
                "gflop_per_s": f"{gflop / med:.0f}" if gflop else "n/a",
                "detections": dets[name],
            }
        )
    print(load_line())


if __name__ == "__main__":
    main()
