"""AP change of fast mode on the synthetic shapes validation split, with a ``det demo`` checkpoint.

    det demo --output-dir det-demo-output            # trains the demo model (det-engine)
    .venv/bin/python bench/bench_fast_ap.py --demo-dir det-demo-output [--limit 0]

Evaluates the demo's ``model_final.pth`` three times on the held-out shapes split with pycocotools
(COCOEvaluator): default float32, ``fast_mode(bf16=False)`` and ``fast_mode()`` (bf16 where the
CPU has it), and prints box/mask AP and the difference to the default. A quick demo
(``det demo --quick``) trains for 12 iterations and has AP ~0, which says nothing about accuracy:
the script warns about it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit, load_line, machine_line, set_threads


def evaluate(cfg, weights: str, variant: str, limit: int) -> tuple[dict, float]:
    import torch

    from det.checkpoint import DetectionCheckpointer
    from det.core import build_model
    from det.engine import COCOEvaluator, DatasetCatalog, DatasetMapper, build_detection_test_loader
    from det.evaluation.evaluator import inference_on_dataset

    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(weights)
    if variant != "default":
        from det.core.fast import fast_mode

        fast_mode(model, bf16=False if variant == "fast32" else None)
    name = cfg.DATASETS.TEST[0]
    dataset = DatasetCatalog.get(name)
    if limit:
        dataset = dataset[:limit]
    loader = build_detection_test_loader(dataset, mapper=DatasetMapper(cfg, is_train=False))
    with tempfile.TemporaryDirectory() as tmp:
        evaluator = COCOEvaluator(name, output_dir=tmp, distributed=False)
        t0 = time.perf_counter()
        with torch.no_grad():
            results = inference_on_dataset(model, loader, evaluator)
    return results, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo-dir", default="det-demo-output")
    ap.add_argument("--limit", type=int, default=0, help="evaluate on the first N images only (0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from det.core import get_cfg
    from det.engine.commands._common import register_datasets_file

    demo = Path(args.demo_dir)
    weights, config = demo / "model_final.pth", demo / "config.yaml"
    if not weights.exists() or not config.exists():
        raise SystemExit(
            f"no demo checkpoint in {demo} (need model_final.pth and config.yaml): run `det demo` first"
        )
    summary = json.loads((demo / "summary.json").read_text()) if (demo / "summary.json").exists() else {}
    if summary.get("quick"):
        print("WARNING: this is a --quick demo (a few iterations, AP ~0): the AP change means nothing")
    register_datasets_file(demo / "datasets.json")  # the demo names its own data (demo_shapes_*)
    set_threads(args.threads)
    print(machine_line())
    print(load_line())
    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    cfg.MODEL.DEVICE = "cpu"
    base = None
    for variant in ("default", "fast32", "fast"):
        results, seconds = evaluate(cfg, str(weights), variant, args.limit)
        box, segm = (
            results.get("bbox", {}).get("AP", float("nan")),
            results.get("segm", {}).get("AP", float("nan")),
        )
        if base is None:
            base = (box, segm)
        emit(
            {
                "variant": variant,
                "bbox_AP": f"{box:.2f}",
                "segm_AP": f"{segm:.2f}",
                "d_bbox_AP": f"{box - base[0]:+.2f}",
                "d_segm_AP": f"{segm - base[1]:+.2f}",
                "eval_s": f"{seconds:.1f}",
            }
        )
    print(load_line())


if __name__ == "__main__":
    main()
