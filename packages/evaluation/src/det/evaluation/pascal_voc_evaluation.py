"""Pascal VOC box AP (detectron2's ``PascalVOCDetectionEvaluator``).

The metric of the VOC devkit, re-implemented in Python as detectron2 does (so results are
close to, not identical with, the official Matlab code): per class, detections sorted by score
are matched greedily to the ground truth of their image, a match needs IoU > threshold (IoU
with VOC's inclusive pixel boxes, +1 on widths and heights), a second detection of an already
matched object is a false positive, and ``difficult`` objects count neither way. AP is the
11-point interpolated precision for VOC2007 and the area under the precision envelope for the
other years. Reported in percent, averaged over classes::

    evaluator = PascalVOCDetectionEvaluator("voc_2007_test")
    evaluator.evaluate()  # {"bbox": {"AP": AP@[.5:.95], "AP50": ..., "AP75": ...}}
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections import OrderedDict, defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from det.data import comm
from det.data.catalog import MetadataCatalog
from det.evaluation.evaluator import DatasetEvaluator

__all__ = ["PascalVOCDetectionEvaluator", "parse_voc_annotation", "voc_ap", "voc_eval_class"]

logger = logging.getLogger(__name__)

# One detection: (image id, score, [xmin, ymin, xmax, ymax] in VOC's 1-based inclusive pixels).
Detection = tuple[str, float, Sequence[float]]

# IoU thresholds of the reported AP: 0.50, 0.55, ..., 0.95 (in percent, exact as integers).
_THRESHOLDS = tuple(range(50, 100, 5))


def parse_voc_annotation(xml_file: str) -> list[dict]:
    """The objects of a VOC annotation file: ``{"name", "difficult" (bool), "bbox"}`` with the
    box as written (1-based inclusive pixel indices). A missing ``<difficult>`` means 0."""
    tree = ET.parse(xml_file)
    objects = []
    for obj in tree.findall("object"):
        box = obj.find("bndbox")
        name = obj.findtext("name")
        if box is None or name is None:
            raise ValueError(f"{xml_file}: an <object> lacks <name> or <bndbox>")
        objects.append(
            {
                "name": name.strip(),
                "difficult": bool(int(obj.findtext("difficult", "0").strip() or 0)),
                "bbox": [float(box.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax")],
            }
        )
    return objects


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = False) -> float:
    """AP of a precision/recall curve (points in detection order).

    ``use_07_metric``: mean over recall levels 0, 0.1, ..., 1 of the best precision at recall >=
    that level (0 when never reached). Otherwise: precision is made monotone (each point takes
    the best precision at any higher recall) and integrated over recall as a step function.
    """
    rec, prec = np.asarray(rec, dtype=np.float64), np.asarray(prec, dtype=np.float64)
    if use_07_metric:
        ap = 0.0
        # np.arange's levels, with their float error (0.30000000000000004, ...), as the devkit
        # port has them: recall exactly 0.3 does not reach that level.
        for t in np.arange(0.0, 1.1, 0.1):
            reached = rec >= t
            ap += (float(np.max(prec[reached])) if reached.any() else 0.0) / 11.0
        return ap
    recall = np.concatenate(([0.0], rec, [1.0]))
    precision = np.concatenate(([0.0], prec, [0.0]))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def voc_eval_class(
    detections: Sequence[Detection],
    annotations: dict[str, list[dict]],
    classname: str,
    ovthresh: float = 0.5,
    use_07_metric: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(recall, precision, AP)`` of one class's ``detections`` against ``annotations``
    (image id -> :func:`parse_voc_annotation` objects, every image of the split).

    Detections are taken by decreasing score (ties keep their order); each one matches the
    ground-truth box of its image with the highest IoU, if that IoU > ``ovthresh``: a true
    positive when the object is not difficult and not matched yet, a false positive when it was
    matched already, nothing when it is difficult. Recall is over the non-difficult objects; a
    class without any gives AP 0.
    """
    gt: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    npos = 0
    for image_id, objects in annotations.items():
        mine = [o for o in objects if o["name"] == classname]
        boxes = np.array([o["bbox"] for o in mine], dtype=np.float64).reshape(-1, 4)
        difficult = np.array([o["difficult"] for o in mine], dtype=bool)
        npos += int((~difficult).sum())
        gt[image_id] = (boxes, difficult, np.zeros(len(mine), dtype=bool))

    scores = np.array([d[1] for d in detections], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for rank, index in enumerate(order):
        image_id, _, box = detections[index]
        try:
            boxes, difficult, matched = gt[image_id]
        except KeyError:
            raise KeyError(
                f"A detection is for image {image_id!r}, which is not in the evaluated split"
            ) from None
        best_iou, best = -np.inf, -1
        if len(boxes):
            bb = np.asarray(box, dtype=np.float64)
            iw = np.maximum(np.minimum(boxes[:, 2], bb[2]) - np.maximum(boxes[:, 0], bb[0]) + 1.0, 0.0)
            ih = np.maximum(np.minimum(boxes[:, 3], bb[3]) - np.maximum(boxes[:, 1], bb[1]) + 1.0, 0.0)
            inter = iw * ih
            union = (
                (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                + (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
                - inter
            )
            ious = inter / union
            best = int(np.argmax(ious))
            best_iou = ious[best]
        if best_iou > ovthresh:
            if difficult[best]:
                continue  # neither right nor wrong
            if matched[best]:
                fp[rank] = 1.0
            else:
                tp[rank] = 1.0
                matched[best] = True
        else:
            fp[rank] = 1.0

    tp, fp = np.cumsum(tp), np.cumsum(fp)
    if npos == 0:
        return np.zeros_like(tp), np.zeros_like(tp), 0.0
    rec = tp / float(npos)
    # a first detection that hits a difficult object leaves tp + fp = 0
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec, voc_ap(rec, prec, use_07_metric)


class PascalVOCDetectionEvaluator(DatasetEvaluator):
    """VOC box AP of a dataset registered with ``register_pascal_voc`` (metadata ``dirname``,
    ``split``, ``year``, ``thing_classes``); the ground truth is read from ``dirname``'s XML
    files, difficult flags included. Outputs must hold ``instances`` (pred_boxes, scores,
    pred_classes) and inputs ``image_id`` (the VOC id, as the loader sets it). Call on every
    rank: predictions are gathered to the main process, which alone returns the results.

        evaluator = PascalVOCDetectionEvaluator("voc_2007_test")  # 11-point AP (year 2007)
    """

    def __init__(self, dataset_name: str) -> None:
        self._dataset_name = dataset_name
        meta = MetadataCatalog.get(dataset_name)
        for key in ("dirname", "split", "year", "thing_classes"):
            if meta.get(key) is None:
                raise ValueError(
                    f"PascalVOCDetectionEvaluator: dataset {dataset_name!r} has no {key!r} metadata; "
                    "register it with register_pascal_voc"
                )
        if meta.year not in (2007, 2012):
            raise ValueError(f"PascalVOCDetectionEvaluator: year must be 2007 or 2012, got {meta.year!r}")
        self._anno_file_template = os.path.join(meta.dirname, "Annotations", "{}.xml")
        self._image_set_path = os.path.join(meta.dirname, "ImageSets", "Main", meta.split + ".txt")
        self._class_names = list(meta.thing_classes)
        self._is_2007 = meta.year == 2007
        self._cpu_device = torch.device("cpu")
        self.reset()

    def reset(self) -> None:
        self._predictions: dict[int, list[Detection]] = defaultdict(list)  # class id -> detections

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            image_id = str(inp["image_id"])
            instances = out["instances"].to(self._cpu_device)
            boxes = instances.pred_boxes.tensor.numpy().tolist()
            scores = instances.scores.tolist()
            classes = instances.pred_classes.tolist()
            for (x0, y0, x1, y1), score, cls in zip(boxes, scores, classes):
                # Back to VOC's 1-based pixels (the loader's -1 undone). Score to 3 decimals and
                # corners to 0.1 px, the precision of detectron2's result files.
                box = (round(x0 + 1.0, 1), round(y0 + 1.0, 1), round(x1, 1), round(y1, 1))
                self._predictions[int(cls)].append((image_id, round(score, 3), box))

    def _annotations(self) -> dict[str, list[dict]]:
        with open(self._image_set_path) as f:
            image_ids = [line.split()[0] for line in f if line.strip()]
        return {i: parse_voc_annotation(self._anno_file_template.format(i)) for i in image_ids}

    def evaluate(self) -> dict | None:
        """``{"bbox": {"AP", "AP50", "AP75"}}``: the class-mean AP at IoU 0.5 and 0.75 and its
        mean over IoU 0.5, 0.55, ..., 0.95, in percent."""
        gathered = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return None
        predictions: dict[int, list[Detection]] = defaultdict(list)
        for per_rank in gathered:
            for cls, dets in per_rank.items():
                predictions[cls].extend(dets)

        logger.info(
            "Evaluating %s using the VOC%d metric (a Python port: close to, not identical with, "
            "the official Matlab code).",
            self._dataset_name,
            2007 if self._is_2007 else 2012,
        )
        annotations = self._annotations()
        aps: dict[int, list[float]] = defaultdict(list)  # IoU threshold -> AP of each class
        for cls_id, cls_name in enumerate(self._class_names):
            if not any(o["name"] == cls_name and not o["difficult"] for v in annotations.values() for o in v):
                logger.warning(
                    "%s: class %r has no (non-difficult) object; its AP is 0", self._dataset_name, cls_name
                )
            for thresh in _THRESHOLDS:
                _, _, ap = voc_eval_class(
                    predictions.get(cls_id, []),
                    annotations,
                    cls_name,
                    ovthresh=thresh / 100.0,
                    use_07_metric=self._is_2007,
                )
                aps[thresh].append(ap * 100)

        mean_ap = {t: float(np.mean(v)) for t, v in aps.items()}
        return OrderedDict(
            bbox={"AP": float(np.mean(list(mean_ap.values()))), "AP50": mean_ap[50], "AP75": mean_ap[75]}
        )
