"""Does det train as detectron2 does, step after step? Run one config through both and compare.

detectron2 itself runs from its source tree (no compiled extension is needed for Mask R-CNN
training: its ROIAlign and NMS are torchvision's) with its pure-Python dependencies on
PYTHONPATH; det runs from this checkout. Each framework writes a *trace* (JSON) of what it does
from the same config, data and seed:

- ``init``: every parameter after ``seed_all_rng(SEED); build_model(cfg)`` (sum, sum of squares,
  first values) and a hash of the torch RNG state afterwards (the ROI/anchor sampling draws from it);
- ``optimizer``: lr and weight decay per parameter name, momentum, nesterov;
- ``lr``: the schedule's LR at every iteration;
- ``data``: the first batches of the train loader: file names, augmented image size, a checksum
  of the image tensor and of the boxes (resize and flip decisions);
- ``train``: ``DefaultTrainer(cfg)`` from a fresh seed for ``--iters`` iterations: every loss, the
  lr and the total loss per iteration.

    # detectron2 (from a source checkout, e.g. the `fetch`ed mirror, plus fvcore, iopath, omegaconf,
    # hydra-core, termcolor, tabulate, cloudpickle, portalocker in /tmp/d2deps):
    PYTHONPATH=/tmp/d2deps:/tmp/d2src .venv/bin/python bench/d2_parity.py trace --framework detectron2 \
        --config-file bench/recipes/detectron2_best.yaml --iters 100 --out /tmp/d2.json
    .venv/bin/python bench/d2_parity.py trace --framework det \
        --config-file bench/recipes/detectron2_best.yaml --iters 100 --out /tmp/det.json
    .venv/bin/python bench/d2_parity.py compare /tmp/d2.json /tmp/det.json

Both traces use one thread (float sums then do not depend on thread scheduling). The shapes data
are det's generator output, read by each framework's own COCO loader.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "bench" / "recipes" / "detectron2_best.yaml"


def _framework(name: str) -> dict[str, Any]:
    if name == "detectron2":
        from detectron2.config import get_cfg
        from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
        from detectron2.data.datasets import register_coco_instances
        from detectron2.engine import DefaultTrainer, HookBase
        from detectron2.modeling import build_model
        from detectron2.solver import build_lr_scheduler, build_optimizer
        from detectron2.utils.env import seed_all_rng
        from detectron2.utils.events import EventStorage
    else:
        from det.core.config import get_cfg
        from det.core.events import EventStorage
        from det.core.modeling import build_model
        from det.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
        from det.data.datasets.coco import register_coco_instances
        from det.engine.train import (
            DefaultTrainer,
            HookBase,
            build_lr_scheduler,
            build_optimizer,
            seed_all_rng,
        )
    return dict(get_cfg=get_cfg, build_model=build_model, build_optimizer=build_optimizer,
                build_lr_scheduler=build_lr_scheduler, build_detection_train_loader=build_detection_train_loader,
                register_coco_instances=register_coco_instances, DefaultTrainer=DefaultTrainer, HookBase=HookBase,
                DatasetCatalog=DatasetCatalog, MetadataCatalog=MetadataCatalog,
                seed_all_rng=seed_all_rng, EventStorage=EventStorage)


def _machine() -> str:
    # float results depend on the CPU's kernels: traces compare exactly only on the same machine class
    from det.core.machine import machine_info

    return machine_info().describe()


def _rng_hash() -> str:
    import torch

    return hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()[:16]


def _tensor_stats(t: Any) -> list[float]:
    t = t.detach().double()
    return [float(t.sum()), float((t * t).sum()), *[float(v) for v in t.flatten()[:3]]]


def make_trace(framework: str, config_file: str, datasets_json: str, iters: int, batches: int,
               opts: list[str]) -> dict[str, Any]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fw = _framework(framework)
    with open(datasets_json) as f:
        datasets = json.load(f)
    for name, entry in datasets.items():
        fw["register_coco_instances"](name, {"thing_classes": entry["metadata"]["thing_classes"]},
                                      entry["json_file"], entry["image_root"])
    try:
        return _trace(fw, framework, config_file, datasets, iters, batches, opts)
    finally:
        for name in datasets:  # a second trace in this process registers them again
            fw["DatasetCatalog"].remove(name)
            fw["MetadataCatalog"].remove(name)
        torch.set_num_threads(threads)


def _trace(fw: dict[str, Any], framework: str, config_file: str, datasets: dict[str, Any], iters: int, batches: int,
           opts: list[str]) -> dict[str, Any]:
    import torch

    cfg = fw["get_cfg"]()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    cfg.DATASETS.TRAIN = (next(iter(datasets)),)
    cfg.DATASETS.TEST = ()  # no evaluation: the trace is about training
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATALOADER.NUM_WORKERS = 0
    if framework == "det":
        # det seeds each image's augmentations by default (batches independent of NUM_WORKERS);
        # "process" draws them from the global generators as detectron2 does, draw for draw
        cfg.DATALOADER.AUGMENTATION_RNG = "process"
    cfg.OUTPUT_DIR = f"/tmp/d2-parity-{framework}"
    cfg.freeze()
    trace: dict[str, Any] = {"framework": framework, "config_file": os.path.basename(config_file), "opts": opts,
                             "seed": int(cfg.SEED), "torch": torch.__version__, "machine": _machine()}

    # init: the same seed must give the same weights and leave the RNG in the same state
    fw["seed_all_rng"](cfg.SEED)
    model = fw["build_model"](cfg)
    trace["rng_after_build"] = _rng_hash()
    trace["init"] = {n: _tensor_stats(p) for n, p in model.state_dict().items()}

    optimizer = fw["build_optimizer"](cfg, model)
    names = {id(p): n for n, p in model.named_parameters()}
    trace["optimizer"] = {"type": type(optimizer).__name__, "params": {
        names[id(p)]: {"lr": g["lr"], "weight_decay": g["weight_decay"], "momentum": g["momentum"],
                       "nesterov": g["nesterov"]} for g in optimizer.param_groups for p in g["params"]}}
    scheduler = fw["build_lr_scheduler"](cfg, optimizer)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": no training here
        for i in range(cfg.SOLVER.MAX_ITER):
            lrs.append(optimizer.param_groups[0]["lr"])
            if i + 1 < cfg.SOLVER.MAX_ITER:  # (fvcore's step schedulers fail one step past the end)
                scheduler.step()
    trace["lr"] = lrs

    # data: the batches a fresh loader yields after the same seeding
    fw["seed_all_rng"](cfg.SEED)
    loader = iter(fw["build_detection_train_loader"](cfg))
    data = []
    for _ in range(batches):
        batch = next(loader)
        data.append([{"file": os.path.basename(d["file_name"]), "size": list(d["image"].shape[1:]),
                      "image_sum": int(d["image"].long().sum()),
                      "boxes_sum": round(float(d["instances"].gt_boxes.tensor.double().sum()), 3),
                      "mask_sum": int(d["instances"].gt_masks.tensor.sum()) if d["instances"].has("gt_masks") else None}
                     for d in batch])
    trace["data"] = data

    # training: DefaultTrainer as tools/train_net.py builds it, from a fresh seed
    records: list[dict[str, float]] = []

    class Record(fw["HookBase"]):
        def after_step(self) -> None:
            storage = self.trainer.storage
            keys = [k for k in storage.histories() if "loss" in k or k == "lr"]
            records.append({k: storage.history(k).latest() for k in keys})

    class Trainer(fw["DefaultTrainer"]):
        def build_writers(self) -> list:
            return []  # detectron2's default writers want tensorboard; the trace records itself

    fw["seed_all_rng"](cfg.SEED)
    trainer = Trainer(cfg)
    trainer.register_hooks([Record()])
    trainer.resume_or_load(resume=False)
    start = time.perf_counter()
    if iters:
        trainer.max_iter = iters
        fw["DefaultTrainer"].__mro__[1].train(trainer, 0, iters)  # TrainerBase.train: no final evaluation
    trace["train"] = records
    trace["train_seconds"] = round(time.perf_counter() - start, 1)
    return trace


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Point-by-point differences of two traces (``a`` is the reference)."""
    report: dict[str, Any] = {}
    report["rng_after_build_equal"] = a["rng_after_build"] == b["rng_after_build"]
    missing = sorted(set(a["init"]) ^ set(b["init"]))
    diffs = [max(abs(x - y) / max(abs(x), 1e-6) for x, y in zip(a["init"][n], b["init"][n]))
             for n in a["init"] if n in b["init"]]
    report["init"] = {"names_only_in_one": missing, "max_relative_difference": max(diffs) if diffs else None}
    pa, pb = a["optimizer"]["params"], b["optimizer"]["params"]
    report["optimizer"] = {
        "type": (a["optimizer"]["type"], b["optimizer"]["type"]),
        "params_differing": sorted(n for n in pa if n in pb and pa[n] != pb[n]),
        "names_only_in_one": sorted(set(pa) ^ set(pb)),
    }
    lr_diff = [i for i, (x, y) in enumerate(zip(a["lr"], b["lr"])) if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15)]
    report["lr"] = {"iterations": len(a["lr"]), "first_differing_iteration": lr_diff[0] if lr_diff else None,
                    "length_equal": len(a["lr"]) == len(b["lr"])}
    data_diff = [i for i, (x, y) in enumerate(zip(a["data"], b["data"])) if x != y]
    report["data"] = {"batches": len(a["data"]), "first_differing_batch": data_diff[0] if data_diff else None}
    train = []
    for i, (x, y) in enumerate(zip(a["train"], b["train"])):
        row = {"iteration": i}
        for k in sorted(set(x) & set(y)):
            row[k] = (x[k], y[k])
        train.append(row)
    first = None
    for row in train:
        total = row.get("total_loss")
        if total and not math.isclose(total[0], total[1], rel_tol=1e-6):
            first = row["iteration"]
            break
    rel = [abs(r["total_loss"][0] - r["total_loss"][1]) / abs(r["total_loss"][0]) for r in train if "total_loss" in r]
    report["train"] = {"iterations": len(train), "first_iteration_total_loss_differs_by_1e-6": first,
                       "max_relative_total_loss_difference": max(rel) if rel else None,
                       "relative_difference_by_iteration": [round(v, 8) for v in rel]}
    return report


