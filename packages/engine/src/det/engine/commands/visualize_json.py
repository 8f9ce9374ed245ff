"""``det visualize-json``: draw a COCO-format results file (``coco_instances_results.json``, as
COCOEvaluator writes it) beside the ground truth of its dataset; detectron2's
``tools/visualize_json_results.py``.

    det visualize-json --input out/inference/coco_instances_results.json --output vis/ --dataset coco_2017_val
    det visualize-json --input results.json --output vis/ --dataset my_val --datasets-file data/datasets.json

Each image of the dataset becomes ``<output>/<image file stem>.png``: its predictions scoring
above ``--conf-threshold`` on the left, its annotations on the right. Results use the dataset's
category ids (mapped through ``thing_dataset_id_to_contiguous_id``; LVIS ids are 1-based).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from det.engine.commands._common import (
    DATASETS_FILE,
    USER_ERRORS,
    CommandError,
    register_datasets_file,
    report_user_error,
    require_datasets,
    show_examples,
)

__all__ = ["create_instances", "load_results", "main", "register", "run"]


def load_results(path: str | os.PathLike) -> list[dict]:
    """The results list of a COCO-format json file, checked: each item has image_id, category_id,
    bbox (XYWH) and score."""
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"results file {os.fspath(path)!r} does not exist")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CommandError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(results, list):
        raise CommandError(f"{path} must hold a list of COCO results ({{image_id, category_id, bbox, score}}), "
                           f"got {type(results).__name__}")
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not {"image_id", "category_id", "bbox", "score"} <= set(r):
            raise CommandError(f"{path}: result {i} needs image_id, category_id, bbox and score, got {r!r:.200}")
    return results


def _category_mapper(metadata: Any, dataset: str) -> Callable[[int], int]:
    mapping = metadata.get("thing_dataset_id_to_contiguous_id", None)
    if mapping is not None:
        def to_contiguous(dataset_id: int) -> int:
            try:
                return mapping[dataset_id]
            except KeyError:
                raise CommandError(f"category_id {dataset_id} of the results is not a category of {dataset!r} "
                                   f"(ids: {sorted(mapping)})") from None

        return to_contiguous
    if "lvis" in dataset:
        return lambda dataset_id: dataset_id - 1
    raise CommandError(f"dataset {dataset!r} has no thing_dataset_id_to_contiguous_id metadata: cannot map the "
                       "results' category ids (register it with register_coco_instances)")


def create_instances(results: Sequence[dict], image_size: tuple[int, int], conf_threshold: float,
                     to_contiguous: Callable[[int], int]) -> Any:
    """``Instances`` of the results of one image scoring above ``conf_threshold``: pred_boxes
    (XYXY), scores, pred_classes (contiguous ids), pred_masks (RLE) and pred_keypoints (N,K,3)
    when the results have them."""
    import torch

    from det.structures import Boxes, Instances

    chosen = [r for r in results if r["score"] > conf_threshold]
    ret = Instances(image_size)
    ret.scores = torch.tensor([float(r["score"]) for r in chosen], dtype=torch.float32)
    boxes = torch.tensor([list(r["bbox"]) for r in chosen], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # COCO's XYWH -> XYXY
    ret.pred_boxes = Boxes(boxes)
    ret.pred_classes = torch.tensor([to_contiguous(int(r["category_id"])) for r in chosen], dtype=torch.int64)
    if chosen and all("segmentation" in r for r in chosen):
        ret.pred_masks = [r["segmentation"] for r in chosen]
    if chosen and all("keypoints" in r for r in chosen):
        ret.pred_keypoints = torch.tensor([r["keypoints"] for r in chosen], dtype=torch.float32).reshape(
            len(chosen), -1, 3)
    return ret


def main(input: str, output: str, dataset: str = "coco_2017_val", *, conf_threshold: float = 0.5,
         datasets_file: str | None = None, progress: bool = True) -> list[Path]:
    """Write one PNG per image of ``dataset`` (predictions | ground truth); return their paths."""
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    import det.data  # noqa: F401  (registers the built-in datasets)
    from det.data.catalog import DatasetCatalog, MetadataCatalog
    from det.data.detection_utils import read_image
    from det.engine.visualizer import Visualizer

    if not 0.0 <= conf_threshold <= 1.0:
        raise CommandError(f"--conf-threshold must be in [0, 1], got {conf_threshold}")
    if datasets_file is not None:
        if not os.path.isfile(datasets_file):
            raise CommandError(f"datasets file {datasets_file!r} does not exist")
        register_datasets_file(datasets_file)
    results = load_results(input)
    require_datasets([dataset], "--dataset", hint=f"a {DATASETS_FILE} given with --datasets-file")
    dicts = DatasetCatalog.get(dataset)  # loading fills the metadata's id mapping
    metadata = MetadataCatalog.get(dataset)
    to_contiguous = _category_mapper(metadata, dataset)
    by_image: defaultdict[Any, list[dict]] = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    unmatched = set(by_image) - {d.get("image_id") for d in dicts}
    if by_image and len(unmatched) == len(by_image):
        raise CommandError(f"no image_id of {input} is an image of {dataset!r}: wrong --dataset?")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    written = []
    for dic in tqdm(dicts, desc="drawing results", unit="image", disable=not progress):
        image = read_image(dic["file_name"], "RGB")
        predictions = create_instances(by_image.get(dic.get("image_id"), []), image.shape[:2], conf_threshold,
                                       to_contiguous)
        pred = Visualizer(image, metadata).draw_instance_predictions(predictions).get_image()
        gt = Visualizer(image, metadata).draw_dataset_dict(dic).get_image()
        stem = Path(dic["file_name"]).stem
        name, k = stem, 1
        while name in used:
            name, k = f"{stem}_{k}", k + 1
        used.add(name)
        path = out / f"{name}.png"
        Image.fromarray(np.concatenate([pred, gt], axis=1)).save(path)
        written.append(path)
    if unmatched:
        print(f"det visualize-json: {len(unmatched)} image_id(s) of the results are not in {dataset!r}; "
              "their results were not drawn", file=sys.stderr)
    return written


def run(args: argparse.Namespace) -> int:
    try:
        written = main(args.input, args.output, args.dataset, conf_threshold=args.conf_threshold,
                       datasets_file=args.datasets_file, progress=not args.no_progress)
    except USER_ERRORS as e:
        return report_user_error("visualize-json", e)
    print(f"{len(written)} images (predictions | ground truth) written to {args.output}")
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--input", required=True, metavar="FILE", help="COCO-format results json of a model")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--dataset", default="coco_2017_val", help="registered dataset name (default coco_2017_val)")
    parser.add_argument("--conf-threshold", type=float, default=0.5,
                        help="draw predictions scoring above this (default 0.5)")
    parser.add_argument("--datasets-file", default=None, metavar="FILE",
                        help="a datasets.json registering --dataset (as det demo writes one)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    show_examples(parser, __doc__)
    return run
