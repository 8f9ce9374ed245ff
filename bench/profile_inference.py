"""Where the inference time goes: torch.profiler tables of det and torchvision on the bench image.

    .venv/bin/python bench/profile_inference.py [--model det|tv|both] [--fast] [--rows 25]

Prints the operators by self CPU time and the top-level module blocks (backbone, RPN, ROI heads,
postprocess), after one warm-up run. Profiling adds overhead: use bench_inference.py for timings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import build_det_model, build_tv_model, det_inputs, load_line, make_image, set_threads, tv_inputs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="both", choices=["det", "tv", "both"])
    ap.add_argument("--fast", action="store_true", help="det in fast mode (det.core.fast)")
    ap.add_argument("--fp32", action="store_true", help="fast mode without bf16")
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    set_threads(2)
    image = make_image()
    runs = []
    if args.model in ("det", "both"):
        model = build_det_model()
        if args.fast:
            from det.core.fast import fast_mode

            model = fast_mode(model, bf16=not args.fp32)
        runs.append(("det", model, det_inputs(image)))
    if args.model in ("tv", "both"):
        runs.append(("torchvision", build_tv_model(), tv_inputs(image)))
    print(load_line())
    for name, model, inputs in runs:
        with torch.no_grad():
            model(inputs)
            with profile(activities=[ProfilerActivity.CPU]) as prof, record_function(f"{name}_inference"):
                model(inputs)
        print(f"==== {name}: operators by self cpu time")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
        print(f"==== {name}: operators by total cpu time")
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
