"""Panoptic quality (PQ = SQ x RQ) of panoptic predictions, computed in memory.

det reimplements the COCO panoptic protocol (Kirillov et al., "Panoptic Segmentation") instead
of depending on panopticapi: a predicted and a ground-truth segment of the same category match
when their IoU exceeds 0.5, where the union leaves out predicted pixels on unlabeled (void)
ground truth; unmatched predictions that lie mostly on void or on a crowd region of their
category are not counted as false positives.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from typing import Any

import numpy as np
import torch
from PIL import Image

from det.data import comm
from det.data.catalog import DatasetCatalog, MetadataCatalog
from det.evaluation.evaluator import DatasetEvaluator

__all__ = ["COCOPanopticEvaluator", "PQStat", "pq_compute_single_image", "rgb2id"]

logger = logging.getLogger(__name__)

VOID = 0
OFFSET = 256 * 256 * 256


def rgb2id(color: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colours to segment ids: ``R + 256 G + 256^2 B``."""
    color = np.asarray(color)
    if color.ndim == 3 and color.shape[2] == 3:
        color = color.astype(np.int64)
        return color[:, :, 0] + 256 * color[:, :, 1] + 256 * 256 * color[:, :, 2]
    return color.astype(np.int64)


class PQStat:
    """Per-category accumulators (summed IoU of matches, TP, FP, FN) and their PQ/SQ/RQ.

    stat = PQStat(); stat += pq_compute_single_image(gt, gt_info, pred, pred_info)
    stat.pq_average(categories, isthing=None)  # {"pq": ..., "sq": ..., "rq": ..., "n": ...}
    """

    def __init__(self) -> None:
        self.pq_per_cat: dict[Any, dict[str, float]] = defaultdict(
            lambda: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0}
        )

    def __getitem__(self, i: Any) -> dict[str, float]:
        return self.pq_per_cat[i]

    def __iadd__(self, other: PQStat) -> PQStat:
        for label, s in other.pq_per_cat.items():
            for k in ("iou", "tp", "fp", "fn"):
                self.pq_per_cat[label][k] += s[k]
        return self

    def pq_average(self, categories: dict[Any, dict], isthing: bool | None) -> tuple[dict[str, float], dict]:
        """Average over categories (all, things only or stuff only) that appear in either the
        ground truth or the predictions."""
        pq = sq = rq = 0.0
        n = 0
        per_class_results = {}
        for label, label_info in categories.items():
            if isthing is not None and bool(label_info["isthing"]) != isthing:
                continue
            s = self.pq_per_cat.get(label, {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})
            iou, tp, fp, fn = s["iou"], s["tp"], s["fp"], s["fn"]
            if tp + fp + fn == 0:
                per_class_results[label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            pq_class = iou / (tp + 0.5 * fp + 0.5 * fn)
            sq_class = iou / tp if tp != 0 else 0.0
            rq_class = tp / (tp + 0.5 * fp + 0.5 * fn)
            per_class_results[label] = {"pq": pq_class, "sq": sq_class, "rq": rq_class}
            pq += pq_class
            sq += sq_class
            rq += rq_class
        if n == 0:
            return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}, per_class_results
        return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per_class_results


def _category_key(info: dict) -> tuple[bool, int]:
    return (bool(info.get("isthing", True)), int(info["category_id"]))


