"""COCO-style box AP for rotated boxes (detectron2's ``RotatedCOCOEvaluator``).

Ground-truth and predicted boxes are ``[cx, cy, w, h, angle]`` (angle in degrees,
counter-clockwise, as :class:`det.structures.RotatedBoxes`); 4-number boxes are ordinary XYWH
boxes. pycocotools' COCOeval does the matching and averaging; only the IoU is replaced, by
``det.structures.pairwise_iou_rotated``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
from typing import Any

import numpy as np
import torch

from det.evaluation.coco_evaluation import COCOevalMaxDets, COCOEvaluator

__all__ = ["RotatedCOCOEvaluator", "RotatedCOCOeval"]

logger = logging.getLogger(__name__)


class RotatedCOCOeval(COCOevalMaxDets):
    """pycocotools' COCOeval whose box IoU understands rotated boxes (5 numbers per box); its
    summary uses the configured third max-detections limit."""

    @staticmethod
    def is_rotated(box_list: Any) -> bool:
        if isinstance(box_list, np.ndarray):
            return box_list.ndim == 2 and box_list.shape[1] == 5
        if isinstance(box_list, torch.Tensor):
            return box_list.ndim == 2 and box_list.shape[1] == 5
        if isinstance(box_list, list):
            if len(box_list) == 0:
                return False
            return all(
                isinstance(b, (list, tuple, np.ndarray, torch.Tensor)) and len(b) == 5 for b in box_list
            )
        return False

    @staticmethod
    def boxlist_to_tensor(boxlist: Any, output_box_dim: int) -> torch.Tensor:
        if isinstance(boxlist, np.ndarray):
            box_tensor = torch.from_numpy(boxlist)
        elif isinstance(boxlist, list):
            if boxlist == []:
                return torch.zeros((0, output_box_dim), dtype=torch.float32)
            box_tensor = torch.tensor(np.asarray(boxlist, dtype=np.float64))
        elif isinstance(boxlist, torch.Tensor):
            box_tensor = boxlist
        else:
            raise TypeError(f"Unrecognized boxlist type {type(boxlist).__name__}")
        input_box_dim = box_tensor.shape[1]
        if input_box_dim != output_box_dim:
            if input_box_dim == 4 and output_box_dim == 5:
                # An axis-aligned XYWH box is the rotated box (cx, cy, w, h, 0).
                x, y, w, h = box_tensor.unbind(dim=1)
                box_tensor = torch.stack([x + w / 2, y + h / 2, w, h, torch.zeros_like(w)], dim=1)
            else:
                raise ValueError(f"Unable to convert boxes of dimension {input_box_dim} to {output_box_dim}")
        return box_tensor

    def compute_iou_dt_gt(self, dt: Any, gt: Any, is_crowd: list[int]) -> np.ndarray | list:
        if self.is_rotated(dt) or self.is_rotated(gt):
            if any(is_crowd):
                raise ValueError("crowd (iscrowd=1) ground truth is not supported for rotated boxes")
            from det.structures import pairwise_iou_rotated

            dt_boxes = self.boxlist_to_tensor(dt, output_box_dim=5).to(torch.float64)
            gt_boxes = self.boxlist_to_tensor(gt, output_box_dim=5).to(torch.float64)
            return pairwise_iou_rotated(dt_boxes, gt_boxes).numpy()
        import pycocotools.mask as mask_util

        return mask_util.iou(dt, gt, is_crowd)

    def computeIoU(self, imgId: int, catId: int) -> np.ndarray | list:
        p = self.params
        if p.useCats:
            gt = self._gts[imgId, catId]
            dt = self._dts[imgId, catId]
        else:
            gt = [g for c in p.catIds for g in self._gts[imgId, c]]
            dt = [d for c in p.catIds for d in self._dts[imgId, c]]
        if len(gt) == 0 and len(dt) == 0:
            return []
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in order][: p.maxDets[-1]]
        if p.iouType != "bbox":
            raise ValueError(f"RotatedCOCOeval only evaluates boxes, not {p.iouType!r}")
        g = [x["bbox"] for x in gt]
        d = [x["bbox"] for x in dt]
        is_crowd = [int(o.get("iscrowd", 0)) for o in gt]
        return self.compute_iou_dt_gt(d, g, is_crowd)


class RotatedCOCOEvaluator(COCOEvaluator):
    """Box AP of rotated predictions (``pred_boxes`` as RotatedBoxes) against a COCO json whose
    ``bbox`` fields are ``[cx, cy, w, h, angle]``: ``{"bbox": {"AP", "AP50", "AP75", "APs",
    "APm", "APl", "AP-<class>"}}`` in percent, COCO's protocol with rotated IoU::

        evaluator = RotatedCOCOEvaluator("my_rotated_val", output_dir="out/")

    Only the "bbox" task exists (masks and keypoints are not evaluated). The dataset needs a json
    file (metadata ``json_file``): converting rotated dataset dicts to COCO json is not supported.
    It always runs pycocotools' Python COCOeval (``use_fast_impl`` is accepted and has no effect):
    the compiled implementation computes its IoUs natively and cannot take the rotated one.
    """

    def __init__(self, dataset_name: str, *args: Any, use_fast_impl: bool = True, **kwargs: Any) -> None:
        if use_fast_impl:
            logger.debug("RotatedCOCOEvaluator: rotated IoU needs pycocotools' COCOeval; use_fast_impl ignored")
        super().__init__(dataset_name, *args, use_fast_impl=False, **kwargs)

    def instances_to_json(self, instances: Any, img_id: int) -> list[dict]:
        """COCO result dicts of one image: 5-number rotated boxes (4-number XYXY boxes become
        XYWH), scores and contiguous category ids."""
        from det.structures import BoxMode

        num_instance = len(instances)
        if num_instance == 0:
            return []
        boxes = instances.pred_boxes.tensor.numpy()
        if boxes.shape[1] == 4:
            boxes = BoxMode.convert(boxes, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
        boxes = boxes.tolist()
        scores = instances.scores.tolist()
        classes = instances.pred_classes.tolist()
        return [
            {"image_id": img_id, "category_id": classes[k], "bbox": boxes[k], "score": scores[k]}
            for k in range(num_instance)
        ]

    def _eval_predictions(self, predictions: list[dict], img_ids: list[int] | None = None) -> None:
        self._logger.info("Preparing results for COCO format ...")
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        if hasattr(self._metadata, "thing_dataset_id_to_contiguous_id"):
            reverse_id_mapping = {v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()}
            for result in coco_results:
                if result["category_id"] not in reverse_id_mapping:
                    raise ValueError(
                        f"A prediction has class={result['category_id']}, which the dataset's "
                        "thing_dataset_id_to_contiguous_id does not map"
                    )
                result["category_id"] = reverse_id_mapping[result["category_id"]]

        self._write_results_json(coco_results, "coco_instances_results.json")

        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        if self._tasks is not None and set(self._tasks) - {"bbox"}:
            raise ValueError(f"RotatedCOCOEvaluator only supports the 'bbox' task, got {self._tasks}")

        coco_eval = (
            self._evaluate_predictions_on_coco(self._coco_api, coco_results, img_ids=img_ids)
            if len(coco_results) > 0
            else None
        )
        self._results["bbox"] = self._derive_coco_results(
            coco_eval, "bbox", class_names=self._metadata.get("thing_classes")
        )

    def _evaluate_predictions_on_coco(
        self, coco_gt: Any, coco_results: list[dict], img_ids: list[int] | None = None
    ) -> RotatedCOCOeval:
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(coco_results)
        coco_eval = RotatedCOCOeval(coco_gt, coco_dt, iouType="bbox")
        coco_eval.params.maxDets = list(self._max_dets_per_image)
        if img_ids is not None:
            coco_eval.params.imgIds = img_ids
        with contextlib.redirect_stdout(io.StringIO()) as buf:
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        logger.info("RotatedCOCOeval (bbox):\n%s", buf.getvalue())
        return coco_eval
