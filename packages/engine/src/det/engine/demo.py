"""The main job, ``det demo``: the whole toolkit on synthetic data, on the CPU, in minutes.

1. writes the built-in shapes dataset (COCO format; circles, squares, triangles with masks),
2. trains the small Mask R-CNN of ``demo.yaml`` (ResNet-18 FPN, from scratch) with a progress bar,
3. evaluates COCO box and mask AP with pycocotools on the held-out split,
4. saves the checkpoint (``model_final.pth``) and the merged config (``config.yaml``),
5. runs ``DefaultPredictor`` on held-out images and writes PNGs of its predictions,
6. draws the training curves (PIL, no matplotlib needed) and writes ``summary.md``/``summary.json``.

    from det.engine.demo import run_demo
    summary = run_demo("det-demo-output", quick=True)   # a one-minute smoke run
    summary["bbox_AP"], summary["segm_AP"]

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

__all__ = ["DEMO_CONFIG", "get_demo_cfg", "plot_training_curves", "run_demo"]

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
"""The embedded config of the demo model (a YAML file shipped inside det-engine)."""

logger = logging.getLogger("det.engine.demo")

DEMO_DATASETS = ("demo_shapes_train", "demo_shapes_val")
"""Names the demo registers its dataset under."""

# Each class drawn in its own hue band: engine-data's "easier" variant of the shapes dataset. With
# random colours a from-scratch model needs far more than the demo's 10 minutes to tell the shapes
# apart (box AP 2.7 vs 12.5 after 250 iterations); colour makes classification easy, so the
# minutes go to localization and masks.
_DEMO_SHAPES = {"color_by_class": True}

# The quick smoke run: a handful of small images and iterations, same model.
_QUICK_SHAPES = {"num_train": 16, "num_val": 6, "min_image_size": 96, "max_image_size": 128,
                 "max_shape_size": 60}
_QUICK_OPTS = ["SOLVER.MAX_ITER", 12, "SOLVER.WARMUP_ITERS", 4, "SOLVER.IMS_PER_BATCH", 2,
               "INPUT.MIN_SIZE_TRAIN", (128,), "INPUT.MIN_SIZE_TEST", 128]


def get_demo_cfg(output_dir: str | os.PathLike = "./det-demo-output", *, max_iter: int | None = None,
                 quick: bool = False, opts: Sequence[Any] = ()) -> Any:
    """The demo's config: ``demo.yaml`` + quick settings + ``max_iter`` + ``opts``, with
    ``OUTPUT_DIR`` set."""
    from det.core.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(DEMO_CONFIG))
    if quick:
        cfg.merge_from_list(list(_QUICK_OPTS))
    if max_iter is not None:
        if int(max_iter) <= 0:
            raise ValueError(f"max_iter must be a positive number of iterations, got {max_iter}")
        cfg.SOLVER.MAX_ITER = int(max_iter)
        cfg.SOLVER.WARMUP_ITERS = min(cfg.SOLVER.WARMUP_ITERS, max(int(max_iter) // 10, 1))
    cfg.merge_from_list(list(opts))
    cfg.OUTPUT_DIR = os.fspath(output_dir)
    return cfg


# -- training curves, drawn with PIL -----------------------------------------------------------

_CURVE_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-6:
        if v >= lo - step * 1e-6:
            ticks.append(round(v, 10))
        v += step
    return ticks


def _draw_panel(draw: Any, box: tuple[int, int, int, int], title: str,
                series: dict[str, list[tuple[float, float]]], font: Any) -> None:
    """Line chart of ``series`` ({name: [(x, y), ...]}) inside ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    left, right, top, bottom = x0 + 58, x1 - 10, y0 + 24, y1 - 34
    draw.text((x0 + 4, y0 + 4), title, fill=(0, 0, 0), font=font)
    points = [p for s in series.values() for p in s]
    if not points:
        draw.text((left + 10, top + 10), "(no data)", fill=(120, 120, 120), font=font)
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xmin, xmax = min(xs), max(xs)
    ymin, ymax = min(0.0, min(ys)), max(ys)
    if xmax <= xmin:
        xmax = xmin + 1
    if ymax <= ymin:
        ymax = ymin + 1
    ymax *= 1.05

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - xmin) / (xmax - xmin) * (right - left), bottom - (y - ymin) / (ymax - ymin) * (bottom - top))

    for t in _nice_ticks(ymin, ymax):
        _, py = to_px(xmin, t)
        draw.line([(left, py), (right, py)], fill=(230, 230, 230))
        draw.text((x0 + 4, py - 6), f"{t:.3g}", fill=(80, 80, 80), font=font)
    for t in _nice_ticks(xmin, xmax):
        px, _ = to_px(t, ymin)
        draw.line([(px, bottom), (px, bottom + 4)], fill=(80, 80, 80))
        draw.text((px - 10, bottom + 6), f"{t:g}", fill=(80, 80, 80), font=font)
    draw.rectangle([left, top, right, bottom], outline=(80, 80, 80))
    draw.text(((left + right) // 2 - 20, bottom + 18), "iteration", fill=(80, 80, 80), font=font)
    for i, (name, pts) in enumerate(series.items()):
        color = _CURVE_COLORS[i % len(_CURVE_COLORS)]
        pixels = [to_px(x, y) for x, y in sorted(pts)]
        if len(pixels) == 1:
            px, py = pixels[0]
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=color)
        else:
            draw.line(pixels, fill=color, width=2)
        ly = top + 6 + 14 * i
        draw.line([(right - 130, ly + 6), (right - 112, ly + 6)], fill=color, width=3)
        draw.text((right - 108, ly), name, fill=(0, 0, 0), font=font)


def plot_training_curves(metrics_json: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Draw the losses and the learning rate recorded in ``metrics.json`` (a JSONWriter file)
    into ``out_png``: two panels, iteration on the x axis. Returns the PNG path."""
    from PIL import Image, ImageDraw, ImageFont

    records = []
    with open(metrics_json) as f:
        for line in f:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    losses: dict[str, list[tuple[float, float]]] = {}
    lr: dict[str, list[tuple[float, float]]] = {"lr": []}
    for r in records:
        it = r.get("iteration")
        if it is None:
            continue
        for k, v in r.items():
            if "loss" in k and isinstance(v, int | float) and math.isfinite(v):
                losses.setdefault(k, []).append((it, v))
        if "lr" in r:
            lr["lr"].append((it, r["lr"]))
    # total first, then the parts
    losses = dict(sorted(losses.items(), key=lambda kv: (kv[0] != "total_loss", kv[0])))
    width, height = 900, 640
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    _draw_panel(draw, (0, 0, width, 420), "training losses (median of 20 iterations)", losses, font)
    _draw_panel(draw, (0, 420, width, height), "learning rate", lr, font)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png)
    return out_png


# -- predictions on held-out images ------------------------------------------------------------


def _prediction_figures(cfg: Any, dataset_name: str, out_dir: Path, num_images: int) -> dict[str, Any]:
    """DefaultPredictor on the first ``num_images`` of ``dataset_name``: per-image PNGs
    (ground truth | prediction), a grid ``predictions.png`` and ``predictions.json``."""
    import numpy as np
    from PIL import Image

    from det.core.predictor import DefaultPredictor
    from det.engine.commands.predict import predict_images
    from det.data.catalog import DatasetCatalog, MetadataCatalog
    from det.data.detection_utils import read_image
    from det.engine.visualizer import Visualizer

    metadata = MetadataCatalog.get(dataset_name)
    dicts = DatasetCatalog.get(dataset_name)[:num_images]
    predictor = DefaultPredictor(cfg)
    pred_dir = out_dir / "predictions"
    entries = predict_images(predictor, [d["file_name"] for d in dicts], pred_dir, metadata, 0.5)
    tiles = []
    for d, entry in zip(dicts, entries):
        image = read_image(d["file_name"], format="RGB")
        scale = 256 / max(image.shape[:2])
        # boxes, classes and masks only: the dataset's keypoints would clutter the comparison
        plain = {**d, "annotations": [{k: v for k, v in a.items() if k != "keypoints"} for a in d.get("annotations", [])]}
        gt = Visualizer(image, metadata, scale=scale).draw_dataset_dict(plain).get_image()
        pred = np.asarray(Image.open(pred_dir / entry["visualization"]).convert("RGB").resize(
            (gt.shape[1], gt.shape[0])))
        pair = np.concatenate([gt, np.full((gt.shape[0], 6, 3), 255, np.uint8), pred], axis=1)
        Image.fromarray(pair).save(pred_dir / f"gt_vs_pred_{Path(d['file_name']).stem}.png")
        tiles.append(pair)
    grid_path = out_dir / "predictions.png"
    if tiles:
        tile_h = max(t.shape[0] for t in tiles)
        tile_w = max(t.shape[1] for t in tiles)
        cols = 2
        rows = math.ceil(len(tiles) / cols)
        grid = np.full((rows * (tile_h + 8) + 8, cols * (tile_w + 8) + 8, 3), 255, np.uint8)
        for i, t in enumerate(tiles):
            r, c = divmod(i, cols)
            y, x = 8 + r * (tile_h + 8), 8 + c * (tile_w + 8)
            grid[y:y + t.shape[0], x:x + t.shape[1]] = t
        Image.fromarray(grid).save(grid_path)
    return {"grid": str(grid_path), "folder": str(pred_dir),
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


def _default_num_threads() -> int:
    """torch's thread count, less the cores other processes keep busy (1-minute load average).

    Intra-op threads wait for each other at every op: when another process holds one of two
    cores, two threads run many times slower than one (measured: 0.26 s/iteration with both
    cores free, 5 s with one busy; one thread: 0.5 s)."""
    import torch

    n = torch.get_num_threads()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return n
    return max(1, min(n, (os.cpu_count() or n) - round(busy)))


def _say(message: str, quiet: bool) -> None:
    logger.info(message)
    if not quiet:
        print(message, flush=True)


def run_demo(output_dir: str | os.PathLike = "./det-demo-output", *, max_iter: int | None = None,
             quick: bool = False, num_threads: int | None = None, num_vis_images: int = 6,
             progress: bool = True, quiet: bool = False, opts: Sequence[Any] = (),
             shapes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the whole demo into ``output_dir``; return the summary (also in ``summary.json``).

    Args:
        max_iter: training iterations (default: the config's, 1200; ``quick``: 12).
        quick: a smoke run on a tiny dataset (about a minute): checks the pipeline, not accuracy.
        num_threads: torch CPU threads (default: one per core not kept busy by other processes).
        opts: extra ``KEY VALUE`` config overrides.
        shapes: :class:`~det.data.shapes.ShapesConfig` fields that change the generated
            dataset (default: ``{"color_by_class": True}``; e.g. ``{"num_train": 1000}``).
    """
    import torch

    from det.data.shapes import ShapesConfig, register_shapes
    from det.engine.train.defaults import seed_all_rng

    start = time.perf_counter()
    shapes_fields = {**_DEMO_SHAPES, **(_QUICK_SHAPES if quick else {}), **(shapes or {})}
    shapes_config = ShapesConfig(**shapes_fields)  # bad fields fail before anything is written
    cfg = get_demo_cfg(output_dir, max_iter=max_iter, quick=quick, opts=opts)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    _log_to_file(output)
    torch.set_num_threads(int(num_threads) if num_threads is not None else _default_num_threads())
    seed_all_rng(cfg.SEED)

    # 1. data: the shapes dataset with the demo's generator parameters, under its own names (the
    # built-in shapes_train/shapes_val stay as they are); datasets.json next to the saved config
    # lets `det train/eval/predict --config-file <output>/config.yaml` find them in a new process.
    register_shapes(shapes_config, names=DEMO_DATASETS, replace=True)
    cfg.DATASETS.TRAIN = (DEMO_DATASETS[0],)
    cfg.DATASETS.TEST = (DEMO_DATASETS[1],)
    summary = _run_steps(cfg, output, start, quick=quick, progress=progress, quiet=quiet,
                         num_vis_images=num_vis_images)
    summary["shapes_config"] = dataclasses.asdict(shapes_config)
    with open(output / "summary.json", "w") as f:
        json.dump(summary, f, indent=2, default=float)
    return summary


def _run_steps(cfg: Any, output: Path, start: float, *, quick: bool, progress: bool, quiet: bool,
               num_vis_images: int) -> dict[str, Any]:
    """Steps 1-5 of :func:`run_demo` once the dataset is registered."""
    import torch

    from det.engine.commands._common import DATASETS_FILE
    from det.data.catalog import DatasetCatalog, MetadataCatalog
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
    _say(f"[1/5] shapes dataset: {num_train} train / {num_val} held-out images in {data_dir} "
         f"({time.perf_counter() - t0:.1f}s)", quiet)

    with open(output / "config.yaml", "w") as f:
        f.write(cfg.dump())
    cfg.freeze()

    # 2-3. train with a progress bar, evaluate at the end (EvalHook)
    class DemoTrainer(DefaultTrainer):
        progress_bar = progress and not quiet
        # about 100 points on the training curves
        writer_period = max(1, min(20, int(cfg.SOLVER.MAX_ITER) // 100))

        def build_writers(self) -> list:
            # console output is the progress bar; the metric lines go to log.txt
            return [CommonMetricPrinter(self.max_iter), JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))]

    metrics_file = output / "metrics.json"
    if metrics_file.exists():
        metrics_file.unlink()  # a fresh run; JSONWriter appends
    _say(f"[2/5] training Mask R-CNN (ResNet-18 FPN, from scratch) for {cfg.SOLVER.MAX_ITER} iterations, "
         f"batch {cfg.SOLVER.IMS_PER_BATCH}, {torch.get_num_threads()} CPU threads", quiet)
    t0 = time.perf_counter()
    trainer = DemoTrainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train() or {}
    train_and_eval_time = time.perf_counter() - t0
    bbox_ap = float(results.get("bbox", {}).get("AP", float("nan")))
    segm_ap = float(results.get("segm", {}).get("AP", float("nan")))
    _say(f"[3/5] held-out COCO AP: box {bbox_ap:.1f}, mask {segm_ap:.1f} "
         f"(training + evaluation {train_and_eval_time:.0f}s)", quiet)

    # 4. the checkpoint was written by the PeriodicCheckpointer hook at the last iteration
    checkpoint = output / "model_final.pth"
    _say(f"[4/5] checkpoint: {checkpoint}", quiet)

    # 5. predictions on held-out images and the training curves
    t0 = time.perf_counter()
    predict_cfg = cfg.clone()
    predict_cfg.defrost()
    predict_cfg.MODEL.WEIGHTS = str(checkpoint)
    figures = _prediction_figures(predict_cfg, cfg.DATASETS.TEST[0], output, num_vis_images)
    curves = plot_training_curves(metrics_file, output / "training_curves.png")
    _say(f"[5/5] predictions: {figures['grid']} ({figures['num_predictions']} on {figures['num_images']} images), "
         f"curves: {curves} ({time.perf_counter() - t0:.1f}s)", quiet)

    total_time = time.perf_counter() - start
    summary = {
        "bbox_AP": bbox_ap,
        "segm_AP": segm_ap,
        "results": results,
        "max_iter": int(cfg.SOLVER.MAX_ITER),
        "ims_per_batch": int(cfg.SOLVER.IMS_PER_BATCH),
        "num_threads": torch.get_num_threads(),
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
            "log": str(output / "log.txt"),
        },
    }
    with open(output / "summary.json", "w") as f:
        json.dump(summary, f, indent=2, default=float)
    (output / "summary.md").write_text(_summary_markdown(summary))
    _say(f"done in {total_time:.0f}s: box AP {bbox_ap:.1f}, mask AP {segm_ap:.1f}; see {output / 'summary.md'}", quiet)
    return summary


def _summary_markdown(s: dict[str, Any]) -> str:
    def metrics_row(task: str) -> str:
        r = s["results"].get(task, {})
        return "| " + task + " | " + " | ".join(f"{r.get(k, float('nan')):.1f}" for k in ("AP", "AP50", "AP75")) + " |"

    files = s["files"]
    return "\n".join([
        "# det demo",
        "",
        f"Mask R-CNN (ResNet-18 FPN, from scratch) trained for {s['max_iter']} iterations of "
        f"{s['ims_per_batch']} images on {s['dataset']['train']} synthetic shapes images, "
        f"on {s['num_threads']} CPU threads, evaluated on {s['dataset']['val']} held-out images"
        + (" (quick smoke run: the numbers mean nothing)" if s["quick"] else "") + ".",
        "",
        "| task | AP | AP50 | AP75 |",
        "|---|---|---|---|",
        metrics_row("bbox"),
        metrics_row("segm"),
        "",
        f"Time: {s['train_and_eval_seconds']:.0f}s training + evaluation, {s['total_seconds']:.0f}s in all.",
        "",
        "## Predictions on held-out images (left: ground truth, right: prediction)",
        "",
        f"![predictions]({os.path.relpath(files['predictions'], os.path.dirname(files['config']))})",
        "",
        "## Training curves",
        "",
        f"![training curves]({os.path.relpath(files['training_curves'], os.path.dirname(files['config']))})",
        "",
        "## Files",
        "",
        *[f"- {k}: `{v}`" for k, v in files.items()],
        "",
        "Re-run a step alone:",
        "",
        f"    det eval --config-file {files['config']} --weights {files['checkpoint']}",
        f"    det predict --config-file {files['config']} --weights {files['checkpoint']} IMAGE.png --output pred/",
        "",
    ])
