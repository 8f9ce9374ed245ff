"""Train one demo recipe for a fixed number of iterations and evaluate it: the experiment runner
behind the recipe table in ``bench/demo_recipes.md``.

Iterations, not wall time, decide AP here (the machine is shared): every run records its recipe
delta, iteration count, seed, box/mask AP on the demo's held-out split, the median seconds per
iteration and the load average, as one JSON line appended to ``--log``::

    .venv/bin/python bench/demo_recipe.py --name gn-base --iters 600 --seed 0 \
        --config-file packages/engine/src/det/engine/demo.yaml --opts SOLVER.BASE_LR 0.04

Seconds per iteration taken under load mean little; compare speeds only between runs made
back to back on a quiet machine (``uptime``), or with ``bench/demo_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="a short label for the recipe delta")
    parser.add_argument("--config-file", default=None, help="recipe YAML (default: the demo's embedded one)")
    parser.add_argument("--iters", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0, help="SEED (data order, init, sampling)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", nargs="*", default=[], metavar="KEY=VALUE", help="ShapesConfig fields")
    parser.add_argument("--log", default=str(REPO / "bench" / "demo_recipes.jsonl"))
    parser.add_argument("--keep", default=None, help="keep the run folder here (default: a temp folder)")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE config overrides")
    args = parser.parse_args(argv)

    import torch
    from _common import parse_scalar

    from det.engine.demo import run_demo

    torch.set_num_threads(args.threads)
    shapes = {}
    for item in args.shapes:
        key, _, value = item.partition("=")
        shapes[key] = parse_scalar(value)
    opts = [parse_scalar(v) if i % 2 else v for i, v in enumerate(args.opts)]
    opts += ["SEED", args.seed]
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="det-recipe-"))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    summary = run_demo(out, max_iter=args.iters, num_threads=args.threads, progress=False, quiet=True,
                       opts=opts, shapes=shapes, config_file=args.config_file, num_vis_images=0)
    wall = time.perf_counter() - t0
    times = []
    with open(out / "metrics.json") as f:
        for line in f:
            record = json.loads(line)
            if "time" in record:
                times.append(record["time"])
    record = {
        "name": args.name,
        "config": os.path.relpath(args.config_file, REPO) if args.config_file else "demo.yaml",
        "opts": args.opts,
        "shapes": shapes,
        "iters": args.iters,
        "seed": args.seed,
        "bbox_AP": round(summary["bbox_AP"], 2),
        "segm_AP": round(summary["segm_AP"], 2),
        "s_per_iter_median": round(statistics.median(times), 4) if times else None,
        "threads": args.threads,
        "wall_seconds": round(wall, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    with open(args.log, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
