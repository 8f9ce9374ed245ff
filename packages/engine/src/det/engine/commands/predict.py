"""``det predict``: run a trained model on image files; write a PNG of each image with its
predictions drawn and ``predictions.json`` with every prediction.

    det predict --config-file out/config.yaml --weights out/model_final.pth img1.png img2.jpg --output pred/
    det predict ... --confidence-threshold 0.3 --opts MODEL.DEVICE cuda

``predictions.json`` is a list, one entry per image: ``{"file_name", "height", "width",
"instances": [{"category_id", "category", "score", "bbox": [x0, y0, x1, y1], "segmentation":
{"size", "counts"} (COCO RLE, when the model predicts masks), "keypoints": [[x, y, score], ...]}]}``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from det.engine.commands._common import (
    USER_ERRORS,
    CommandError,
    announce_config,
    report_user_error,
    setup_cfg,
    show_examples,
)

__all__ = ["instances_to_json", "main", "predict_images", "register", "run"]


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


def predict_images(predictor: Any, image_paths: Sequence[str | os.PathLike], output: str | os.PathLike,
                   metadata: Any = None, confidence_threshold: float = 0.5) -> list[dict]:
    """Run ``predictor`` (a :class:`~det.core.DefaultPredictor`) on each image; write
    ``<output>/<image stem>.png`` visualizations and ``<output>/predictions.json``; return the
    JSON entries. Predictions below ``confidence_threshold`` are left out of both."""
    from det.data.detection_utils import read_image
    from det.engine.visualizer import Visualizer

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    class_names = metadata.get("thing_classes", None) if metadata is not None else None
    entries = []
    used_names: set[str] = set()
    for path in image_paths:
        image = read_image(path, format="BGR")
        instances = predictor(image)["instances"].to("cpu")
        instances = instances[instances.scores >= confidence_threshold]
        visualizer = Visualizer(image[:, :, ::-1], metadata, scale=max(1.0, 384 / max(image.shape[:2])))
        vis = visualizer.draw_instance_predictions(instances)
        stem = Path(path).stem
        name, k = stem, 1
        while name in used_names:  # two inputs with one stem (a/x.png, b/x.png) keep both outputs
            name, k = f"{stem}_{k}", k + 1
        used_names.add(name)
        vis.save(output / f"{name}.png")
        entries.append({"file_name": str(path), "height": int(image.shape[0]), "width": int(image.shape[1]),
                        "visualization": f"{name}.png", "instances": instances_to_json(instances, class_names)})
    with open(output / "predictions.json", "w") as f:
        json.dump(entries, f, indent=1)
    return entries


def main(config_file: str, weights: str, images: Sequence[str], output: str, *,
         confidence_threshold: float = 0.5, opts: Sequence[str] | None = None) -> list[dict]:
    from det.core.predictor import DefaultPredictor
    from det.data.catalog import MetadataCatalog

    if not 0.0 <= confidence_threshold <= 1.0:
        raise CommandError(f"--confidence-threshold must be in [0, 1], got {confidence_threshold}")
    missing = [p for p in images if not os.path.isfile(p)]
    if missing:
        raise CommandError(f"image file(s) not found: {', '.join(missing)}")
    if not os.path.isfile(weights) and "://" not in weights:
        raise CommandError(f"weights file {weights!r} does not exist")
    if config_file.endswith(".py"):
        from det.engine.commands._lazy import LazyPredictor, build_lazy_model, setup_lazy_cfg

        lazy_cfg = setup_lazy_cfg(config_file, opts, weights=weights)
        names = lazy_cfg.dataloader.test.dataset.get("names") if "dataloader" in lazy_cfg else None
        name = names if isinstance(names, str) else (names[0] if names else None)
        metadata = MetadataCatalog.get(name) if name else None
        predictor = LazyPredictor(lazy_cfg, build_lazy_model(lazy_cfg, load=True))
        return predict_images(predictor, images, output, metadata, confidence_threshold)
    cfg = setup_cfg(config_file, opts, weights=weights)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0]) if len(cfg.DATASETS.TEST) else None
    return predict_images(DefaultPredictor(cfg), images, output, metadata, confidence_threshold)


def run(args: argparse.Namespace) -> int:
    try:
        announce_config("predict", args.config_file)
        entries = main(args.config_file, args.weights, args.images, args.output,
                       confidence_threshold=args.confidence_threshold, opts=args.opts)
    except USER_ERRORS as e:
        return report_user_error("predict", e)
    total = sum(len(e["instances"]) for e in entries)
    print(f"{total} predictions on {len(entries)} images written to {args.output} "
          f"(PNG per image, predictions.json)")
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    parser.add_argument("--weights", required=True, metavar="FILE", help="checkpoint (MODEL.WEIGHTS)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the PNGs and predictions.json")
    parser.add_argument("--confidence-threshold", type=float, default=0.5,
                        help="minimum score of the predictions kept (default 0.5)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides: space-separated 'PATH.KEY VALUE' pairs (YAML), or "
                             "'path.key=value' (a LazyConfig .py file)")
    show_examples(parser, __doc__)
    return run
