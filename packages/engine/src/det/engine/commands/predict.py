"""``det predict``: run a trained model on images (files, folders, or text files listing image
paths); write a PNG of each image with its predictions drawn, ``predictions.json`` with every
prediction and, with --coco-results, a COCO results file that ``det eval --results`` scores.

    det predict --config-file out/config.yaml --weights out/model_final.pth img1.png img2.jpg --output pred/
    det predict --config-file out/config.yaml --weights out/model_final.pth photos/ --output pred/
    det predict ... images.txt --output pred/ --no-visualization --coco-results pred/results.json
    det predict ... --confidence-threshold 0.3 --opts MODEL.DEVICE cuda
    det predict --config-file mask_rcnn_R_50_FPN_1x.py --weights model.pth photos/ --output pred/

A folder stands for the image files in it and its subfolders (sorted; other files are left
out); a ``.txt`` file for the paths it lists, one a line (relative to the list's folder, else to
the working directory). Every image's header is checked before the model is built. Images
stream through the model (bounded memory; a progress bar on a terminal), ``--batch-size``
at a time.

``predictions.json`` is a list, one entry per image: ``{"file_name", "height", "width",
"instances": [{"category_id", "category", "score", "bbox": [x0, y0, x1, y1], "segmentation":
{"size", "counts"} (COCO RLE, when the model predicts masks), "keypoints": [[x, y, score], ...]}]}``,
with predictions of at least --confidence-threshold. The COCO results file holds every
prediction the model makes (its own TEST score threshold applies), with the image ids and
category ids of the dataset json that lists the images (--json, or the config's datasets).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from det.engine.commands._common import (
    USER_ERRORS,
    CommandError,
    announce_config,
    check_weights,
    report_user_error,
    setup_cfg,
    show_examples,
)

__all__ = ["IMAGE_EXTENSIONS", "expand_image_inputs", "instances_to_json", "main", "predict_images",
           "register", "run", "stream_predictions"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
"""File extensions taken from a folder (case-insensitive)."""


def instances_to_json(instances: Any, class_names: Sequence[str] | None = None) -> list[dict]:
    """Plain-JSON form of predicted ``Instances`` (boxes XYXY in input-image pixels)."""
    import numpy as np
    import pycocotools.mask as mask_util

    out = []
    n = len(instances)
    boxes: list[Any] = instances.pred_boxes.tensor.tolist() if instances.has("pred_boxes") else [None] * n
    scores: list[Any] = instances.scores.tolist() if instances.has("scores") else [None] * n
    classes: list[Any] = instances.pred_classes.tolist() if instances.has("pred_classes") else [None] * n
    masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
    keypoints = instances.pred_keypoints.tolist() if instances.has("pred_keypoints") else None
    for i in range(n):
        item: dict[str, Any] = {"category_id": classes[i], "score": scores[i],
                                "bbox": [round(float(v), 2) for v in boxes[i]] if boxes[i] is not None else None}
        if class_names is not None and classes[i] is not None and 0 <= classes[i] < len(class_names):
            item["category"] = class_names[classes[i]]
        if masks is not None:
            rle = mask_util.encode(np.asfortranarray(masks[i].astype(np.uint8)))
            item["segmentation"] = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
        if keypoints is not None:
            item["keypoints"] = [[round(float(v), 2) for v in kp] for kp in keypoints[i]]
        out.append(item)
    return out


# -- inputs --------------------------------------------------------------------------------------


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _list_file(path: Path) -> list[str]:
    paths = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        candidate = line if os.path.isabs(line) else os.path.join(path.parent, line)
        paths.append(candidate if os.path.exists(candidate) or os.path.isabs(line) else line)
    if not paths:
        raise CommandError(f"{path} lists no image paths (one path a line)")
    return paths


def expand_image_inputs(inputs: Sequence[str]) -> list[str]:
    """The image files that ``inputs`` stand for: files as given, folders as the image files in
    them (recursively, sorted), ``.txt`` files as the paths they list. A missing path, or a
    folder without images, is a :class:`CommandError`."""
    paths: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(os.path.join(root, f) for root, _, files in os.walk(path) for f in files
                           if _is_image_name(f))
            if not found:
                raise CommandError(f"folder {item!r} has no image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
            paths.extend(found)
        elif path.is_file() and path.suffix.lower() == ".txt":
            paths.extend(_list_file(path))
        elif not path.exists():
            raise CommandError(f"image file(s) not found: {item}")
        else:
            paths.append(item)
    return paths


def check_images(paths: Sequence[str]) -> None:
    """Read every image's header now (a thread pool), so that a file that is not an image, is
    empty or cut short stops the command before the model is built."""
    from det.data.check import ImageFileError, inspect_images

    found = inspect_images(list(dict.fromkeys(paths)))
    bad = [r for r in found.values() if isinstance(r, ImageFileError)]
    if bad:
        missing = [e.path for e in bad if e.kind == "missing_image"]
        if len(missing) == len(bad):
            raise CommandError(f"image file(s) not found: {', '.join(missing[:5])}"
                               + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""))
        first = "; ".join(str(e) for e in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise CommandError(f"{len(bad)} of the {len(found)} inputs cannot be used as images: {first}{more}; "
                           "remove them from the command line (or folder/list), or replace them")


def _image_ids(paths: Sequence[str], json_file: str | None, cfg: Any) -> tuple[dict[str, int], dict[int, int], str]:
    """For --coco-results: image id of each path and dataset category id of each contiguous
    class id, from ``json_file`` or the first registered dataset of the config (TEST, then TRAIN)
    whose json lists every image."""
    from det.data.catalog import MetadataCatalog

    candidates = [json_file] if json_file else [
        MetadataCatalog.get(n).get("json_file") for n in (*cfg.DATASETS.TEST, *cfg.DATASETS.TRAIN)]
    roots = [None] if json_file else [
        MetadataCatalog.get(n).get("image_root") for n in (*cfg.DATASETS.TEST, *cfg.DATASETS.TRAIN)]
    best_missing: list[str] | None = None
    for candidate, root in zip(candidates, roots):
        if not candidate or not os.path.isfile(candidate):
            if json_file:
                raise CommandError(f"--json {json_file!r} does not exist")
            continue
        with open(candidate, "rb") as f:
            data = json.load(f)
        image_root = root or os.path.dirname(candidate)
        by_path = {os.path.realpath(os.path.join(image_root, img["file_name"])): img["id"]
                   for img in data.get("images", [])}
        by_name: dict[str, Any] = {}
        for img in data.get("images", []):
            by_name.setdefault(os.path.basename(img["file_name"]), []).append(img["id"])
        ids = {}
        missing = []
        for p in paths:
            real = os.path.realpath(p)
            if real in by_path:
                ids[p] = by_path[real]
            elif len(by_name.get(os.path.basename(p), [])) == 1:  # the json's image_root may differ
                ids[p] = by_name[os.path.basename(p)][0]
            else:
                missing.append(p)
        if not missing:
            cat_ids = sorted(c["id"] for c in data.get("categories", []))
            return ids, dict(enumerate(cat_ids)), candidate
        if best_missing is None or len(missing) < len(best_missing):
            best_missing = missing
    if best_missing is None:
        raise CommandError("--coco-results needs the image ids of a COCO json that lists the images: give --json "
                           "FILE (the config's datasets have no json)")
    raise CommandError(f"--coco-results: {len(best_missing)} of the {len(paths)} images (e.g. {best_missing[0]}) are "
                       "not in the dataset json, so they have no image id; give --json FILE listing them")


# -- streaming inference -------------------------------------------------------------------------


def stream_predictions(predictor: Any, paths: Sequence[str], *, batch_size: int = 1,
                       prefetch: int = 4) -> Iterator[tuple[str, Any, Any]]:
    """``(path, BGR image, instances on the CPU)`` for each path, in order. Images are read and
    resized by background threads (``prefetch`` batches ahead: memory stays bounded) and go
    through ``predictor.model`` ``batch_size`` at a time."""
    import torch

    from det.data.detection_utils import read_image

    batched = callable(getattr(predictor, "preprocess", None))  # DefaultPredictor; else one call an image

    def load(path: str) -> tuple[Any, Any]:
        image = read_image(path, format="BGR")
        return image, predictor.preprocess(image) if batched else None

    if not batched:
        batch_size = 1
    device = predictor.cfg.MODEL.DEVICE if batched else None
    window = max(1, prefetch) * batch_size
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="det-predict-read") as pool:
        pending: deque[tuple[str, Future]] = deque()
        it = iter(paths)
        for path in it:
            pending.append((path, pool.submit(load, path)))
            if len(pending) >= window:
                break
        while pending:
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            for path in it:  # keep the window full while the model works
                pending.append((path, pool.submit(load, path)))
                if len(pending) >= window:
                    break
            loaded = []
            for path, future in batch:
                try:
                    loaded.append((path, *future.result()))
                except (OSError, SyntaxError, ValueError) as e:
                    raise CommandError(f"{path}: {e}") from None
            with torch.no_grad():
                if batched:
                    outputs = predictor.model([{**x, "image": x["image"].to(device)} for _, _, x in loaded])
                else:
                    outputs = [predictor(image) for _, image, _ in loaded]
            for (path, image, _), output in zip(loaded, outputs):
                yield path, image, output["instances"].to("cpu")


class _JsonListWriter:
    """Writes a JSON list item by item (``path.tmp``, renamed to ``path`` on :meth:`close`):
    nothing is held in memory, and an interrupted run leaves no half-written ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.file = open(self.tmp, "w")  # noqa: SIM115  (closed by close())
        self.file.write("[")
        self.count = 0

    def write(self, item: Any) -> None:
        self.file.write(("\n" if self.count == 0 else ",\n") + json.dumps(item))
        self.count += 1

    def close(self) -> None:
        self.file.write("\n]\n")
        self.file.close()
        os.replace(self.tmp, self.path)


