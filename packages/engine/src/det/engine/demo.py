"""The main job, ``det demo``: the whole toolkit on synthetic data, on the CPU, in a time budget.

1. writes the built-in shapes dataset (COCO format; circles, squares, triangles in random colours,
   with masks of their visible parts),
2. trains the small Mask R-CNN of ``demo.yaml`` (ResNet-18 FPN with GroupNorm, from scratch) with a
   progress bar, for as many iterations as fit in the budget (10 minutes for the whole job by
   default): the thread count and the iteration count are measured in the first iterations and the
   LR schedule is fitted to them (:class:`~det.engine.train.budget.TrainingBudget`),
3. evaluates COCO box and mask AP with pycocotools on the held-out split,
4. saves the checkpoint (``model_final.pth``) and the merged config (``config.yaml``),
5. runs ``DefaultPredictor`` on held-out images and draws its predictions, the training data and
   the training curves (matplotlib), and writes ``summary.md``/``summary.json``.

    from det.engine.demo import run_demo
    summary = run_demo("det-demo-output", minutes=10)     # or quick=True: a one-minute smoke run
    summary["bbox_AP"], summary["segm_AP"], summary["iterations"]

Every step is a documented command too: ``det train --config-file det-demo-output/config.yaml``,
``det eval ... --weights det-demo-output/model_final.pth``, ``det predict ...``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MINUTES",
    "DEMO_CONFIG",
    "fit_schedule",
    "get_demo_cfg",
    "plot_training_curves",
    "process_age",
    "run_demo",
]

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
"""The embedded config of the demo model (a YAML file shipped inside det-engine)."""

DEFAULT_MINUTES = 10.0
"""The whole job's default time budget: data, training, evaluation and pictures."""

logger = logging.getLogger("det.engine.demo")

DEMO_DATASETS = ("demo_shapes_train", "demo_shapes_val")
"""Names the demo registers its dataset under."""

# The standard shapes: random colours, so the class must be read from the outline.
# ``color_by_class=True`` (``det demo --shapes color_by_class=true``) is the easy variant.
_DEMO_SHAPES: dict[str, Any] = {}

# The quick smoke run: a handful of small images and iterations, same model.
_QUICK_SHAPES = {"num_train": 16, "num_val": 6, "min_image_size": 96, "max_image_size": 128,
                 "max_shape_size": 60}
_QUICK_ITERATIONS = 12
_QUICK_OPTS = ["SOLVER.IMS_PER_BATCH", 2]

# The predictions picture draws scores >= 0.5, or >= 0.2 when nothing reaches 0.5.
_PICTURE_SCORE = 0.5
_PICTURE_SCORE_FALLBACK = 0.2

# Seconds kept back after the budget's end for the interpreter to exit (torch's teardown), and the
# share of the budget kept as a safety margin against a machine that slows down at the end.
_EXIT_SECONDS = 2.0
_SAFETY_SHARE = 0.02


def get_demo_cfg(output_dir: str | os.PathLike = "./det-demo-output", *, max_iter: int | None = None,
                 quick: bool = False, opts: Sequence[Any] = (), config_file: str | os.PathLike | None = None) -> Any:
    """The demo's config: ``demo.yaml`` (or ``config_file``) + quick settings + ``opts``, with the
    schedule fitted to ``max_iter`` (:func:`fit_schedule`) and ``OUTPUT_DIR`` set."""
    from det.core.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(config_file or DEMO_CONFIG))
    if quick:
        cfg.merge_from_list(list(_QUICK_OPTS))
        max_iter = _QUICK_ITERATIONS if max_iter is None else max_iter
    cfg.merge_from_list(list(opts))
    if max_iter is not None:
        fit_schedule(cfg, int(max_iter))
    cfg.OUTPUT_DIR = os.fspath(output_dir)
    return cfg


def fit_schedule(cfg: Any, max_iter: int) -> Any:
    """:func:`det.engine.train.budget.fit_schedule`: ``SOLVER.MAX_ITER = max_iter``, steps kept at
    their fractions of the run."""
    from det.engine.train.budget import fit_schedule as _fit

    return _fit(cfg, max_iter)


