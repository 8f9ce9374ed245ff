"""Box and mask AP of a trained demo model on shapes drawn differently from its training data.

Evaluates a ``det demo`` run folder (its ``config.yaml`` and ``model_final.pth``) on the demo's own
held-out split and on each preset of :mod:`det.data.shapes_unseen` (another renderer,
other sizes, colours and textures, noise and JPEG, all of them at once), with det's
COCOEvaluator, and prints one line per dataset plus the machine::

    .venv/bin/python bench/demo_generalization.py --demo-dir det-demo-output --images 100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def evaluate(demo_dir: Path, num_images: int, presets: list[str], opts: list[str]) -> dict[str, dict]:
    import torch

    from det.checkpoint import DetectionCheckpointer
    from det.data.shapes_unseen import UNSEEN_PRESETS, register_unseen_shapes
    from det.engine.commands._common import setup_cfg
    from det.engine.train.defaults import DefaultTrainer

    cfg = setup_cfg(str(demo_dir / "config.yaml"), opts, weights=str(demo_dir / "model_final.pth"))
    model = DefaultTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    model.eval()
    datasets = {"demo held-out": cfg.DATASETS.TEST[0]}
    for name in presets:
        dataset = f"unseen_{name}"
        register_unseen_shapes(dataclasses.replace(UNSEEN_PRESETS[name], num_images=num_images), dataset)
        datasets[f"unseen: {name}"] = dataset
    results = {}
    for label, dataset in datasets.items():
        test_cfg = cfg.clone()
        test_cfg.defrost()
        test_cfg.DATASETS.TEST = (dataset,)
        test_cfg.OUTPUT_DIR = str(demo_dir / "generalization" / dataset)
        t0 = time.perf_counter()
        with torch.no_grad():
            r = DefaultTrainer.test(test_cfg, model)
        results[label] = {"bbox_AP": round(r["bbox"]["AP"], 1), "segm_AP": round(r["segm"]["AP"], 1),
                          "bbox_AP50": round(r["bbox"]["AP50"], 1), "seconds": round(time.perf_counter() - t0, 1)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", default="det-demo-output")
    parser.add_argument("--images", type=int, default=100, help="images per unseen preset")
    parser.add_argument("--presets", nargs="*", default=["renderer", "sizes", "colors", "noise", "all"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("opts", nargs="*", default=[], help="config overrides, e.g. INPUT.MIN_SIZE_TEST 0")
    args = parser.parse_args(argv)

    import logging

    import torch
    from _common import load_line

    from det.core.machine import machine_info

    logging.getLogger("det").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    print("machine:", machine_info().describe(), f"threads {args.threads}")
    print("before:", load_line())
    results = evaluate(Path(args.demo_dir), args.images, args.presets, args.opts)
    print("after:", load_line())
    for label, r in results.items():
        print(f"{label:>20}: box AP {r['bbox_AP']:5.1f}  mask AP {r['segm_AP']:5.1f}  box AP50 {r['bbox_AP50']:5.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DET_CACHE", "/tmp/demo_cache")
    sys.exit(main())
