"""Semantic-segmentation metrics: mIoU, fwIoU, mACC, pACC (detectron2's ``SemSegEvaluator``)."""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image

from det.data import comm
from det.data.catalog import DatasetCatalog, MetadataCatalog
from det.evaluation.evaluator import DatasetEvaluator

__all__ = ["SemSegEvaluator", "load_image_into_numpy_array"]

logger = logging.getLogger(__name__)


def load_image_into_numpy_array(filename: str, copy: bool = False, dtype: Any = None) -> np.ndarray:
    """A label image as a numpy array (PIL mode kept)."""
    with open(filename, "rb") as f:
        # Always a writable copy: evaluators relabel ignored pixels in place.
        array = np.array(Image.open(f), dtype=dtype)
    return array


class SemSegEvaluator(DatasetEvaluator):
    """Accumulates a confusion matrix of predicted vs. ground-truth labels over a dataset whose
    dicts have ``sem_seg_file_name``; pixels labelled ``ignore_label`` are not counted.

    Results: ``{"sem_seg": {"mIoU", "fwIoU", "IoU-<class>", "mACC", "pACC", "ACC-<class>"}}``
    in percent. Outputs must hold ``sem_seg`` (num_classes,H,W) scores::

        evaluator = SemSegEvaluator("my_seg_val", num_classes=3, ignore_label=255)
    """

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        sem_seg_loading_fn: Callable[..., np.ndarray] = load_image_into_numpy_array,
        num_classes: int | None = None,
        ignore_label: int | None = None,
    ) -> None:
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        self._cpu_device = torch.device("cpu")
        self.input_file_to_gt_file = {
            dataset_record["file_name"]: dataset_record["sem_seg_file_name"]
            for dataset_record in DatasetCatalog.get(dataset_name)
        }
        meta = MetadataCatalog.get(dataset_name)
        self._contiguous_id_to_dataset_id: dict[int, int] | None
        try:
            c2d = meta.stuff_dataset_id_to_contiguous_id
            self._contiguous_id_to_dataset_id = {v: k for k, v in c2d.items()}
        except AttributeError:
            self._contiguous_id_to_dataset_id = None
        self._class_names = meta.get("stuff_classes")
        if self._class_names is None:
            if num_classes is None:
                raise ValueError(
                    f"SemSegEvaluator: dataset {dataset_name!r} has no 'stuff_classes' metadata; pass num_classes"
                )
            self._class_names = [str(i) for i in range(num_classes)]
        self.sem_seg_loading_fn = sem_seg_loading_fn
        self._num_classes = len(self._class_names)
        if num_classes is not None and num_classes != self._num_classes:
            raise ValueError(f"num_classes={num_classes} disagrees with {self._num_classes} stuff_classes")
        self._ignore_label = ignore_label if ignore_label is not None else meta.get("ignore_label", 255)
        self._conf_matrix = np.zeros((self._num_classes + 1, self._num_classes + 1), dtype=np.int64)
        self._predictions: list[dict] = []

    def reset(self) -> None:
        self._conf_matrix = np.zeros((self._num_classes + 1, self._num_classes + 1), dtype=np.int64)
        self._predictions = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for input, output in zip(inputs, outputs):
            if "sem_seg" not in output:
                raise KeyError("SemSegEvaluator.process: outputs need 'sem_seg' (num_classes,H,W) scores")
            pred_scores = output["sem_seg"]
            if pred_scores.ndim != 3 or pred_scores.shape[0] != self._num_classes:
                raise ValueError(
                    f"SemSegEvaluator: sem_seg must be ({self._num_classes},H,W) scores, got {tuple(pred_scores.shape)}"
                )
            pred = pred_scores.argmax(dim=0).to(self._cpu_device).numpy().astype(int)
            gt_filename = self.input_file_to_gt_file[input["file_name"]]
            gt = self.sem_seg_loading_fn(gt_filename, dtype=int)
            if gt.shape != pred.shape:
                raise ValueError(
                    f"prediction shape {pred.shape} differs from ground truth {gt.shape} ({gt_filename})"
                )
            gt[gt == self._ignore_label] = self._num_classes
            # Row = prediction, column = ground truth; the extra last row/column is "ignored".
            self._conf_matrix += np.bincount(
                (self._num_classes + 1) * pred.reshape(-1) + gt.reshape(-1),
                minlength=self._conf_matrix.size,
            ).reshape(self._conf_matrix.shape)
            self._predictions.extend(self.encode_json_sem_seg(pred, input["file_name"]))

    def evaluate(self) -> OrderedDict | None:
        if self._distributed:
            comm.synchronize()
            conf_matrix_list = comm.all_gather(self._conf_matrix)
            self._predictions = list(itertools.chain(*comm.all_gather(self._predictions)))
            if not comm.is_main_process():
                return None
            self._conf_matrix = np.zeros_like(self._conf_matrix)
            for conf_matrix in conf_matrix_list:
                self._conf_matrix += conf_matrix

        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            file_path = os.path.join(self._output_dir, "sem_seg_predictions.json")
            with open(file_path, "w") as f:
                f.write(json.dumps(self._predictions))

        acc = np.full(self._num_classes, np.nan, dtype=np.float64)
        iou = np.full(self._num_classes, np.nan, dtype=np.float64)
        tp = self._conf_matrix.diagonal()[:-1].astype(np.float64)
        pos_gt = np.sum(self._conf_matrix[:-1, :-1], axis=0).astype(np.float64)
        class_weights = pos_gt / np.sum(pos_gt)
        pos_pred = np.sum(self._conf_matrix[:-1, :-1], axis=1).astype(np.float64)
        acc_valid = pos_gt > 0
        acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
        iou_valid = (pos_gt + pos_pred) > 0
        union = pos_gt + pos_pred - tp
        iou[acc_valid] = tp[acc_valid] / union[acc_valid]
        # As detectron2: classes absent from the ground truth but predicted count as IoU 0.
        macc = np.sum(acc[acc_valid]) / np.sum(acc_valid)
        miou = np.sum(iou[acc_valid]) / np.sum(iou_valid)
        fiou = np.sum(iou[acc_valid] * class_weights[acc_valid])
        pacc = np.sum(tp) / np.sum(pos_gt)

        res: dict[str, float] = {"mIoU": 100 * miou, "fwIoU": 100 * fiou}
        for i, name in enumerate(self._class_names):
            res[f"IoU-{name}"] = 100 * iou[i]
        res["mACC"] = 100 * macc
        res["pACC"] = 100 * pacc
        for i, name in enumerate(self._class_names):
            res[f"ACC-{name}"] = 100 * acc[i]
        res = {k: float(v) for k, v in res.items()}

        if self._output_dir:
            with open(os.path.join(self._output_dir, "sem_seg_evaluation.pth"), "wb") as f:
                torch.save(res, f)
        results = OrderedDict({"sem_seg": res})
        logger.info("%s", results)
        return results

    def encode_json_sem_seg(self, sem_seg: np.ndarray, input_file_name: str) -> list[dict]:
        """One COCO-stuff style json record (RLE) per predicted label."""
        json_list = []
        for label in np.unique(sem_seg):
            if label == self._num_classes:
                continue
            if self._contiguous_id_to_dataset_id is not None:
                if label not in self._contiguous_id_to_dataset_id:
                    raise ValueError(f"Label {label} is not in the metadata info for {self._dataset_name}")
                dataset_id = self._contiguous_id_to_dataset_id[label]
            else:
                dataset_id = int(label)
            mask = (sem_seg == label).astype(np.uint8)
            mask_rle = mask_util.encode(np.array(mask[:, :, None], order="F"))[0]
            mask_rle["counts"] = mask_rle["counts"].decode("utf-8")
            json_list.append(
                {"file_name": input_file_name, "category_id": dataset_id, "segmentation": mask_rle}
            )
        return json_list