# -- pictures ----------------------------------------------------------------------------------


def _read_metrics(metrics_json: str | os.PathLike) -> list[dict[str, Any]]:
    records = []
    with open(metrics_json) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def plot_training_curves(metrics_json: str | os.PathLike, out_png: str | os.PathLike,
                         title: str | None = None) -> Path:
    """Draw the losses, the learning rate and the seconds per iteration recorded in
    ``metrics.json`` (a JSONWriter file) into ``out_png`` with matplotlib: three panels over the
    iteration. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    records = [r for r in _read_metrics(metrics_json) if r.get("iteration") is not None]
    losses: dict[str, list[tuple[float, float]]] = {}
    series: dict[str, list[tuple[float, float]]] = {"lr": [], "time": []}
    for r in records:
        it = r["iteration"]
        for k, v in r.items():
            if "loss" in k and isinstance(v, int | float) and math.isfinite(v):
                losses.setdefault(k, []).append((it, v))
        for k in series:
            if isinstance(r.get(k), int | float):
                series[k].append((it, r[k]))
    # total first, then the parts
    ordered = sorted(losses.items(), key=lambda kv: (kv[0] != "total_loss", kv[0]))

    figure = Figure(figsize=(9, 7.2), dpi=100, layout="constrained")
    loss_ax, lr_ax, time_ax = figure.subplots(3, 1, sharex=True, height_ratios=[3, 1.2, 1.2])
    for name, points in ordered:
        xs, ys = zip(*sorted(points))
        loss_ax.plot(xs, ys, label=name, linewidth=2.2 if name == "total_loss" else 1.2)
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss (median of the last iterations)")
    loss_ax.grid(True, which="both", alpha=0.3)
    if ordered:
        loss_ax.legend(loc="upper right", fontsize=8, ncol=2)
    for ax, key, label in ((lr_ax, "lr", "learning rate"), (time_ax, "time", "seconds / iteration")):
        if series[key]:
            xs, ys = zip(*sorted(series[key]))
            ax.plot(xs, ys, color="tab:gray" if key == "time" else "tab:purple")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    time_ax.set_xlabel("iteration")
    if title:
        figure.suptitle(title)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png)
    return out_png


def _grid(tiles: list[Any], cols: int, path: Path) -> None:
    import numpy as np
    from PIL import Image

    if not tiles:
        return
    tile_h = max(t.shape[0] for t in tiles)
    tile_w = max(t.shape[1] for t in tiles)
    rows = math.ceil(len(tiles) / cols)
    grid = np.full((rows * (tile_h + 8) + 8, cols * (tile_w + 8) + 8, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = 8 + r * (tile_h + 8), 8 + c * (tile_w + 8)
        grid[y:y + t.shape[0], x:x + t.shape[1]] = t
    Image.fromarray(grid).save(path)


def _ground_truth_view(d: dict[str, Any], metadata: Any, size: int = 256) -> Any:
    """The image of dataset dict ``d`` with its boxes, classes and masks drawn (RGB array)."""
    from det.data.detection_utils import read_image
    from det.engine.visualizer import Visualizer

    image = read_image(d["file_name"], format="RGB")
    # boxes, classes and masks only: the dataset's keypoints would clutter the picture
    plain = {**d, "annotations": [{k: v for k, v in a.items() if k != "keypoints"} for a in d.get("annotations", [])]}
    return Visualizer(image, metadata, scale=size / max(image.shape[:2])).draw_dataset_dict(plain).get_image()


def _data_figure(dataset_name: str, path: Path, num_images: int = 6) -> str | None:
    """The first training images as they are (left) and with their annotations (right): what the
    model learns from."""
    import numpy as np
    from PIL import Image

    from det.data.catalog import DatasetCatalog, MetadataCatalog

    dicts = DatasetCatalog.get(dataset_name)[:num_images]
    metadata = MetadataCatalog.get(dataset_name)
    tiles = []
    for d in dicts:
        annotated = _ground_truth_view(d, metadata, 192)
        raw = np.asarray(Image.open(d["file_name"]).convert("RGB").resize((annotated.shape[1], annotated.shape[0])))
        tiles.append(np.concatenate([raw, np.full((raw.shape[0], 4, 3), 255, np.uint8), annotated], axis=1))
    _grid(tiles, 3, path)
    return str(path) if dicts else None


def _prediction_figures(cfg: Any, dataset_name: str, out_dir: Path, num_images: int) -> dict[str, Any]:
    """DefaultPredictor on the first ``num_images`` of ``dataset_name``: per-image PNGs
    (ground truth | prediction), a grid ``predictions.png`` and ``predictions.json``."""
    import numpy as np
    from PIL import Image

    from det.core.predictor import DefaultPredictor
    from det.data.catalog import DatasetCatalog, MetadataCatalog
    from det.engine.commands.predict import predict_images

    metadata = MetadataCatalog.get(dataset_name)
    dicts = DatasetCatalog.get(dataset_name)[:num_images]
    pred_dir = out_dir / "predictions"
    grid_path = out_dir / "predictions.png"
    if not dicts:
        return {"grid": None, "folder": str(pred_dir), "score_threshold": _PICTURE_SCORE, "num_predictions": 0,
                "num_images": 0}
    predictor = DefaultPredictor(cfg)
    images = [d["file_name"] for d in dicts]
    threshold = _PICTURE_SCORE
    entries = predict_images(predictor, images, pred_dir, metadata, threshold)
    if not any(e["instances"] for e in entries):
        # a barely trained model (a short budget, a busy machine) scores below 0.5 everywhere: an empty
        # picture says nothing, so draw its best guesses and say so
        threshold = _PICTURE_SCORE_FALLBACK
        entries = predict_images(predictor, images, pred_dir, metadata, threshold)
    tiles = []
    for d, entry in zip(dicts, entries):
        gt = _ground_truth_view(d, metadata)
        pred = np.asarray(Image.open(pred_dir / entry["visualization"]).convert("RGB").resize(
            (gt.shape[1], gt.shape[0])))
        pair = np.concatenate([gt, np.full((gt.shape[0], 6, 3), 255, np.uint8), pred], axis=1)
        Image.fromarray(pair).save(pred_dir / f"gt_vs_pred_{Path(d['file_name']).stem}.png")
        tiles.append(pair)
    _grid(tiles, 2, grid_path)
    return {"grid": str(grid_path), "folder": str(pred_dir), "score_threshold": threshold,
            "num_predictions": sum(len(e["instances"]) for e in entries), "num_images": len(entries)}


# -- the job -----------------------------------------------------------------------------------


def _log_to_file(output_dir: Path) -> None:
    """Send det's logs to ``output_dir/log.txt`` only: the console shows the progress bar."""
    det_logger = logging.getLogger("det")
    det_logger.setLevel(logging.INFO)
    det_logger.propagate = False
    target = os.path.abspath(output_dir / "log.txt")
    for h in list(det_logger.handlers):
        if isinstance(h, logging.FileHandler) and h.baseFilename == target:
            return
    handler = logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s]: %(message)s", datefmt="%m/%d %H:%M:%S"))
    det_logger.addHandler(handler)