def pq_compute_single_image(
    pan_gt: np.ndarray, gt_segments: list[dict], pan_pred: np.ndarray, pred_segments: list[dict]
) -> PQStat:
    """PQ statistics of one image.

    ``pan_gt``/``pan_pred`` are (H,W) segment-id maps (0 = void/unlabeled); each segments list
    has dicts with ``id``, ``category_id``, ``isthing`` (and ``iscrowd`` for ground truth).
    Categories are keyed by (isthing, category_id).
    """
    pan_gt = np.asarray(pan_gt, dtype=np.int64)
    pan_pred = np.asarray(pan_pred, dtype=np.int64)
    if pan_gt.shape != pan_pred.shape:
        raise ValueError(
            f"panoptic prediction shape {pan_pred.shape} differs from ground truth {pan_gt.shape}"
        )
    stat = PQStat()
    gt_segms = {int(el["id"]): dict(el) for el in gt_segments}
    pred_segms = {int(el["id"]): dict(el) for el in pred_segments}

    labels, counts = np.unique(pan_gt, return_counts=True)
    for label, count in zip(labels, counts):
        if label == VOID:
            continue
        if label not in gt_segms:
            raise KeyError(f"ground-truth segment id {label} is in the PNG but not in segments_info")
        gt_segms[label]["area"] = int(count)
    labels, counts = np.unique(pan_pred, return_counts=True)
    for label, count in zip(labels, counts):
        if label == VOID:
            continue
        if label not in pred_segms:
            raise KeyError(
                f"In the image, segment with ID {label} is presented in PNG and not presented in JSON."
            )
        pred_segms[label]["area"] = int(count)
    # Segments listed but absent from the map have no pixels: they neither match nor count.
    gt_segms = {k: v for k, v in gt_segms.items() if v.get("area", 0) > 0}
    pred_segms = {k: v for k, v in pred_segms.items() if v.get("area", 0) > 0}

    # Intersections of every (gt, pred) pair, in one pass over a combined id.
    pan_gt_pred = pan_gt * OFFSET + pan_pred
    gt_pred_map = {}
    labels, counts = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, counts):
        gt_id, pred_id = int(label // OFFSET), int(label % OFFSET)
        gt_pred_map[(gt_id, pred_id)] = int(intersection)

    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        if gt_segms[gt_label].get("iscrowd", 0) == 1:
            continue
        if _category_key(gt_segms[gt_label]) != _category_key(pred_segms[pred_label]):
            continue
        union = (
            pred_segms[pred_label]["area"]
            + gt_segms[gt_label]["area"]
            - intersection
            - gt_pred_map.get((VOID, pred_label), 0)
        )
        iou = intersection / union
        if iou > 0.5:
            key = _category_key(gt_segms[gt_label])
            stat[key]["tp"] += 1
            stat[key]["iou"] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info.get("iscrowd", 0) == 1:
            crowd_labels_dict[_category_key(gt_info)] = gt_label
            continue
        stat[_category_key(gt_info)]["fn"] += 1

    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        key = _category_key(pred_info)
        if key in crowd_labels_dict:
            intersection += gt_pred_map.get((crowd_labels_dict[key], pred_label), 0)
        # Mostly on void or on a crowd region of its class: not a false positive.
        if intersection / pred_info["area"] > 0.5:
            continue
        stat[key]["fp"] += 1
    return stat


def _panoptic_ground_truth(dataset_name: str, meta: Any) -> list[dict]:
    """The dataset's dicts, or, when its metadata names the COCO panoptic json, PNG folder and
    image folder (detectron2's builtin panoptic datasets do), those read with the metadata's id
    maps, as detectron2's evaluator does: Panoptic FPN's "separated" datasets hold instance
    annotations and semantic PNGs, so their panoptic ground truth is only there."""
    json_file, image_root, panoptic_root = (
        meta.get(k) for k in ("panoptic_json", "image_root", "panoptic_root")
    )
    if all(isinstance(p, str) and p for p in (json_file, image_root, panoptic_root)):
        from det.data.datasets.coco_panoptic import load_coco_panoptic_json

        return load_coco_panoptic_json(json_file, image_root, panoptic_root, meta.as_dict())
    return DatasetCatalog.get(dataset_name)


class COCOPanopticEvaluator(DatasetEvaluator):
    """PQ, SQ, RQ (all / things / stuff) of ``panoptic_seg`` outputs against a dataset whose
    dicts have ``pan_seg_file_name`` (COCO panoptic PNG) and ``segments_info``, or whose
    metadata names ``panoptic_json``, ``panoptic_root`` and ``image_root`` (then read from those).

    Results: ``{"panoptic_seg": {"PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st",
    "RQ_st"}}`` in percent. Category ids of predictions and ground truth must use the same
    (contiguous) numbering::

        evaluator = COCOPanopticEvaluator("my_panoptic_val")
    """

    def __init__(self, dataset_name: str, output_dir: str | None = None, distributed: bool = True) -> None:
        self._metadata = MetadataCatalog.get(dataset_name)
        self._output_dir = output_dir
        self._distributed = distributed
        # ground truth by image_id, as detectron2 matches predictions to the panoptic json (the
        # json's image file names are not always the inputs', e.g. Cityscapes'), else by file_name
        self._gt_by_id: dict[Any, tuple[str, list[dict]]] = {}
        self._gt_by_file: dict[str, tuple[str, list[dict]]] = {}
        for d in _panoptic_ground_truth(dataset_name, self._metadata):
            if "pan_seg_file_name" not in d or "segments_info" not in d:
                raise ValueError(
                    f"COCOPanopticEvaluator: dataset {dataset_name!r} dicts need 'pan_seg_file_name' and 'segments_info'"
                )
            if "image_id" in d:
                self._gt_by_id[d["image_id"]] = (d["pan_seg_file_name"], d["segments_info"])
            if "file_name" in d:
                self._gt_by_file[d["file_name"]] = (d["pan_seg_file_name"], d["segments_info"])
        self._stats = PQStat()
        self._categories: dict[Any, dict] = {}
        self._label_divisor = self._metadata.get("label_divisor", None)
        thing_map = self._metadata.get("thing_dataset_id_to_contiguous_id", None)
        self._thing_contiguous_ids = set(thing_map.values()) if thing_map else set()

    def reset(self) -> None:
        self._stats = PQStat()
        self._categories = {}

    def _ground_truth_of(self, input: dict) -> tuple[str, list[dict]]:
        found = self._gt_by_id.get(input["image_id"]) if "image_id" in input else None
        if found is None:
            found = self._gt_by_file.get(input.get("file_name", ""))
        if found is None:
            raise KeyError(f"COCOPanopticEvaluator: no panoptic ground truth for image_id {input.get('image_id')!r} "
                           f"/ file_name {input.get('file_name')!r} in the dataset's annotations")
        return found

    def _note_categories(self, segments: list[dict]) -> None:
        for s in segments:
            self._categories.setdefault(_category_key(s), {"isthing": bool(s.get("isthing", True))})

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for input, output in zip(inputs, outputs):
            panoptic_img, segments_info = output["panoptic_seg"]
            panoptic_img = (
                panoptic_img.cpu().numpy()
                if isinstance(panoptic_img, torch.Tensor)
                else np.asarray(panoptic_img)
            )
            panoptic_img = panoptic_img.astype(np.int64)
            if segments_info is None:
                # Ids are category_id * label_divisor + instance_id, -1 is void; shift so 0 is void.
                if self._label_divisor is None:
                    raise ValueError("panoptic_seg without segments_info needs metadata 'label_divisor'")
                segments_info = []
                for panoptic_label in np.unique(panoptic_img):
                    if panoptic_label == -1:
                        continue
                    pred_class = int(panoptic_label) // self._label_divisor
                    segments_info.append(
                        {
                            "id": int(panoptic_label) + 1,
                            "category_id": pred_class,
                            "isthing": pred_class in self._thing_contiguous_ids,
                        }
                    )
                panoptic_img = panoptic_img + 1
            pan_seg_file_name, gt_segments = self._ground_truth_of(input)
            with open(pan_seg_file_name, "rb") as f:
                pan_gt = rgb2id(np.array(Image.open(f)))
            self._note_categories(gt_segments)
            self._note_categories(segments_info)
            self._stats += pq_compute_single_image(pan_gt, gt_segments, panoptic_img, segments_info)

    def evaluate(self) -> OrderedDict | None:
        stats, categories = self._stats, self._categories
        if self._distributed:
            comm.synchronize()
            all_stats = comm.gather((stats, categories), dst=0)
            if not comm.is_main_process():
                return None
            stats, categories = PQStat(), {}
            for s, c in all_stats:
                stats += s
                categories.update(c)
        results = {}
        for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            results[name], per_class = stats.pq_average(categories, isthing=isthing)
            if name == "All":
                results["per_class"] = per_class
        res = {
            "PQ": 100 * results["All"]["pq"],
            "SQ": 100 * results["All"]["sq"],
            "RQ": 100 * results["All"]["rq"],
            "PQ_th": 100 * results["Things"]["pq"],
            "SQ_th": 100 * results["Things"]["sq"],
            "RQ_th": 100 * results["Things"]["rq"],
            "PQ_st": 100 * results["Stuff"]["pq"],
            "SQ_st": 100 * results["Stuff"]["sq"],
            "RQ_st": 100 * results["Stuff"]["rq"],
        }
        logger.info("Panoptic Evaluation Results: %s", res)
        return OrderedDict({"panoptic_seg": res})


# The segments of a gathered PQStat are plain dicts; keep defaultdict picklable across ranks.
def _pqstat_reduce(self: PQStat) -> tuple:
    return (_rebuild_pqstat, ({k: dict(v) for k, v in self.pq_per_cat.items()},))


def _rebuild_pqstat(d: dict) -> PQStat:
    s = PQStat()
    for k, v in d.items():
        s.pq_per_cat[k].update(v)
    return s


PQStat.__reduce__ = _pqstat_reduce  # type: ignore[method-assign,assignment]
