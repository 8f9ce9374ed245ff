"""Training data loading at scale: images/s of the default DatasetMapper pipeline and the memory
of the main process and of every DataLoader worker over 2,000 iterations, with the dataset dicts
serialized into one buffer (det's default, as detectron2) and, as the peer in the same run, kept
as a Python list (``DatasetFromList(serialize=False)``).

    .venv/bin/python bench/bench_dataloader.py                       # 20,000 images, 2 workers
    .venv/bin/python bench/bench_dataloader.py --iterations 300      # a quick look

The dataset: 20,000 dataset dicts with COCO-val-like annotations (``det.evaluation.synthetic``:
7.3 objects per image, polygon masks, 1 % crowd, 80 categories) whose images are COCO-sized JPEGs
(640x480, 480x640, 500x375, ...); 8 distinct files of each size are written to /tmp/det-bench
and shared by the dicts, because 20,000 distinct files would only fill the disk (decoding costs
the same). The loader is ``build_detection_train_loader`` with ``DatasetMapper(cfg, True)`` of
the Mask R-CNN config (ResizeShortestEdge 640-800 / 1333, horizontal flip, polygon masks),
2 images per batch, aspect-ratio grouping, ``seed=0``.

Memory is read from /proc/<pid>/smaps_rollup: RSS, PSS and USS (private pages). RSS counts the
pages a forked worker shares with the main process, so it hides copy-on-write; USS is what a
worker costs on its own and is where a Python-list dataset shows its growth. Figures are taken
after a warm-up of 100 iterations and then every 200; growth is (last - warm-up) / warm-up.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import CACHE, emit, load_line


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of a process in MiB (smaps_rollup, kB)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1]) / 1024
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields.get("Rss", 0.0), "pss": fields.get("Pss", 0.0), "uss": uss}


def children(pid: int) -> list[int]:
    pids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return sorted(pids)


def image_pool(sizes: list[tuple[int, int]], per_size: int = 8) -> dict[tuple[int, int], list[str]]:
    """``per_size`` smooth-noise JPEGs of each (height, width), written once."""
    import numpy as np
    from PIL import Image

    folder = CACHE / "dataloader_images"
    folder.mkdir(parents=True, exist_ok=True)
    pool: dict[tuple[int, int], list[str]] = {}
    rng = np.random.RandomState(0)
    for h, w in sizes:
        files = []
        for k in range(per_size):
            path = folder / f"{h}x{w}_{k}.jpg"
            if not path.exists():
                low = rng.randint(0, 255, (h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
                img = Image.fromarray(low).resize((w, h), Image.BILINEAR)
                img.save(path, quality=90)
            files.append(str(path))
        pool[h, w] = files
    return pool


def dataset_dicts(num_images: int) -> list[dict]:
    from det.evaluation.synthetic import synthetic_coco_case
    from det.structures import BoxMode

    gt, _ = synthetic_coco_case(num_images, dets_per_image=0, masks=False, seed=0)
    contiguous = {c["id"]: i for i, c in enumerate(gt["categories"])}
    pool = image_pool(sorted({(img["height"], img["width"]) for img in gt["images"]}))
    by_image: dict[int, list[dict]] = {img["id"]: [] for img in gt["images"]}
    for ann in gt["annotations"]:
        by_image[ann["image_id"]].append({
            "bbox": ann["bbox"], "bbox_mode": BoxMode.XYWH_ABS, "category_id": contiguous[ann["category_id"]],
            "iscrowd": ann["iscrowd"], "segmentation": ann["segmentation"], "area": ann["area"],
        })
    dicts = []
    for i, img in enumerate(gt["images"]):
        files = pool[img["height"], img["width"]]
        dicts.append({"file_name": files[i % len(files)], "image_id": img["id"], "height": img["height"],
                      "width": img["width"], "annotations": by_image[img["id"]]})
    # as get_detection_dataset_dicts(filter_empty=True) does
    return [d for d in dicts if any(not a["iscrowd"] for a in d["annotations"])]


def run(label: str, serialize: bool, args: argparse.Namespace) -> None:
    import torch

    from det.core.config import get_cfg
    from det.data import DatasetFromList, DatasetMapper, build_detection_train_loader

    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True  # polygon masks through the pipeline, as Mask R-CNN trains
    t0 = time.perf_counter()
    dicts = dataset_dicts(args.images)
    dataset = DatasetFromList(dicts, copy=False, serialize=serialize)
    del dicts  # the loader keeps only `dataset`, as build_detection_train_loader(cfg) does
    gc.collect()
    loader = build_detection_train_loader(
        dataset, mapper=DatasetMapper(cfg, True), total_batch_size=args.batch, aspect_ratio_grouping=True,
        num_workers=args.workers, seed=0,
    )
    print(f"[{label}] {len(dataset)} dataset dicts ready in {time.perf_counter() - t0:.0f} s; "
          f"main process {memory(os.getpid())['uss']:.0f} MiB USS before the workers start", flush=True)

    samples: list[tuple[int, dict]] = []
    warmup = min(100, args.iterations // 4)
    it = iter(loader)
    images = 0
    t_start = time.perf_counter()
    for i, batch in enumerate(itertools.islice(it, args.iterations), start=1):
        assert len(batch) == args.batch and batch[0]["image"].dtype == torch.uint8
        if i == warmup:
            images, t_start = 0, time.perf_counter()
        images += len(batch)
        if i == warmup or (i > warmup and (i - warmup) % args.every == 0) or i == args.iterations:
            pids = [os.getpid(), *children(os.getpid())]
            samples.append((i, {pid: memory(pid) for pid in pids}))
    seconds = time.perf_counter() - t_start
    emit({"loader": label, "workers": args.workers, "iterations": args.iterations,
          "images_per_s": f"{images / seconds:.1f}", "timed_iterations": args.iterations - warmup})

    first_iter, first = samples[0]
    last_iter, last = samples[-1]
    for n, pid in enumerate(sorted(first)):
        role = "main" if pid == os.getpid() else f"worker{n - 1}"
        if pid not in last:
            continue
        series = " ".join(f"{s[pid]['uss']:.0f}" for _, s in samples if pid in s)
        record = {"loader": label, "process": role}
        for key in ("rss", "pss", "uss"):
            a, b = first[pid][key], last[pid][key]
            record[f"{key}_mb"] = f"{a:.0f}->{b:.0f}"
            record[f"{key}_growth"] = f"{(b - a) / a * 100:+.1f}%"
        emit(record)
        print(f"    {role} USS (MiB) at iterations {first_iter}..{last_iter} every {args.every}: {series}")
    totals = [sum(m["pss"] for m in s.values()) for _, s in samples]
    emit({"loader": label, "all_processes_pss_mb": f"{totals[0]:.0f}->{totals[-1]:.0f}",
          "growth": f"{(totals[-1] - totals[0]) / totals[0] * 100:+.1f}%"})
    del it, loader, dataset
    gc.collect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--only", choices=["serialized", "list"], default=None)
    args = ap.parse_args()

    import torch

    from det.core.machine import machine_info

    torch.set_num_threads(1)  # the workers are the parallelism
    print(machine_info().describe())
    print(load_line(), "(before)")
    for label, serialize in (("serialized", True), ("list", False)):
        if args.only in (None, label):
            run(label, serialize, args)
            print(load_line(), f"(after {label})", flush=True)


if __name__ == "__main__":
    main()
