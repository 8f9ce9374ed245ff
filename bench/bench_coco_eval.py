"""COCO evaluation at COCO-val size: time and peak memory of the fast COCOeval
(ultrafast-pycocotools, ``use_fast_impl=True``) against pycocotools' (``use_fast_impl=False``).

    .venv/bin/python bench/bench_coco_eval.py                 # 5,000 images, bbox and segm
    .venv/bin/python bench/bench_coco_eval.py --images 500    # a quick look

The case is generated once (``det.evaluation.synthetic``, cached in /tmp/det-bench): 5,000
COCO-sized images with ~36,500 ground-truth objects (polygon masks, 1 % crowd regions as
uncompressed RLE, 80 categories) and 100 detections per image with compressed-RLE masks
(500,000 results), as a COCO json and a results json. Every (implementation, task) runs in a
process of its own, one after the other, so that peak RSS is that run's alone and the two
implementations do not compete for the cores. The timed call is what ``det eval --results`` and
``COCOEvaluator.evaluate()`` do: ``evaluate_coco_results`` = load the ground-truth json and
index it, loadRes, evaluate, accumulate, summarize. The results list is read before the clock
starts (the same in both). The script also checks that both give the same numbers, bit for bit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import CACHE, emit, load_line


def case_files(num_images: int) -> tuple[Path, Path]:
    folder = CACHE / f"coco_eval_case_{num_images}"
    gt_file, results_file = folder / "gt.json", folder / "results.json"
    if not (gt_file.exists() and results_file.exists()):
        from det.evaluation.synthetic import synthetic_coco_case

        t0 = time.perf_counter()
        gt, results = synthetic_coco_case(num_images, seed=0)
        folder.mkdir(parents=True, exist_ok=True)
        for path, obj in ((gt_file, gt), (results_file, results)):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(obj))
            tmp.replace(path)
        print(f"generated {num_images} images, {len(gt['annotations'])} objects, {len(results)} "
              f"results in {time.perf_counter() - t0:.0f} s -> {folder}", flush=True)
    return gt_file, results_file


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(impl: str, task: str, gt_file: str, results_file: str) -> None:
    """One evaluation in this process; prints one json line."""
    from det.evaluation.coco_evaluation import evaluate_coco_results

    with open(results_file) as f:
        results = json.load(f)
    before = rss_mb()
    t0 = time.perf_counter()
    answer = evaluate_coco_results(results, gt_file, [task], use_fast_impl=(impl == "fast"))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"impl": impl, "task": task, "seconds": seconds, "rss_before_mb": before,
                      "peak_rss_mb": peak, "results": answer[task]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--tasks", default="bbox,segm")
    ap.add_argument("--worker", nargs=4, metavar=("IMPL", "TASK", "GT", "RESULTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    from det.core.machine import machine_info
    from det.evaluation.coco_evaluation import fast_coco_eval_available

    print(machine_info().describe())
    print(load_line(), "(before)")
    if not fast_coco_eval_available():
        sys.exit("ultrafast-pycocotools is not installed: nothing fast to compare (pip install ultrafast-pycocotools)")
    gt_file, results_file = case_files(args.images)
    with open(gt_file) as f:
        gt = json.load(f)
    print(f"case: {len(gt['images'])} images, {len(gt['annotations'])} objects "
          f"({sum(a['iscrowd'] for a in gt['annotations'])} crowd), {len(gt['categories'])} categories, "
          f"results {results_file.stat().st_size / 2**20:.0f} MiB")
    del gt

    runs: dict = {}
    for task in args.tasks.split(","):
        for impl in ("fast", "pycocotools"):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", impl, task, str(gt_file), str(results_file)],
                check=True, capture_output=True, text=True,
            )
            record = json.loads(out.stdout.strip().splitlines()[-1])
            runs[impl, task] = record
            emit({"task": task, "impl": impl, "seconds": f"{record['seconds']:.1f}",
                  "peak_rss_mb": f"{record['peak_rss_mb']:.0f}",
                  "rss_before_mb": f"{record['rss_before_mb']:.0f}", "AP": f"{record['results']['AP']:.4f}"})
        fast, slow = runs["fast", task], runs["pycocotools", task]
        same = all(
            (a == b) or (math.isnan(a) and math.isnan(b))
            for a, b in zip(fast["results"].values(), slow["results"].values(), strict=True)
        ) and list(fast["results"]) == list(slow["results"])
        emit({"task": task, "time_ratio_fast_to_pycocotools": f"{fast['seconds'] / slow['seconds']:.3f}",
              "peak_rss_ratio": f"{fast['peak_rss_mb'] / slow['peak_rss_mb']:.2f}",
              "identical_numbers": same, "metrics_compared": len(fast["results"])})
    print(load_line(), "(after)")


if __name__ == "__main__":
    main()