def predict_images(predictor: Any, image_paths: Sequence[str | os.PathLike], output: str | os.PathLike,
                   metadata: Any = None, confidence_threshold: float = 0.5, *, batch_size: int = 1,
                   visualize: bool = True, coco_results: str | os.PathLike | None = None,
                   image_ids: dict[str, int] | None = None, category_ids: dict[int, int] | None = None,
                   progress: bool | None = None, keep_entries: bool = True,
                   counts: dict[str, int] | None = None) -> list[dict]:
    """Run ``predictor`` (a :class:`~det.core.DefaultPredictor`) on each image; write
    ``<output>/<image stem>.png`` visualizations (unless ``visualize`` is False),
    ``<output>/predictions.json`` and, with ``coco_results``, a COCO results file (image ids from
    ``image_ids``, dataset category ids from ``category_ids``). Returns the JSON entries (an empty
    list unless ``keep_entries``: the files hold them; ``counts`` gets ``num_images`` and
    ``num_predictions``). Predictions below ``confidence_threshold`` are left out of the PNGs
    and predictions.json."""
    from det.engine.visualizer import Visualizer
    from det.evaluation.coco_evaluation import instances_to_coco_json

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    class_names = metadata.get("thing_classes", None) if metadata is not None else None
    entries: list[dict] = []
    used_names: set[str] = set()
    paths = [os.fspath(p) for p in image_paths]
    if progress is None:
        progress = sys.stderr.isatty()
    from tqdm import tqdm

    bar = tqdm(total=len(paths), unit="img", desc="det predict", disable=not progress, file=sys.stderr)
    writer = _JsonListWriter(output / "predictions.json")
    coco_writer = _JsonListWriter(Path(coco_results)) if coco_results else None
    try:
        for path, image, all_instances in stream_predictions(predictor, paths, batch_size=batch_size):
            instances = all_instances[all_instances.scores >= confidence_threshold]
            entry: dict[str, Any] = {"file_name": path, "height": int(image.shape[0]), "width": int(image.shape[1])}
            if visualize:
                stem = Path(path).stem
                name, k = stem, 1
                while name in used_names:  # two inputs with one stem (a/x.png, b/x.png) keep both outputs
                    name, k = f"{stem}_{k}", k + 1
                used_names.add(name)
                visualizer = Visualizer(image[:, :, ::-1], metadata, scale=max(1.0, 384 / max(image.shape[:2])))
                visualizer.draw_instance_predictions(instances).save(output / f"{name}.png")
                entry["visualization"] = f"{name}.png"
            entry["instances"] = instances_to_json(instances, class_names)
            writer.write(entry)
            if counts is not None:
                counts["num_images"] = counts.get("num_images", 0) + 1
                counts["num_predictions"] = counts.get("num_predictions", 0) + len(entry["instances"])
            if keep_entries:
                entries.append(entry)
            if coco_writer is not None:
                assert image_ids is not None
                for result in instances_to_coco_json(all_instances, image_ids[path]):
                    if category_ids is not None:
                        result["category_id"] = category_ids[result["category_id"]]
                    coco_writer.write(result)
            bar.update(1)
    finally:
        bar.close()
    writer.close()
    if coco_writer is not None:
        coco_writer.close()
    return entries