def datasets_file(shapes: dict[str, Any], root: str | os.PathLike | None = None) -> str:
    """A datasets.json naming det's shapes train split for ``ShapesConfig(**shapes)``, generated
    under ``root`` (default: the system temp folder) if needed, with det's generator: the data are
    not what is compared."""
    from det.data.shapes import ShapesConfig, prepare_shapes

    config = ShapesConfig(**shapes)
    root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "d2-parity"
    path = root / f"d2-parity-{config.fingerprint()}.json"
    if not path.exists():
        train_json, train_root = prepare_shapes(config, root)["train"]
        path.write_text(json.dumps({"parity_shapes_train": {
            "json_file": str(train_json), "image_root": str(train_root),
            "metadata": {"thing_classes": ["circle", "square", "triangle"]}}}))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("trace")
    t.add_argument("--framework", choices=("det", "detectron2"), required=True)
    t.add_argument("--config-file", default=str(RECIPE))
    t.add_argument("--shapes", nargs="*", default=[], metavar="KEY=VALUE", help="ShapesConfig fields of the data")
    t.add_argument("--iters", type=int, default=50)
    t.add_argument("--batches", type=int, default=30)
    t.add_argument("--out", required=True)
    t.add_argument("opts", nargs="*", default=[])
    c = sub.add_parser("compare")
    c.add_argument("reference")
    c.add_argument("other")
    args = parser.parse_args(argv)
    if args.command == "compare":
        with open(args.reference) as f:
            a = json.load(f)
        with open(args.other) as f:
            b = json.load(f)
        report = compare(a, b)
        print(json.dumps({k: v for k, v in report.items() if k != "train"}, indent=1))
        train = dict(report["train"])
        by_iter = train.pop("relative_difference_by_iteration")
        print(json.dumps(train, indent=1))
        print("relative total-loss difference by iteration:", by_iter)
        return 0
    from _common import parse_scalar

    shapes = {k: parse_scalar(v) for k, _, v in (item.partition("=") for item in args.shapes)}
    trace = make_trace(args.framework, args.config_file, datasets_file(shapes), args.iters, args.batches,
                       list(args.opts))
    trace["shapes"] = shapes
    with open(args.out, "w") as f:
        json.dump(trace, f)
    print(f"{args.framework}: trace of {len(trace['train'])} iterations in {trace['train_seconds']}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
