"""LVIS AP through the official lvis-api (detectron2's ``LVISEvaluator``).

Needs the ``lvis`` package: ``pip install "det-evaluation[lvis]"``.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from det.data.catalog import MetadataCatalog
from det.evaluation.coco_evaluation import InstancePredictionsEvaluator, _evaluate_box_proposals

__all__ = ["LVISEvaluator"]

logger = logging.getLogger(__name__)

_METRICS = {
    "bbox": ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"],
    "segm": ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"],
}


def _import_lvis() -> Any:
    try:
        import lvis
    except ImportError as e:
        raise ImportError(
            'LVISEvaluator needs the official LVIS API (the "lvis" package): pip install "det-evaluation[lvis]"'
        ) from e
    return lvis


class LVISEvaluator(InstancePredictionsEvaluator):
    """LVIS AP (federated: per image, only the categories verified present or absent count) of
    instance predictions against a registered LVIS dataset's json (metadata ``json_file``).

    Results in percent: ``{"bbox": {"AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc",
    "APf"}, "segm": {...}}`` (APr/APc/APf: rare, common, frequent categories), and
    ``{"box_proposals": {"AR@100", ...}}`` for proposals. At most ``max_dets_per_image`` (default
    300, LVIS's official limit) detections per image count::

        evaluator = LVISEvaluator("lvis_v1_val", output_dir="out/")
    """

    def __init__(self, dataset_name: str, tasks: tuple[str, ...] | list[str] | None = None,
                 distributed: bool = True, output_dir: str | None = None, *,
                 max_dets_per_image: int | None = None) -> None:
        lvis = _import_lvis()
        self._logger = logger
        self._configure(tasks, _METRICS, distributed, output_dir)
        self._max_dets_per_image = max_dets_per_image

        self._metadata = MetadataCatalog.get(dataset_name)
        json_file = self._metadata.get("json_file")
        if json_file is None:
            raise ValueError(f"LVISEvaluator: dataset {dataset_name!r} has no 'json_file' metadata")
        if not os.path.isfile(json_file):
            raise FileNotFoundError(
                f"LVIS annotation file {json_file!r} of dataset {dataset_name!r} does not exist (builtin "
                "datasets are looked up under $DETECTRON2_DATASETS, default ./datasets)"
            )
        self._lvis_api = lvis.LVIS(json_file)
        # Test sets (image info only) have no annotations: results files are written, not scored.
        self._do_evaluation = len(self._lvis_api.get_ann_ids()) > 0

    def evaluate(self) -> OrderedDict | dict:
        if not self._evaluate_collected():
            return {}
        return copy.deepcopy(self._results)

    def _tasks_from_predictions(self, predictions: list[dict]) -> tuple[str, ...]:
        for pred in predictions:
            if "segmentation" in pred:
                return ("bbox", "segm")
        return ("bbox",)

    def _eval_predictions(self, predictions: list[dict]) -> None:
        self._logger.info("Preparing results in the LVIS format ...")
        lvis_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        tasks = self._tasks or self._tasks_from_predictions(lvis_results)

        # Predictions use contiguous ids 0..K-1; the json uses the dataset's own ids.
        if hasattr(self._metadata, "thing_dataset_id_to_contiguous_id"):
            reverse_id_mapping = {v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()}
            for result in lvis_results:
                result["category_id"] = reverse_id_mapping[result["category_id"]]
        else:
            for result in lvis_results:  # LVIS ids are 1..K
                result["category_id"] += 1

        self._write_results_json(lvis_results, "lvis_instances_results.json")

        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return

        for task in sorted(tasks):
            self._results[task] = _evaluate_predictions_on_lvis(
                self._lvis_api,
                lvis_results,
                task,
                max_dets_per_image=self._max_dets_per_image,
                class_names=self._metadata.get("thing_classes"),
            )

    def _eval_box_proposals(self, predictions: list[dict]) -> None:
        """Average recall of proposals at 100 and 1000 per image (all / small / medium / large)."""
        if self._output_dir:
            # Saved for the record as detectron2 does: ids, boxes and objectness per image.
            proposal_data = {
                "boxes": [x["proposals"].proposal_boxes.tensor.numpy() for x in predictions],
                "objectness_logits": [x["proposals"].objectness_logits.numpy() for x in predictions],
                "ids": [x["image_id"] for x in predictions],
                "bbox_mode": 0,  # XYXY_ABS
            }
            with open(os.path.join(self._output_dir, "box_proposals.pkl"), "wb") as f:
                pickle.dump(proposal_data, f)
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        res = {}
        areas = {"all": "", "small": "s", "medium": "m", "large": "l"}
        gt_api = _LVISAsCOCO(self._lvis_api)
        for limit in [100, 1000]:
            for area, suffix in areas.items():
                stats = _evaluate_box_proposals(predictions, gt_api, area=area, limit=limit)
                res[f"AR{suffix}@{limit:d}"] = float(stats["ar"].item() * 100)
        self._logger.info("Proposal metrics: %s", res)
        self._results["box_proposals"] = res


class _LVISAsCOCO:
    """The two pycocotools calls the proposal recall uses, over an LVIS api (no crowds in LVIS)."""

    def __init__(self, lvis_api: Any) -> None:
        self._api = lvis_api

    def getAnnIds(self, imgIds: Any) -> list[int]:
        return list(self._api.get_ann_ids(img_ids=[imgIds] if not isinstance(imgIds, list) else imgIds))

    def loadAnns(self, ids: list[int]) -> list[dict]:
        return [{**ann, "iscrowd": 0} for ann in self._api.load_anns(ids)]


@contextlib.contextmanager
def _numpy_float_alias() -> Iterator[None]:
    """lvis 0.5.3 (the release on PyPI) calls ``np.float``, which numpy 1.24 removed; fixed on
    lvis-api's main branch (lvis-dataset/lvis-api#37) but not released. Provide the old alias
    (the builtin float, exactly what it was) for the duration of the evaluation only."""
    if "float" in np.__dict__:
        yield
        return
    np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        np.__dict__.pop("float", None)


def _evaluate_predictions_on_lvis(
    lvis_gt: Any,
    lvis_results: list[dict],
    iou_type: str,
    max_dets_per_image: int | None = None,
    class_names: list[str] | None = None,
) -> dict[str, float]:
    """Run LVISEval and return its summary metrics in percent (NaN without predictions)."""
    metrics = _METRICS[iou_type]
    if len(lvis_results) == 0:
        logger.warning("No predictions from the model!")
        return {metric: float("nan") for metric in metrics}
    if iou_type == "segm":
        lvis_results = copy.deepcopy(lvis_results)
        # With a "bbox" field, LVISResults would use it instead of the mask to compute areas.
        for c in lvis_results:
            c.pop("bbox", None)
    if max_dets_per_image is None:
        max_dets_per_image = 300  # LVIS's official limit

    from lvis import LVISEval, LVISResults

    with warnings.catch_warnings():
        # lvis 0.5.3 calls the deprecated Logger.warn; not the user's concern.
        warnings.filterwarnings(
            "ignore", message="The 'warn' method is deprecated", category=DeprecationWarning
        )
        results_api = LVISResults(lvis_gt, lvis_results, max_dets=max_dets_per_image)
        lvis_eval = LVISEval(lvis_gt, results_api, iou_type)
        with _numpy_float_alias():
            lvis_eval.run()
        lvis_eval.print_results()
    raw = lvis_eval.get_results()
    results = {metric: float(raw[metric] * 100) for metric in metrics}
    logger.info("Evaluation results for %s: %s", iou_type, results)
    return results