def process_age() -> float:
    """Seconds since this process started (``det demo`` counts the interpreter's and torch's
    start-up against the budget too); 0 where /proc is not there."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


def _say(message: str, quiet: bool) -> None:
    logger.info(message)
    if not quiet:
        print(message, flush=True)


def run_demo(output_dir: str | os.PathLike = "./det-demo-output", *, minutes: float | None = None,
             max_iter: int | None = None, quick: bool = False, num_threads: int | None = None,
             num_vis_images: int = 6, progress: bool = True, quiet: bool = False, opts: Sequence[Any] = (),
             shapes: dict[str, Any] | None = None, config_file: str | os.PathLike | None = None,
             started: float | None = None) -> dict[str, Any]:
    """Run the whole demo into ``output_dir``; return the summary (also in ``summary.json``).

    Args:
        minutes: the whole job's time budget (default :data:`DEFAULT_MINUTES`); training gets
            what data, evaluation and pictures leave. Ignored when ``max_iter`` is given.
        max_iter: train exactly this many iterations instead (``quick``: 12 by default).
        quick: a smoke run on a tiny dataset (about a minute): checks the pipeline, not accuracy.
        num_threads: torch CPU threads (default: measured in the first iterations).
        opts: extra ``KEY VALUE`` config overrides.
        shapes: :class:`~det.data.shapes.ShapesConfig` fields that change the generated
            dataset (e.g. ``{"color_by_class": True}`` for the easy variant).
        config_file: a recipe to train instead of the embedded ``demo.yaml``.
        started: the ``time.perf_counter()`` time the budget counts from (default: now; ``det
            demo`` passes its process's start, so the interpreter's start-up counts too).
    """
    from det.data.shapes import ShapesConfig, register_shapes
    from det.engine.train.defaults import seed_all_rng

    start = time.perf_counter() if started is None else float(started)
    if minutes is not None and not minutes > 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    if num_threads is not None and int(num_threads) <= 0:
        raise ValueError(f"num_threads must be positive, got {num_threads}")
    shapes_fields = {**_DEMO_SHAPES, **(_QUICK_SHAPES if quick else {}), **(shapes or {})}
    shapes_config = ShapesConfig(**shapes_fields)  # bad fields fail before anything is written
    cfg = get_demo_cfg(output_dir, max_iter=max_iter, quick=quick, opts=opts, config_file=config_file)
    budget_minutes = None if (max_iter is not None or quick) and minutes is None else (minutes or DEFAULT_MINUTES)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    _log_to_file(output)
    seed_all_rng(cfg.SEED)

    # 1. data: the shapes dataset with the demo's generator parameters, under its own names (the
    # built-in shapes_train/shapes_val stay as they are); datasets.json next to the saved config
    # lets `det train/eval/predict --config-file <output>/config.yaml` find them in a new process.
    register_shapes(shapes_config, names=DEMO_DATASETS, replace=True)
    cfg.DATASETS.TRAIN = (DEMO_DATASETS[0],)
    cfg.DATASETS.TEST = (DEMO_DATASETS[1],)
    deadline = None if budget_minutes is None else start + budget_minutes * 60 * (1 - _SAFETY_SHARE) - _EXIT_SECONDS
    import torch

    threads_before = torch.get_num_threads()
    try:
        summary = _run_steps(cfg, output, start, deadline=deadline, num_threads=num_threads, quick=quick,
                             progress=progress, quiet=quiet, num_vis_images=num_vis_images)
    finally:
        torch.set_num_threads(threads_before)  # the measured count served this run only
    summary["budget"]["minutes"] = budget_minutes
    summary["dataset"].update(color_by_class=shapes_config.color_by_class,
                              shapes_config=dataclasses.asdict(shapes_config))
    _write_summary(output, summary)
    return summary


def _after_training_seconds(model: Any, cfg: Any, num_eval: int, num_vis: int) -> float:
    """What evaluation, pictures and saving will take: inference timed on three held-out images
    (the first is discarded: lazy initialisation), times the images still to predict, plus
    COCOeval's and matplotlib's few seconds. Called by the budget when it first fits the run."""
    import torch

    from det.data.build import build_detection_test_loader

    loader = build_detection_test_loader(cfg, cfg.DATASETS.TEST[0])
    times = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, batch in enumerate(loader):
                t0 = time.perf_counter()
                model(batch)
                if i:
                    times.append(time.perf_counter() - t0)
                if i == 2:
                    break
    finally:
        model.train(was_training)
    per_image = max(times) if times else 0.5
    # an untrained model returns many low-scoring boxes, a trained one few: take the slower reading,
    # and 1.5x for mask pasting and data loading that the timing above only partly saw
    # (the pictures may be predicted twice: at a lower score threshold when nothing reached 0.5)
    return 1.5 * per_image * (num_eval + 2 * num_vis) + 0.04 * num_eval + 8.0


def _run_steps(cfg: Any, output: Path, start: float, *, deadline: float | None, num_threads: int | None,
               quick: bool, progress: bool, quiet: bool, num_vis_images: int) -> dict[str, Any]:
    """Steps 1-5 of :func:`run_demo` once the dataset is registered."""
    import torch

    from det.core.machine import machine_info
    from det.data.catalog import DatasetCatalog, MetadataCatalog
    from det.engine.commands._common import DATASETS_FILE
    from det.engine.train.budget import TrainingBudget, thread_candidates
    from det.engine.train.defaults import DefaultTrainer
    from det.engine.train.writers import CommonMetricPrinter, JSONWriter

    t0 = time.perf_counter()
    num_train = len(DatasetCatalog.get(cfg.DATASETS.TRAIN[0]))
    num_val = len(DatasetCatalog.get(cfg.DATASETS.TEST[0]))
    data_dir = Path(MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).json_file).parents[1]
    datasets = {}
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        meta = MetadataCatalog.get(name)
        datasets[name] = {"json_file": meta.json_file, "image_root": meta.image_root,
                          "metadata": {"thing_classes": list(meta.thing_classes),
                                       "thing_colors": [list(c) for c in meta.thing_colors]}}
    (output / DATASETS_FILE).write_text(json.dumps(datasets, indent=1))
    data_seconds = time.perf_counter() - t0
    _say(f"[1/5] shapes dataset: {num_train} train / {num_val} held-out images in {data_dir} "
         f"({data_seconds:.1f}s)", quiet)

    with open(output / "config.yaml", "w") as f:
        f.write(cfg.dump())
    cfg.freeze()
    machine = machine_info()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    candidates = (int(num_threads),) if num_threads is not None else thread_candidates()
    budget = None
    if deadline is not None:
        budget = TrainingBudget(
            cfg, deadline, thread_candidates=candidates,
            reserve_seconds=lambda: _after_training_seconds(trainer.model, cfg, num_val, num_vis_images))
    elif len(candidates) > 1:
        # a fixed iteration count: the budget hook only measures the thread count
        budget = TrainingBudget(cfg, None, thread_candidates=candidates)

    # 2-3. train with a progress bar, evaluate at the end (EvalHook)
    class _BudgetedPrinter(CommonMetricPrinter):
        """The metric lines' ETA counts to the trainer's current ``max_iter`` (the budget moves it)."""

        def __init__(self, trainer: Any) -> None:
            super().__init__(trainer.max_iter)
            self._trainer = trainer

        def write(self) -> None:
            self._max_iter = int(self._trainer.max_iter)
            super().write()

    class DemoTrainer(DefaultTrainer):
        progress_bar = progress and not quiet
        # about 100 points on the training curves
        writer_period = max(1, min(20, int(cfg.SOLVER.MAX_ITER) // 100))

        def build_writers(self) -> list:
            # console output is the progress bar; the metric lines go to log.txt
            return [_BudgetedPrinter(self), JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))]

        def build_hooks(self) -> list:
            return [*super().build_hooks(), budget]  # (None is skipped)

    metrics_file = output / "metrics.json"
    if metrics_file.exists():
        metrics_file.unlink()  # a fresh run; JSONWriter appends
    plan = (f"for {cfg.SOLVER.MAX_ITER} iterations" if deadline is None else
            f"for what fits in the budget (about {max(deadline - time.perf_counter(), 0) / 60:.1f} min left)")
    _say(f"[2/5] training Mask R-CNN (ResNet-{cfg.MODEL.RESNETS.DEPTH} FPN, from scratch) {plan}, "
         f"batch {cfg.SOLVER.IMS_PER_BATCH}, on {machine.describe()}", quiet)
    t0 = time.perf_counter()
    trainer = DemoTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train() or {}
    train_and_eval_time = time.perf_counter() - t0
    iterations = int(trainer.iter)
    budget_report = budget.summary() if budget is not None else {}
    if budget is not None:
        # the saved config is the run that happened: `det train --config-file` repeats it
        saved = cfg.clone()
        saved.defrost()
        for key, value in budget.fitted_schedule().items():
            setattr(saved.SOLVER, key, value)
        with open(output / "config.yaml", "w") as f:
            f.write(saved.dump())
    threads = budget_report.get("threads") or torch.get_num_threads()
    bbox_ap = float(results.get("bbox", {}).get("AP", float("nan")))
    segm_ap = float(results.get("segm", {}).get("AP", float("nan")))
    _say(f"[3/5] held-out COCO AP: box {bbox_ap:.1f}, mask {segm_ap:.1f} after {iterations} iterations "
         f"on {_threads(threads)} (training + evaluation {train_and_eval_time:.0f}s)", quiet)

    # 4. the checkpoint was written by the PeriodicCheckpointer hook at the last iteration
    checkpoint = output / "model_final.pth"
    _say(f"[4/5] checkpoint: {checkpoint}", quiet)

    # 5. predictions on held-out images, the data and the training curves
    t0 = time.perf_counter()
    predict_cfg = cfg.clone()
    predict_cfg.defrost()
    predict_cfg.MODEL.WEIGHTS = str(checkpoint)
    figures = _prediction_figures(predict_cfg, cfg.DATASETS.TEST[0], output, num_vis_images)
    data_png = _data_figure(cfg.DATASETS.TRAIN[0], output / "data.png") if num_vis_images else None
    curves = plot_training_curves(metrics_file, output / "training_curves.png",
                                  title=f"box AP {bbox_ap:.1f}, mask AP {segm_ap:.1f} after {iterations} iterations "
                                        f"on {_threads(threads)}, {machine.cpu_model} "
                                        f"({machine.capability})")
    _say(f"[5/5] predictions: {figures['grid']} ({figures['num_predictions']} with score >= {figures['score_threshold']:g} on {figures['num_images']} images), "
         f"curves: {curves} ({time.perf_counter() - t0:.1f}s)", quiet)

    total_time = time.perf_counter() - start
    timed = _iteration_seconds(metrics_file)
    summary = {
        "bbox_AP": bbox_ap,
        "segm_AP": segm_ap,
        "results": results,
        "iterations": iterations,
        "max_iter": iterations,
        "ims_per_batch": int(cfg.SOLVER.IMS_PER_BATCH),
        "num_threads": threads,
        "seconds_per_iteration": budget_report.get("seconds_per_iteration") or timed,
        "picture_score_threshold": figures["score_threshold"],
        "lr_steps": list(budget.fitted_schedule()["STEPS"] if budget is not None else cfg.SOLVER.STEPS),
        "machine": {**machine.as_dict(), "description": machine.describe()},
        "budget": {"minutes": None, **{k: v for k, v in budget_report.items() if k not in ("threads",)}},
        "data_seconds": round(data_seconds, 1),
        "train_and_eval_seconds": round(train_and_eval_time, 1),
        "total_seconds": round(total_time, 1),
        "quick": quick,
        "dataset": {"train": num_train, "val": num_val, "root": str(data_dir)},
        "files": {
            "checkpoint": str(checkpoint),
            "config": str(output / "config.yaml"),
            "metrics": str(metrics_file),
            "training_curves": str(curves),
            "predictions": figures["grid"],
            "predictions_folder": figures["folder"],
            "data": data_png,
            "log": str(output / "log.txt"),
        },
    }
    _write_summary(output, summary)
    _say(f"done in {total_time:.0f}s: box AP {bbox_ap:.1f}, mask AP {segm_ap:.1f}; see {output / 'summary.md'}", quiet)
    return summary


def _iteration_seconds(metrics_file: Path) -> float | None:
    """Median of the ``time`` values in ``metrics.json`` (each a median of recent iterations)."""
    import statistics

    values = [r["time"] for r in _read_metrics(metrics_file) if isinstance(r.get("time"), int | float)]
    return round(statistics.median(values), 4) if values else None


def _write_summary(output: Path, summary: dict[str, Any]) -> None:
    with open(output / "summary.json", "w") as f:
        json.dump(summary, f, indent=2, default=float)
    (output / "summary.md").write_text(_summary_markdown(summary))


def _threads(n: int | str) -> str:
    return f"{n} thread" + ("" if int(n) == 1 else "s")


def _summary_markdown(s: dict[str, Any]) -> str:
    def metrics_row(task: str) -> str:
        r = s["results"].get(task, {})
        return "| " + task + " | " + " | ".join(f"{r.get(k, float('nan')):.1f}" for k in ("AP", "AP50", "AP75")) + " |"

    files = s["files"]
    here = os.path.dirname(files["config"])
    dataset = s["dataset"]
    variant = "colours that follow the class (the easy variant)" if dataset.get("color_by_class") else \
        "random colours: the class is in the outline only"
    budget = s["budget"]
    spi = s.get("seconds_per_iteration")
    lines = [
        "# det demo",
        "",
        f"Mask R-CNN (ResNet-18 FPN, from scratch) trained for **{s['iterations']} iterations** of "
        f"{s['ims_per_batch']} images on {dataset['train']} synthetic shapes images ({variant}), "
        f"evaluated on {dataset['val']} held-out images"
        + (" (quick smoke run: the numbers mean nothing)" if s["quick"] else "") + ".",
        "",
        "| task | AP | AP50 | AP75 |",
        "|---|---|---|---|",
        metrics_row("bbox"),
        metrics_row("segm"),
        "",
        f"Machine: {s['machine']['description']}; {_threads(s['num_threads'])}"
        + (f", {spi:.3f} s per iteration" if spi else "") + ".",
        f"Time: {s['data_seconds']:.0f}s data, {s['train_and_eval_seconds']:.0f}s training + evaluation, "
        f"{s['total_seconds']:.0f}s in all"
        + (f" (budget {budget['minutes']:g} min)" if budget.get("minutes") else "") + ".",
    ]
    if budget.get("thread_probes"):
        probe = budget["thread_probes"][0]
        lines += ["", "Threads measured in the first iterations (seconds per iteration): "
                  + ", ".join(f"{_threads(n)} {t:.3f}" for n, t in probe["seconds_per_iteration"].items())
                  + f" -> {probe['chosen']}."]
    if budget.get("fits"):
        last = budget["fits"][-1]
        lines += ["", f"Budgeted schedule: {len(budget['fits'])} fits of the iteration count from the measured speed; "
                  f"the last at iteration {last['iteration']} ({last['seconds_per_iteration']:.3f} s/iteration) "
                  f"gave {last['max_iter']} iterations, LR steps at {s['lr_steps']}."]
    if files.get("data"):
        lines += ["", "## The training data (ground truth)", "", f"![data]({os.path.relpath(files['data'], here)})"]
    if files.get("predictions"):
        score = s.get("picture_score_threshold", _PICTURE_SCORE)
        lines += ["", "## Predictions on held-out images (left: ground truth, right: prediction with score "
                  f">= {score:g}" + (": nothing scored 0.5 or more" if score < _PICTURE_SCORE else "") + ")", "",
                  f"![predictions]({os.path.relpath(files['predictions'], here)})"]
    lines += [
        "",
        "## Training curves",
        "",
        f"![training curves]({os.path.relpath(files['training_curves'], here)})",
        "",
        "## Files",
        "",
        *[f"- {k}: `{v}`" for k, v in files.items() if v],
        "",
        "Re-run a step alone:",
        "",
        f"    det train --config-file {files['config']} SOLVER.MAX_ITER {s['iterations']} SOLVER.STEPS \"{tuple(s['lr_steps'])}\"",
        f"    det eval --config-file {files['config']} --weights {files['checkpoint']}",
        f"    det predict --config-file {files['config']} --weights {files['checkpoint']} IMAGE.png --output pred/",
        "",
    ]
    return "\n".join(lines)