def main(config_file: str, weights: str, images: Sequence[str], output: str, *,
         confidence_threshold: float = 0.5, opts: Sequence[str] | None = None, batch_size: int = 1,
         visualize: bool = True, coco_results: str | None = None, json_file: str | None = None) -> dict[str, Any]:
    """Check everything, build the predictor, stream the images; returns a summary
    (``num_images``, ``num_predictions``, the files written)."""
    from det.core.predictor import DefaultPredictor
    from det.data.catalog import MetadataCatalog

    if not 0.0 <= confidence_threshold <= 1.0:
        raise CommandError(f"--confidence-threshold must be in [0, 1], got {confidence_threshold}")
    if batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {batch_size}")
    if os.path.exists(output) and not os.path.isdir(output):
        raise CommandError(f"--output {output!r} is a file; give a folder")
    paths = expand_image_inputs(images)
    check_images(paths)
    predictor: Any
    if config_file.endswith(".py"):
        from det.engine.commands._lazy import LazyPredictor, build_lazy_model, setup_lazy_cfg

        if not os.path.isfile(weights) and "://" not in weights:
            raise CommandError(f"weights file {weights!r} does not exist")
        if coco_results and not json_file:
            raise CommandError("--coco-results with a LazyConfig needs --json FILE (the json listing the images)")
        lazy_cfg = setup_lazy_cfg(config_file, opts, weights=weights)
        found = lazy_cfg.dataloader.test.dataset.get("names") if "dataloader" in lazy_cfg else None
        name = found if isinstance(found, str) else (found[0] if found else None)
        metadata = MetadataCatalog.get(name) if name else None
        cfg = None
    else:
        check_weights(weights)
        cfg = setup_cfg(config_file, opts, weights=weights)
        names = [*cfg.DATASETS.TEST, *cfg.DATASETS.TRAIN]
        metadata = MetadataCatalog.get(names[0]) if names else None
    image_ids = category_ids = None
    if coco_results:
        image_ids, category_ids, _ = _image_ids(paths, json_file, cfg)
        Path(coco_results).parent.mkdir(parents=True, exist_ok=True)
    if cfg is None:
        predictor = LazyPredictor(lazy_cfg, build_lazy_model(lazy_cfg, load=True))
    else:
        predictor = DefaultPredictor(cfg)
    counts: dict[str, int] = {"num_images": 0, "num_predictions": 0}
    predict_images(predictor, paths, output, metadata, confidence_threshold, batch_size=batch_size,
                   visualize=visualize, coco_results=coco_results, image_ids=image_ids,
                   category_ids=category_ids, keep_entries=False, counts=counts)
    return {**counts, "output": output, "coco_results": coco_results}


