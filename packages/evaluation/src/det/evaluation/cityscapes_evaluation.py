"""Cityscapes metrics (detectron2's ``CityscapesSemSegEvaluator`` / ``CityscapesInstanceEvaluator``).

Semantic segmentation is computed here, with the official protocol of cityscapesscripts'
evalPixelLevelSemanticLabeling.py: a confusion matrix of ground-truth vs. predicted *label ids*
(``*_gtFine_labelIds.png``), IoU per class over the 19 evaluated classes, IoU per category, and
their instance-weighted variants iIoU (``*_gtFine_instanceIds.png``). Instance segmentation AP
needs the official cityscapesscripts package (``pip install "det-evaluation[cityscapes]"``): its
matching of overlapping instances, crowd regions and minimum sizes is a protocol of its own that
det does not re-implement.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import tempfile
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from PIL import Image

from det.data import comm
from det.data.catalog import MetadataCatalog
from det.data.datasets.cityscapes import CITYSCAPES_LABELS, ID_TO_LABEL, NAME_TO_LABEL, STUFF_LABELS
from det.evaluation.evaluator import DatasetEvaluator

__all__ = ["CityscapesEvaluator", "CityscapesInstanceEvaluator", "CityscapesSemSegEvaluator"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIX = "leftImg8bit.png"

# Mean instance size (pixels) of each class over the Cityscapes training set: the weights of the
# instance-level iIoU, as published with cityscapesscripts.
AVG_CLASS_SIZE = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}

_EVAL_IDS = [lb.id for lb in CITYSCAPES_LABELS if lb.id >= 0]  # every label, ignored or not
_NUM_IDS = max(_EVAL_IDS) + 1
_NOT_IGNORED = [i for i in _EVAL_IDS if not ID_TO_LABEL[i].ignoreInEval]
_CATEGORIES = list(dict.fromkeys(lb.category for lb in CITYSCAPES_LABELS))
# Instance-level statistics: classes with instances that are evaluated, and categories whose
# labels all have instances (human, vehicle).
_INST_CLASSES = [lb.name for lb in CITYSCAPES_LABELS if lb.hasInstances and not lb.ignoreInEval]
_INST_CATEGORIES = {
    cat: [lb.id for lb in CITYSCAPES_LABELS if lb.category == cat and lb.id >= 0]
    for cat in _CATEGORIES
    if all(lb.hasInstances for lb in CITYSCAPES_LABELS if lb.category == cat and lb.id >= 0)
}
# Prediction channel (trainId) -> label id.
_TRAIN_ID_TO_ID = np.array([lb.id for lb in STUFF_LABELS], dtype=np.int64)


class CityscapesEvaluator(DatasetEvaluator):
    """Base of the Cityscapes evaluators: the dataset's metadata (``gt_dir``, ``image_dir``,
    ``thing_classes``) and a working folder shared by all ranks."""

    def __init__(self, dataset_name: str) -> None:
        self._dataset_name = dataset_name
        self._metadata = MetadataCatalog.get(dataset_name)
        self._cpu_device = torch.device("cpu")
        self._working_dir: tempfile.TemporaryDirectory | None = None
        self._temp_dir = ""

    def reset(self) -> None:
        self._working_dir = tempfile.TemporaryDirectory(prefix="cityscapes_eval_")
        self._temp_dir = self._working_dir.name
        # Every rank writes into rank 0's folder (they share a file system, as in detectron2).
        self._temp_dir = comm.all_gather(self._temp_dir)[0]
        if self._temp_dir != self._working_dir.name:
            self._working_dir.cleanup()
        logger.info("Writing cityscapes results to temporary directory %s ...", self._temp_dir)

    def _gt_file(self, image_file: str, suffix: str) -> str:
        """The gtFine file (``suffix``, e.g. "gtFine_labelIds.png") of one leftImg8bit image."""
        gt_dir = self._metadata.get("gt_dir")
        if gt_dir is None:
            raise ValueError(
                f"dataset {self._dataset_name!r} has no 'gt_dir' metadata (Cityscapes gtFine folder)"
            )
        if not image_file.endswith(_IMAGE_SUFFIX):
            raise ValueError(f"Cityscapes image {image_file!r} does not end with {_IMAGE_SUFFIX!r}")
        image_dir = self._metadata.get("image_dir")
        if image_dir is not None:
            relative = os.path.relpath(image_file, image_dir)
        else:  # <city>/<stem>_leftImg8bit.png
            relative = os.path.join(
                os.path.basename(os.path.dirname(image_file)), os.path.basename(image_file)
            )
        path = os.path.join(gt_dir, relative[: -len(_IMAGE_SUFFIX)] + suffix)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Cityscapes ground truth {path!r} (of image {image_file!r}) does not exist"
            )
        return path


class CityscapesSemSegEvaluator(CityscapesEvaluator):
    """Cityscapes' official semantic-segmentation scores of ``sem_seg`` outputs (19 trainId
    channels), in percent: ``{"sem_seg": {"IoU", "iIoU", "IoU_sup", "iIoU_sup"}}`` (class IoU,
    instance-weighted class IoU, and both over the 7 categories), as cityscapesscripts reports
    them. Ground truth: the ``*_gtFine_labelIds.png`` / ``*_gtFine_instanceIds.png`` of each
    processed image, found through the dataset's ``gt_dir`` metadata::

        evaluator = CityscapesSemSegEvaluator("cityscapes_fine_sem_seg_val")

    Unlike detectron2 (which evaluates every ground-truth file under ``gt_dir`` and fails on a
    missing prediction), the scores cover the images processed.
    """

    def __init__(self, dataset_name: str) -> None:
        super().__init__(dataset_name)
        self._init_stats()

    def _init_stats(self) -> None:
        self._conf_matrix = np.zeros((_NUM_IDS, _NUM_IDS), dtype=np.int64)  # rows: gt, columns: pred
        self._inst_class = {name: np.zeros(2) for name in _INST_CLASSES}  # weighted (tp, fn)
        self._inst_category = {cat: np.zeros(2) for cat in _INST_CATEGORIES}

    def reset(self) -> None:
        self._init_stats()

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for input, output in zip(inputs, outputs):
            scores = output["sem_seg"]
            if scores.ndim != 3 or scores.shape[0] != len(STUFF_LABELS):
                raise ValueError(
                    f"CityscapesSemSegEvaluator: sem_seg must be ({len(STUFF_LABELS)},H,W) scores over "
                    f"the trainIds, got {tuple(scores.shape)}"
                )
            train_ids = scores.argmax(dim=0).to(self._cpu_device).numpy()
            pred = _TRAIN_ID_TO_ID[train_ids]
            gt = np.asarray(
                Image.open(self._gt_file(input["file_name"], "gtFine_labelIds.png")), dtype=np.int64
            )
            instances = np.asarray(
                Image.open(self._gt_file(input["file_name"], "gtFine_instanceIds.png")), dtype=np.int64
            )
            self.add_image(pred, gt, instances)

    def add_image(self, pred: np.ndarray, gt: np.ndarray, instances: np.ndarray | None = None) -> None:
        """Count one image: ``pred`` and ``gt`` are (H, W) label ids, ``instances`` the
        instanceIds image (needed for iIoU)."""
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
        if gt.min() < 0 or gt.max() >= _NUM_IDS:
            raise ValueError(f"ground truth holds label ids outside 0..{_NUM_IDS - 1}")
        self._conf_matrix += np.bincount(
            gt.reshape(-1) * _NUM_IDS + pred.reshape(-1), minlength=_NUM_IDS * _NUM_IDS
        ).reshape(_NUM_IDS, _NUM_IDS)
        if instances is None:
            return
        category_masks = {cat: np.isin(pred, ids) for cat, ids in _INST_CATEGORIES.items()}
        # As cityscapesscripts: instance ids above 1000 (label * 1000 + index; crowds have none).
        for inst_id in np.unique(instances[instances > 1000]).tolist():
            label = ID_TO_LABEL[inst_id // 1000]
            if label.ignoreInEval or label.name not in self._inst_class:
                continue
            mask = instances == inst_id
            size = int(mask.sum())
            weight = AVG_CLASS_SIZE[label.name] / size
            tp = int(np.count_nonzero(pred[mask] == label.id))
            self._inst_class[label.name] += weight * np.array([tp, size - tp])
            if label.category in category_masks:
                cat_tp = int(np.count_nonzero(category_masks[label.category][mask]))
                self._inst_category[label.category] += weight * np.array([cat_tp, size - cat_tp])

    def evaluate(self) -> OrderedDict | None:
        comm.synchronize()
        conf = self._conf_matrix.copy()
        inst_class = {k: v.copy() for k, v in self._inst_class.items()}
        inst_category = {k: v.copy() for k, v in self._inst_category.items()}
        if comm.get_world_size() > 1:
            gathered = comm.all_gather((self._conf_matrix, self._inst_class, self._inst_category))
            if not comm.is_main_process():
                return None
            conf = sum(g[0] for g in gathered)
            inst_class = {k: sum(g[1][k] for g in gathered) for k in inst_class}
            inst_category = {k: sum(g[2][k] for g in gathered) for k in inst_category}
        scores = cityscapes_semantic_scores(conf, inst_class, inst_category)
        ret = OrderedDict(
            sem_seg={
                "IoU": 100.0 * scores["averageScoreClasses"],
                "iIoU": 100.0 * scores["averageScoreInstClasses"],
                "IoU_sup": 100.0 * scores["averageScoreCategories"],
                "iIoU_sup": 100.0 * scores["averageScoreInstCategories"],
            }
        )
        logger.info("%s", ret)
        return ret


def _nanmean(values: list[float]) -> float:
    valid = [v for v in values if not math.isnan(v)]
    return sum(valid) / len(valid) if valid else float("nan")


def cityscapes_semantic_scores(
    conf_matrix: np.ndarray,
    inst_class: dict[str, np.ndarray] | None = None,
    inst_category: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """cityscapesscripts' scores from a (34, 34) gt-by-prediction confusion matrix of label ids
    and the instance-weighted (tp, fn) sums: per class/category IoU (NaN when undefined or
    ignored) and their averages over the defined ones, as fractions."""
    conf = conf_matrix.astype(np.int64)
    class_scores: dict[str, float] = {}
    class_inst_scores: dict[str, float] = {}
    for label_id in _EVAL_IDS:
        label = ID_TO_LABEL[label_id]
        if label.ignoreInEval:
            class_scores[label.name] = class_inst_scores[label.name] = float("nan")
            continue
        tp = int(conf[label_id, label_id])
        fn = int(conf[label_id, :].sum()) - tp
        # False positives only on pixels whose ground truth is another evaluated class.
        fp = int(conf[[i for i in _NOT_IGNORED if i != label_id], label_id].sum())
        denom = tp + fp + fn
        class_scores[label.name] = tp / denom if denom else float("nan")
        stats = (inst_class or {}).get(label.name)
        if stats is None:
            class_inst_scores[label.name] = float("nan")
        else:
            denom_w = stats[0] + fp + stats[1]
            class_inst_scores[label.name] = float(stats[0] / denom_w) if denom_w else float("nan")

    category_scores: dict[str, float] = {}
    category_inst_scores: dict[str, float] = {}
    for category in _CATEGORIES:
        ids = [
            lb.id
            for lb in CITYSCAPES_LABELS
            if lb.category == category and not lb.ignoreInEval and lb.id >= 0
        ]
        others = [i for i in _NOT_IGNORED if ID_TO_LABEL[i].category != category]
        if not ids:
            category_scores[category] = float("nan")
        else:
            tp = int(conf[np.ix_(ids, ids)].sum())
            fn = int(conf[ids, :].sum()) - tp
            fp = int(conf[np.ix_(others, ids)].sum())
            denom = tp + fp + fn
            category_scores[category] = tp / denom if denom else float("nan")
        stats = (inst_category or {}).get(category)
        if stats is None:
            category_inst_scores[category] = float("nan")
        else:
            inst_ids = _INST_CATEGORIES[category]
            fp = int(conf[np.ix_(others, inst_ids)].sum())
            denom_w = stats[0] + fp + stats[1]
            category_inst_scores[category] = float(stats[0] / denom_w) if denom_w else float("nan")

    return {
        "classScores": class_scores,
        "classInstScores": class_inst_scores,
        "categoryScores": category_scores,
        "categoryInstScores": category_inst_scores,
        "averageScoreClasses": _nanmean(list(class_scores.values())),
        "averageScoreInstClasses": _nanmean(list(class_inst_scores.values())),
        "averageScoreCategories": _nanmean(list(category_scores.values())),
        "averageScoreInstCategories": _nanmean(list(category_inst_scores.values())),
    }


class CityscapesInstanceEvaluator(CityscapesEvaluator):
    """Cityscapes instance-segmentation AP of ``instances`` outputs (``pred_masks``,
    ``pred_classes`` over the 8 thing classes, ``scores``), through the official
    cityscapesscripts: ``{"segm": {"AP", "AP50"}}`` in percent. Predictions are written as
    cityscapesscripts reads them (one ``<stem>_pred.txt`` per image listing mask PNGs, label ids
    and scores) and evaluated against every ``*_gtFine_instanceIds.png`` under ``gt_dir``::

        evaluator = CityscapesInstanceEvaluator("cityscapes_fine_instance_seg_val")

    Needs ``pip install "det-evaluation[cityscapes]"`` (checked when the evaluator is created).
    """

    def __init__(self, dataset_name: str) -> None:
        _require_cityscapesscripts()
        super().__init__(dataset_name)

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        if not self._temp_dir:
            self.reset()
        thing_classes = self._metadata.thing_classes
        for input, output in zip(inputs, outputs):
            basename = os.path.splitext(os.path.basename(input["file_name"]))[0]
            pred_txt = os.path.join(self._temp_dir, basename + "_pred.txt")
            lines = []
            if "instances" in output:
                instances = output["instances"].to(self._cpu_device)
                masks = instances.pred_masks.numpy() if len(instances) else np.zeros((0, 1, 1), bool)
                for i in range(len(instances)):
                    class_name = thing_classes[int(instances.pred_classes[i])]
                    class_id = NAME_TO_LABEL[class_name].id
                    score = float(instances.scores[i])
                    png_filename = os.path.join(self._temp_dir, f"{basename}_{i}_{class_name}.png")
                    Image.fromarray(masks[i].astype(np.uint8) * 255).save(png_filename)
                    lines.append(f"{os.path.basename(png_filename)} {class_id} {score}\n")
            with open(pred_txt, "w") as fout:
                fout.writelines(lines)

    def evaluate(self) -> OrderedDict | None:
        comm.synchronize()
        if comm.get_rank() > 0:
            return None
        import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling as cityscapes_eval

        logger.info("Evaluating results under %s ...", self._temp_dir)
        cityscapes_eval.args.predictionPath = os.path.abspath(self._temp_dir)
        cityscapes_eval.args.predictionWalk = None
        cityscapes_eval.args.JSONOutput = False
        cityscapes_eval.args.colorized = False
        cityscapes_eval.args.gtInstancesFile = os.path.join(self._temp_dir, "gtInstances.json")
        gt_dir = self._metadata.gt_dir
        ground_truth = sorted(glob.glob(os.path.join(gt_dir, "*", "*_gtFine_instanceIds.png")))
        if not ground_truth:
            raise FileNotFoundError(f"Cannot find any ground truth images to use for evaluation in {gt_dir}")
        predictions = [cityscapes_eval.getPrediction(gt, cityscapes_eval.args) for gt in ground_truth]
        results = cityscapes_eval.evaluateImgLists(predictions, ground_truth, cityscapes_eval.args)[
            "averages"
        ]
        ret = OrderedDict(segm={"AP": results["allAp"] * 100, "AP50": results["allAp50%"] * 100})
        if self._working_dir is not None:
            self._working_dir.cleanup()
        return ret


def _require_cityscapesscripts() -> None:
    try:
        import cityscapesscripts  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "CityscapesInstanceEvaluator runs the official Cityscapes instance-level evaluation, "
            'which needs the cityscapesscripts package: pip install "det-evaluation[cityscapes]"'
        ) from e
