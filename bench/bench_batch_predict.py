"""Batch prediction (issue #25 item 4): ``det predict`` over a folder of generated images, writing a
COCO results file that ``det eval --results`` scores. Prints images/s and peak RSS, against a
plain ``DefaultPredictor`` loop (read, predict, keep the JSON entries: what ``det predict`` did
before it streamed) in the same run, and the effect of ``--batch-size``.

    .venv/bin/python bench/bench_batch_predict.py                  # 1,000 images (+ 200 per variant)
    .venv/bin/python bench/bench_batch_predict.py --images 200 --compare-images 50 --batch-sizes 1 2

The model is det's demo Mask R-CNN (ResNet-18 FPN, 64-channel heads; random weights saved once)
on the demo's 128-192 px shapes images at test size 160: small enough that reading images,
encoding masks and writing JSON weigh as much as the model, which is what a streaming pipeline
is about. Every command runs in its own process (``os.wait4`` gives its peak RSS); images/s is
the steady rate (N images minus a 20-image run of the same command, so that start-up and model
building cancel out). ``det predict`` (batch 1, no PNGs) and the peer run on --images; the other
variants (--batch-size, PNGs) on --compare-images. ``--full-size`` adds the batch-size effect on
the full-size Mask R-CNN R50-FPN (``_common``'s calibrated model, 480x640 images), in process.
Torch runs --threads threads (default 1: on a shared 2-core machine, two threads per process
slow down many times when other processes hold a core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CACHE, emit, load_line

PEER = r"""
import json, sys, time
from det.core.config import get_cfg
from det.core.predictor import DefaultPredictor
from det.data.detection_utils import read_image
from det.engine.commands.predict import instances_to_json
cfg = get_cfg(); cfg.merge_from_file(sys.argv[1]); cfg.MODEL.WEIGHTS = sys.argv[2]
predictor = DefaultPredictor(cfg)
paths = sys.argv[4:]
entries = []
for p in paths:
    instances = predictor(read_image(p, format="BGR"))["instances"].to("cpu")
    entries.append({"file_name": p, "instances": instances_to_json(instances)})
