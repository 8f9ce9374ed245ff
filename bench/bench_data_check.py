"""``det data check`` on a large generated COCO dataset (issue #19: "cheap enough for 100k images").

    .venv/bin/python bench/bench_data_check.py                 # 100,000 images (generated once, ~0.3 GB)
    .venv/bin/python bench/bench_data_check.py --images 20000

Prints the time of the default check (json + every image's header and end marker, a thread pool)
against peers in the same run: pycocotools' ``COCO(json)`` (what loading the dataset for training
costs anyway) and decoding every image with PIL (what the check avoids; measured on a subset and
scaled); and ``--full`` (decode everything) on the same subset. The images are small PNGs and
JPEGs (64x48, half each): the check's cost is per file (open, header, end marker), not per pixel.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CACHE, emit, load_line


def generate(root: Path, num_images: int) -> Path:
    """``root/annotations.json`` and ``root/images/``: num_images images, two boxes each (cached)."""
    from PIL import Image, ImageDraw

    json_file = root / "annotations.json"
    if json_file.is_file():
        return json_file
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        image = Image.new("RGB", (64, 48), (i % 200, 90, 120))
        ImageDraw.Draw(image).rectangle([8, 8, 30, 30], fill=(220, 40, 30))
        name = f"{i:06d}.png" if i % 2 else f"{i:06d}.jpg"
        if i % 2:
            image.save(images_dir / name, compress_level=1)
        else:
            image.save(images_dir / name, quality=90)
        images.append({"id": i + 1, "file_name": name, "width": 64, "height": 48})
        for k, box in enumerate(([8, 8, 23, 23], [34, 10, 20, 30])):
            annotations.append({"id": 2 * i + k + 1, "image_id": i + 1, "category_id": 1 + k, "bbox": box,
                                "area": box[2] * box[3], "iscrowd": 0,
                                "segmentation": [[box[0], box[1], box[0] + box[2], box[1], box[0] + box[2],
                                                  box[1] + box[3], box[0], box[1] + box[3]]]})
    tmp = json_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    os.replace(tmp, json_file)
    return json_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=5_000, help="images decoded by the --full and PIL peers")
    parser.add_argument("--large", type=int, default=300, help="640x480 JPEGs for the per-image cost at a real size")
    args = parser.parse_args()

    from PIL import Image
    from pycocotools.coco import COCO

    from det.core.machine import machine_info
    from det.data.check import check_coco_json

    print(f"machine: {machine_info().describe()}")
    print(load_line())
    root = CACHE / f"datacheck-{args.images}"
    t0 = time.perf_counter()
    json_file = generate(root, args.images)
    print(f"dataset: {json_file} ({time.perf_counter() - t0:.0f}s to generate or find)")
    images_dir = root / "images"

    t0 = time.perf_counter()
    report = check_coco_json(json_file, images_dir)
    check_s = time.perf_counter() - t0
    assert report.ok and not report.faults, report.format()

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        COCO(str(json_file))
    coco_s = time.perf_counter() - t0

    subset = sorted(images_dir.iterdir())[: args.subset]
    t0 = time.perf_counter()
    for path in subset:
        with Image.open(path) as image:
            image.load()
    decode_s = (time.perf_counter() - t0) * args.images / len(subset)

    sub_root = CACHE / f"datacheck-{args.images}-subset{len(subset)}"
    sub_json = sub_root / "annotations.json"
    if not sub_json.is_file():
        data = json.loads(json_file.read_text())
        keep = {p.name for p in subset}
        data["images"] = [img for img in data["images"] if img["file_name"] in keep]
        ids = {img["id"] for img in data["images"]}
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
        sub_root.mkdir(parents=True, exist_ok=True)
        sub_json.write_text(json.dumps(data))
    t0 = time.perf_counter()
    check_coco_json(sub_json, images_dir, full=True)
    full_s = (time.perf_counter() - t0) * args.images / len(subset)

    emit({"images": args.images, "det_data_check_s": f"{check_s:.1f}",
          "images_per_s": f"{args.images / check_s:.0f}", "pycocotools_COCO_load_s": f"{coco_s:.1f}",
          "ratio_to_COCO_load": f"{check_s / coco_s:.2f}x"})
    emit({"images": args.images, "full_decode_check_s_scaled": f"{full_s:.1f}",
          "PIL_decode_all_s_scaled": f"{decode_s:.1f}", "default_vs_full": f"{check_s / full_s:.2f}x",
          "subset": len(subset)})
    if args.large:
        large_images(args.large)
    print(load_line())


def large_images(count: int) -> None:
    """Per-image cost of the default check and of --full on 640x480 JPEGs (a camera-size image:
    decoding is what the default check avoids)."""
    import numpy as np
    from PIL import Image

    from det.data.check import check_coco_json

    root = CACHE / f"datacheck-large-{count}"
    json_file = root / "annotations.json"
    if not json_file.is_file():
        (root / "images").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        images = []
        for i in range(count):
            low = rng.integers(0, 255, size=(15, 20, 3), dtype=np.uint8)
            Image.fromarray(low).resize((640, 480), Image.BILINEAR).save(root / "images" / f"{i}.jpg", quality=90)
            images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 640, "height": 480})
        json_file.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
    times = {}
    for full in (False, True):
        t0 = time.perf_counter()
        check_coco_json(json_file, root / "images", full=full)
        times[full] = (time.perf_counter() - t0) / count
    emit({"large_images": count, "size": "640x480 jpeg", "default_ms_per_image": f"{times[False] * 1e3:.2f}",
          "full_ms_per_image": f"{times[True] * 1e3:.2f}", "default_vs_full": f"{times[False] / times[True]:.2f}x",
          "default_100k_images_s": f"{times[False] * 1e5:.0f}", "full_100k_images_s": f"{times[True] * 1e5:.0f}"})


if __name__ == "__main__":
    main()