def run(args: argparse.Namespace) -> int:
    try:
        announce_config("predict", args.config_file)
        summary = main(args.config_file, args.weights, args.images, args.output,
                       confidence_threshold=args.confidence_threshold, opts=args.opts,
                       batch_size=args.batch_size, visualize=not args.no_visualization,
                       coco_results=args.coco_results, json_file=args.json)
    except USER_ERRORS as e:
        return report_user_error("predict", e)
    files = "PNG per image, predictions.json" if not args.no_visualization else "predictions.json"
    print(f"{summary['num_predictions']} predictions on {summary['num_images']} images written to {args.output} "
          f"({files})" + (f"; COCO results in {args.coco_results}" if args.coco_results else ""))
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    parser.add_argument("--weights", required=True, metavar="FILE", help="checkpoint (MODEL.WEIGHTS)")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files, folders of images, or .txt files listing image paths")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the PNGs and predictions.json")
    parser.add_argument("--confidence-threshold", type=float, default=0.5,
                        help="minimum score of the predictions drawn and listed (default 0.5)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per model call (default 1)")
    parser.add_argument("--no-visualization", action="store_true", help="write no PNGs (only the json files)")
    parser.add_argument("--coco-results", default=None, metavar="FILE",
                        help="also write every prediction as a COCO results file (for det eval --results)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="COCO json listing the images: image and category ids for --coco-results "
                             "(default: the config's datasets)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides: space-separated 'PATH.KEY VALUE' pairs (YAML), or "
                             "'path.key=value' (a LazyConfig .py file)")
    show_examples(parser, __doc__)
    return run