json.dump(entries, open(sys.argv[3], "w"))
"""


def prepare(num_images: int) -> dict:
    """The images (shapes val split of num_images), a config and random weights, cached."""
    import torch

    from det.core.modeling.build import build_model
    from det.data.shapes import ShapesConfig, prepare_shapes
    from det.engine.demo import get_demo_cfg

    shapes = prepare_shapes(ShapesConfig(num_train=0, num_val=num_images, seed=25, color_by_class=True),
                            root=CACHE / "shapes")
    json_file, image_root = shapes["val"]
    cfg = get_demo_cfg(CACHE / "predict-out", opts=["MODEL.DEVICE", "cpu", "INPUT.MIN_SIZE_TEST", 160,
                                                    "DATASETS.TEST", (), "DATASETS.TRAIN", ()])
    config = CACHE / "predict-demo.yaml"
    config.write_text(cfg.dump())
    weights = CACHE / "predict-demo-random.pth"
    if not weights.exists():
        torch.manual_seed(0)
        torch.save({"model": build_model(cfg).state_dict()}, weights)
    images = sorted(str(p) for p in Path(image_root).iterdir())[:num_images]
    return {"json": str(json_file), "images": images, "folder": str(image_root), "config": str(config),
            "weights": str(weights)}


def timed(cmd: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (MB) of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd[:2])} ...\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--compare-images", type=int, default=200)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full-size", action="store_true")
    args = parser.parse_args()

    from det.core.machine import machine_info

    print(f"machine: {machine_info().describe()}")
    print(load_line())
    setup = prepare(args.images)
    small = 20
    det = str(Path(sys.executable).parent / "det")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = CACHE / "predict-out"
    out.mkdir(parents=True, exist_ok=True)

    def predict(n: int, batch: int, vis: bool, tag: str) -> tuple[float, float]:
        images = setup["images"][:n]
        listing = out / f"list-{n}.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join(images) + "\n")
        cmd = [det, "predict", "--config-file", setup["config"], "--weights", setup["weights"], str(listing),
               "--output", str(out / tag), "--batch-size", str(batch), "--coco-results",
               str(out / tag / "results.json"), "--json", setup["json"]]
        if not vis:
            cmd.append("--no-visualization")
        wall, rss, _ = timed(cmd, env)
        return wall, rss

    def peer(n: int) -> tuple[float, float]:
        wall, rss, _ = timed([sys.executable, "-c", PEER, setup["config"], setup["weights"],
                              str(out / f"peer-{n}.json"), *setup["images"][:n]], env)
        return wall, rss

    rows = []
    variants = [("peer", None, None, args.images),
                ("det predict --batch-size 1 --no-visualization", 1, False, args.images)]
    variants += [(f"det predict --batch-size {b} --no-visualization", b, False, args.compare_images)
                 for b in args.batch_sizes if b != 1]
    variants += [("det predict --batch-size 1 (PNGs)", 1, True, args.compare_images)]
    if args.compare_images != args.images:
        variants.insert(2, ("peer", None, None, args.compare_images))
        variants.insert(3, ("det predict --batch-size 1 --no-visualization", 1, False, args.compare_images))
    for name, batch, vis, n in variants:
        run = peer if batch is None else (lambda n, b=batch, v=vis: predict(n, b, v, f"b{b}-{int(v)}-{n}"))
        wall_small, rss_small = run(small)
        wall, rss = run(n)
        rate = (n - small) / max(wall - wall_small, 1e-9)
        rows.append((name, n, rate, rss))
        emit({"variant": name.replace(" ", "_"), "images": n, "images_per_s": f"{rate:.2f}", "wall_s": f"{wall:.1f}",
              "peak_rss_mb": f"{rss:.0f}", f"peak_rss_mb_{small}_images": f"{rss_small:.0f}"})
    for name, n, rate, rss in rows:
        peers = [r for r in rows if r[0] == "peer" and r[1] == n]
        if name != "peer" and peers:
            emit({"variant": name.replace(" ", "_"), "images": n, "speed_vs_peer": f"{rate / peers[0][2]:.2f}x",
                  "rss_vs_peer": f"{rss / peers[0][3]:.2f}x"})

    results = out / f"b1-0-{args.images}" / "results.json"
    num_results = len(json.loads(results.read_text()))
    wall, rss, done = timed([det, "eval", "--results", str(results), "--json", setup["json"]], env)
    scores = json.loads(done.stdout[done.stdout.index("{"):])
    emit({"det_eval_results_s": f"{wall:.1f}", "results": num_results, "peak_rss_mb": f"{rss:.0f}",
          "bbox_AP": f"{scores['bbox']['AP']:.2f}", "segm_AP": f"{scores['segm']['AP']:.2f}"})
    if args.full_size:
        full_size_batches(args.batch_sizes, args.threads)
    print(load_line())


def full_size_batches(batch_sizes: list[int], threads: int, num_images: int = 6) -> None:
    """Seconds per image of the full-size Mask R-CNN R50-FPN at each batch size (in process)."""
    import torch
    from _common import bgr_numpy, build_det_predictor, make_image

    torch.set_num_threads(threads)
    predictor = build_det_predictor()
    inputs = [predictor.preprocess(bgr_numpy(make_image(480, 640, seed=i))) for i in range(num_images)]
    with torch.no_grad():
        predictor.model(inputs[:1])  # warm-up
        for b in batch_sizes:
            t0 = time.perf_counter()
            for i in range(0, num_images - num_images % b, b):
                predictor.model(inputs[i:i + b])
            per_image = (time.perf_counter() - t0) / (num_images - num_images % b)
            emit({"full_size_batch": b, "s_per_image": f"{per_image:.2f}", "images": num_images - num_images % b})


if __name__ == "__main__":
    main()
