"""One training step of Mask R-CNN R50-FPN on the CPU: det against torchvision.

    .venv/bin/python bench/bench_train.py [--runs 5] [--batch 2] [--height 512 --width 683]

A step is forward (losses) + backward + SGD update, batch 2 of 512x683 images with 6 instances
each (boxes, classes, polygon masks for det / bitmasks for torchvision, the same shapes). det uses
detectron2's training set-up from the model-zoo YAML (FrozenBN, stem + res2 frozen); torchvision's
``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` builds with trainable BatchNorm
(torchvision freezes nothing when it has no pretrained weights), and gets ``min_size/max_size`` set
to the image so that it trains at the same resolution instead of resizing to 800. Median of
``--runs`` steps after one warm-up step, runs interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import build_det_model, emit, load_line, machine_line, make_image, set_threads


def make_targets(n_images: int, height: int, width: int, n_inst: int = 6):
    import torch

    g = torch.Generator().manual_seed(7)
    items = []
    for i in range(n_images):
        xy = torch.rand(n_inst, 2, generator=g) * torch.tensor([width * 0.7, height * 0.7])
        wh = (torch.rand(n_inst, 2, generator=g) * 0.25 + 0.05) * torch.tensor([width, height])
        boxes = torch.cat([xy, xy + wh], dim=1)
        classes = torch.randint(0, 80, (n_inst,), generator=g)
        items.append((make_image(height, width, seed=i), boxes, classes))
    return items


def det_batch(items):
    from det.structures import Boxes, Instances, PolygonMasks

    batch = []
    for image, boxes, classes in items:
        inst = Instances(tuple(image.shape[1:]))
        inst.gt_boxes = Boxes(boxes.clone())
        inst.gt_classes = classes.clone()
        # a diamond inside each box: a real polygon, not the box itself
        polys = []
        for x0, y0, x1, y1 in boxes.tolist():
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            polys.append([[cx, y0, x1, cy, cx, y1, x0, cy]])
        inst.gt_masks = PolygonMasks(polys)
        batch.append({"image": image, "instances": inst})
    return batch


def tv_batch(items):
    import numpy as np
    import torch

    from det.structures import polygons_to_bitmask

    images, targets = [], []
    for image, boxes, classes in items:
        h, w = image.shape[1:]
        bits = []
        for x0, y0, x1, y1 in boxes.tolist():
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            poly = np.asarray([cx, y0, x1, cy, cx, y1, x0, cy])
            bits.append(torch.from_numpy(polygons_to_bitmask([poly], h, w)))
        images.append(image.flip(0).float() / 255.0)
        # torchvision's labels count background as 0
        targets.append(
            {"boxes": boxes.clone(), "labels": classes + 1, "masks": torch.stack(bits).to(torch.uint8)}
        )
    return images, targets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=683)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="tv,det")
    args = ap.parse_args()

    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from det.core import EventStorage

    set_threads(args.threads)
    print(machine_line())
    items = make_targets(args.batch, args.height, args.width)
    steps = {}
    if "det" in args.variants:
        det = build_det_model(train=True)
        det_opt = torch.optim.SGD([p for p in det.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        det_in = det_batch(items)
        storage = EventStorage(0).__enter__()

        def det_step():
            losses = det(det_in)
            loss = sum(losses.values())
            det_opt.zero_grad()
            loss.backward()
            det_opt.step()
            storage.iter += 1

        steps["det"] = det_step
    if "tv" in args.variants:
        torch.manual_seed(0)
        side = min(args.height, args.width)
        tv = maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, min_size=side, max_size=max(args.height, args.width)
        ).train()
        tv_opt = torch.optim.SGD([p for p in tv.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        tv_images, tv_targets = tv_batch(items)

        def tv_step():
            losses = tv(tv_images, tv_targets)
            loss = sum(losses.values())
            tv_opt.zero_grad()
            loss.backward()
            tv_opt.step()

        steps["tv"] = tv_step

    for fn in steps.values():  # warm-up
        fn()
    times = {k: [] for k in steps}
    for _ in range(args.runs):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    tv_med = statistics.median(times["tv"]) if "tv" in times else None
    for name, ts in times.items():
        med = statistics.median(ts)
        emit(
            {
                "variant": name,
                "step": f"batch{args.batch}_{args.height}x{args.width}",
                "median_s": f"{med:.3f}",
                "min_s": f"{min(ts):.3f}",
                "runs": len(ts),
                "ratio_to_tv": f"{med / tv_med:.3f}" if tv_med else "n/a",
            }
        )
    print(load_line())


if __name__ == "__main__":
    main()
