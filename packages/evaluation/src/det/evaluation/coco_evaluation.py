"""COCO box / mask / keypoint AP through pycocotools' COCOeval (detectron2's ``COCOEvaluator``)."""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from det.data import comm
from det.data.catalog import DatasetCatalog, MetadataCatalog
from det.data.datasets.coco import convert_to_coco_json
from det.evaluation.evaluator import DatasetEvaluator

__all__ = ["COCOEvaluator", "InstancePredictionsEvaluator", "instances_to_coco_json"]

logger = logging.getLogger(__name__)

_METRICS = {
    "bbox": ["AP", "AP50", "AP75", "APs", "APm", "APl"],
    "segm": ["AP", "AP50", "AP75", "APs", "APm", "APl"],
    "keypoints": ["AP", "AP50", "AP75", "APm", "APl"],
}


class InstancePredictionsEvaluator(DatasetEvaluator):
    """What COCO-style evaluators share: collecting each image's instances (as COCO result
    dicts) and proposals, gathering them from every process and saving them.

    Subclasses call :meth:`_configure` and set ``_logger`` in their constructor, and score in
    ``evaluate`` what :meth:`_collect_predictions` returns.
    """

    _cpu_device = torch.device("cpu")
    _distributed: bool
    _output_dir: str | None
    _logger: logging.Logger

    def _configure(self, tasks: Any, known_tasks: Any, distributed: bool, output_dir: str | None) -> None:
        """Check ``tasks`` against ``known_tasks`` (None, or an old-style CfgNode: inferred from the
        predictions later) and start with no predictions."""
        if tasks is not None and not isinstance(tasks, (list, tuple)):
            tasks = None  # detectron2 once took a CfgNode here
        if tasks is not None:
            unknown = [t for t in tasks if t not in known_tasks]
            if unknown:
                raise ValueError(
                    f"{type(self).__name__}: unknown tasks {unknown}; expected a subset of {sorted(known_tasks)}"
                )
        self._tasks: tuple[str, ...] | None = tuple(tasks) if tasks is not None else None
        self._distributed = distributed
        self._output_dir = output_dir
        self.reset()

    def reset(self) -> None:
        self._predictions: list[dict] = []

    def instances_to_json(self, instances: Any, img_id: int) -> list[dict]:
        """One image's predictions as COCO result dicts."""
        return instances_to_coco_json(instances, img_id)

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for input, output in zip(inputs, outputs):
            if "image_id" not in input:
                raise KeyError(f"{type(self).__name__}.process: every input dict needs its 'image_id'")
            prediction: dict[str, Any] = {"image_id": input["image_id"]}
            if "instances" in output:
                instances = output["instances"].to(self._cpu_device)
                prediction["instances"] = self.instances_to_json(instances, input["image_id"])
            if "proposals" in output:
                prediction["proposals"] = output["proposals"].to(self._cpu_device)
            if len(prediction) > 1:
                self._predictions.append(prediction)

    def _collect_predictions(self) -> list[dict] | None:
        """Every process's predictions on the main process (saved to ``instances_predictions.pth``
        in ``output_dir``); None on the other processes and when there are none."""
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return None
        else:
            predictions = self._predictions
        if len(predictions) == 0:
            self._logger.warning("[%s] Did not receive valid predictions.", type(self).__name__)
            return None
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            torch.save(predictions, os.path.join(self._output_dir, "instances_predictions.pth"))
        return predictions

    def _write_results_json(self, results: list[dict], file_name: str) -> None:
        """Save result dicts to ``output_dir/file_name`` (nothing without an output_dir)."""
        if self._output_dir:
            file_path = os.path.join(self._output_dir, file_name)
            self._logger.info("Saving results to %s", file_path)
            with open(file_path, "w") as f:
                f.write(json.dumps(results))


class COCOEvaluator(InstancePredictionsEvaluator):
    """COCO AP of instance predictions against a registered dataset's ground truth.

    Results look like detectron2's: ``{"bbox": {"AP", "AP50", "AP75", "APs", "APm", "APl",
    "AP-<class>", ...}, "segm": {...}, "keypoints": {...}}`` in percent. Tasks default to what
    the predictions contain (boxes always; masks -> "segm"; keypoints -> "keypoints").

        evaluator = COCOEvaluator("shapes_val", output_dir="out/")
        results = inference_on_dataset(model, build_detection_test_loader(cfg, "shapes_val"), evaluator)
    """

    def __init__(
        self,
        dataset_name: str,
        tasks: tuple[str, ...] | list[str] | None = None,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        max_dets_per_image: int | None = None,
        use_fast_impl: bool = True,
        kpt_oks_sigmas: tuple[float, ...] | list[float] = (),
        allow_cached_coco: bool = True,
    ) -> None:
        self._logger = logger
        if use_fast_impl:
            logger.debug("det has no C++ COCOeval; using pycocotools' COCOeval")
        self._use_fast_impl = False

        self._max_dets_per_image = [1, 10, 100 if max_dets_per_image is None else max_dets_per_image]
        if tasks is not None and not isinstance(tasks, (list, tuple)):
            # detectron2 once took a CfgNode here: its keypoint sigmas still count
            kpt_oks_sigmas = tuple(
                getattr(getattr(tasks, "TEST", None), "KEYPOINT_OKS_SIGMAS", kpt_oks_sigmas)
            )
        self._configure(tasks, _METRICS, distributed, output_dir)

        self._metadata = MetadataCatalog.get(dataset_name)
        json_file = self._metadata.get("json_file")
        if json_file is not None and not os.path.isfile(json_file) and dataset_name in DatasetCatalog:
            # Lazily generated datasets (e.g. the built-in shapes) write their json on first load.
            DatasetCatalog.get(dataset_name)
        if json_file is None or not os.path.isfile(json_file):
            if output_dir is None:
                raise ValueError(
                    f"COCOEvaluator: dataset {dataset_name!r} has no COCO json file (metadata 'json_file'); "
                    "pass output_dir so one can be written from the dataset dicts"
                )
            logger.info("'%s' is not registered as COCO json; converting it to COCO format ...", dataset_name)
            cache_path = os.path.join(output_dir, f"{dataset_name}_coco_format.json")
            self._metadata.json_file = cache_path
            convert_to_coco_json(dataset_name, cache_path, allow_cached=allow_cached_coco)
            json_file = cache_path

        with contextlib.redirect_stdout(io.StringIO()):
            self._coco_api = COCO(json_file)

        # Test sets with no annotations only produce result files.
        self._do_evaluation = "annotations" in self._coco_api.dataset
        if self._do_evaluation:
            self._kpt_oks_sigmas = kpt_oks_sigmas or self._metadata.get("keypoint_oks_sigmas") or ()

    def evaluate(self, img_ids: list[int] | None = None) -> OrderedDict | dict | None:
        """Metrics over everything processed; ``img_ids`` restricts COCOeval to those images."""
        predictions = self._collect_predictions()
        if predictions is None:
            return {}

        self._results: OrderedDict = OrderedDict()
        if "proposals" in predictions[0]:
            self._eval_box_proposals(predictions)
        if "instances" in predictions[0]:
            self._eval_predictions(predictions, img_ids=img_ids)
        return copy.deepcopy(self._results)

    def add_coco_results(self, results: list[dict]) -> None:
        """Add predictions given as COCO result dicts (a results json such as
        ``coco_instances_results.json`` or ``det predict --coco-results``: the dataset's own
        category ids, XYWH boxes, RLE ``segmentation``, COCO-convention ``keypoints``) instead
        of model outputs, so that :meth:`evaluate` scores a results file without a model::

            evaluator = COCOEvaluator("my_val")
            evaluator.add_coco_results(json.load(open("results.json")))
            evaluator.evaluate()

        Raises ValueError (nothing added) when a result lacks a field, or names an image or a
        category that the dataset's json does not have."""
        if not isinstance(results, list):
            raise ValueError(f"COCO results must be a list of dicts, got {type(results).__name__}")
        known_images = set(self._coco_api.getImgIds())
        known_cats = set(self._coco_api.getCatIds())
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id")
        by_image: dict[Any, list[dict]] = {}
        for i, result in enumerate(results):
            if not isinstance(result, dict) or not {"image_id", "category_id", "score"} <= set(result):
                raise ValueError(f"COCO result #{i} needs 'image_id', 'category_id' and 'score', got {result!r:.100}")
            if result["image_id"] not in known_images:
                raise ValueError(f"COCO result #{i} is for image_id {result['image_id']!r}, which is not in the "
                                 f"dataset's json ({len(known_images)} images): are they results of another dataset?")
            if result["category_id"] not in known_cats:
                raise ValueError(f"COCO result #{i} has category_id {result['category_id']!r}, which is not in the "
                                 f"dataset's categories {sorted(known_cats)}")
            result = dict(result)
            if id_map is not None:  # evaluate() maps contiguous ids back to the dataset's
                result["category_id"] = id_map[result["category_id"]]
            by_image.setdefault(result["image_id"], []).append(result)
        for image_id, instances in by_image.items():
            self._predictions.append({"image_id": image_id, "instances": instances})

    def _tasks_from_predictions(self, predictions: list[dict]) -> list[str]:
        tasks = {"bbox"}
        for pred in predictions:
            if "segmentation" in pred:
                tasks.add("segm")
            if "keypoints" in pred:
                tasks.add("keypoints")
        return sorted(tasks)

    def _eval_predictions(self, predictions: list[dict], img_ids: list[int] | None = None) -> None:
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        tasks = self._tasks or self._tasks_from_predictions(coco_results)

        # Predictions use contiguous ids 0..K-1; COCO json uses the dataset's own ids.
        if hasattr(self._metadata, "thing_dataset_id_to_contiguous_id"):
            dataset_id_to_contiguous_id = self._metadata.thing_dataset_id_to_contiguous_id
            all_contiguous_ids = list(dataset_id_to_contiguous_id.values())
            num_classes = len(all_contiguous_ids)
            if not (min(all_contiguous_ids) == 0 and max(all_contiguous_ids) == num_classes - 1):
                raise ValueError("thing_dataset_id_to_contiguous_id must map onto 0..K-1")
            reverse_id_mapping = {v: k for k, v in dataset_id_to_contiguous_id.items()}
            for result in coco_results:
                category_id = result["category_id"]
                if not 0 <= category_id < num_classes:
                    raise ValueError(
                        f"A prediction has class={category_id}, but the dataset only has {num_classes} classes "
                        f"and predicted class id should be in [0, {num_classes - 1}]."
                    )
                result["category_id"] = reverse_id_mapping[category_id]

        self._write_results_json(coco_results, "coco_instances_results.json")

        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return

        for task in sorted(tasks):
            if task not in _METRICS:
                raise ValueError(f"Got unknown task: {task}!")
            coco_eval = (
                _evaluate_predictions_on_coco(
                    self._coco_api,
                    coco_results,
                    task,
                    kpt_oks_sigmas=self._kpt_oks_sigmas,
                    img_ids=img_ids,
                    max_dets_per_image=self._max_dets_per_image,
                )
                if len(coco_results) > 0
                else None  # cocoapi does not handle empty results very well
            )
            res = self._derive_coco_results(coco_eval, task, class_names=self._metadata.get("thing_classes"))
            self._results[task] = res

    def _eval_box_proposals(self, predictions: list[dict]) -> None:
        """Average recall of proposals at 100 and 1000 per image (all / small / medium / large)."""
        res = {}
        areas = {"all": "", "small": "s", "medium": "m", "large": "l"}
        for limit in [100, 1000]:
            for area, suffix in areas.items():
                stats = _evaluate_box_proposals(predictions, self._coco_api, area=area, limit=limit)
                res[f"AR{suffix}@{limit:d}"] = float(stats["ar"].item() * 100)
        self._results["box_proposals"] = res

    def _derive_coco_results(
        self, coco_eval: COCOeval | None, iou_type: str, class_names: list[str] | None = None
    ) -> dict[str, float]:
        """COCOeval stats in percent, plus per-category AP when there is more than one class."""
        metrics = _METRICS[iou_type]
        if coco_eval is None:
            self._logger.warning("No predictions from the model!")
            return {metric: float("nan") for metric in metrics}

        results = {
            metric: float(coco_eval.stats[idx] * 100 if coco_eval.stats[idx] >= 0 else "nan")
            for idx, metric in enumerate(metrics)
        }
        self._logger.info("Evaluation results for %s: %s", iou_type, results)
        if not np.isfinite(sum(results.values())):
            self._logger.info("Some metrics cannot be computed and is shown as NaN.")

        if class_names is None or len(class_names) <= 1:
            return results
        # precision has dims (iou, recall, cls, area range, max dets)
        precisions = coco_eval.eval["precision"]
        if len(class_names) != precisions.shape[2]:
            raise ValueError(
                f"{len(class_names)} class names but COCOeval has {precisions.shape[2]} categories"
            )
        for idx, name in enumerate(class_names):
            precision = precisions[:, :, idx, 0, -1]
            precision = precision[precision > -1]
            ap = np.mean(precision) if precision.size else float("nan")
            results["AP-" + name] = float(ap * 100)
        return results


def instances_to_coco_json(instances: Any, img_id: int) -> list[dict]:
    """COCO result dicts of one image's predicted ``Instances``: XYWH boxes, scores, contiguous
    category ids, RLE (utf-8 counts) of ``pred_masks`` and flattened ``pred_keypoints`` (shifted
    by -0.5 back to COCO's pixel-index convention)."""
    from det.structures import BoxMode

    num_instance = len(instances)
    if num_instance == 0:
        return []

    boxes = instances.pred_boxes.tensor.numpy()
    boxes = BoxMode.convert(boxes, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    boxes = boxes.tolist()
    scores = instances.scores.tolist()
    classes = instances.pred_classes.tolist()

    has_mask = instances.has("pred_masks")
    if has_mask:
        rles = [
            mask_util.encode(np.array(mask[:, :, None], order="F", dtype="uint8"))[0]
            for mask in np.asarray(
                instances.pred_masks.cpu().numpy()
                if torch.is_tensor(instances.pred_masks)
                else instances.pred_masks
            )
        ]
        for rle in rles:
            # json cannot hold bytes
            rle["counts"] = rle["counts"].decode("utf-8")

    has_keypoints = instances.has("pred_keypoints")
    if has_keypoints:
        keypoints = (
            instances.pred_keypoints.clone()
            if torch.is_tensor(instances.pred_keypoints)
            else np.array(instances.pred_keypoints)
        )

    results = []
    for k in range(num_instance):
        result: dict[str, Any] = {
            "image_id": img_id,
            "category_id": classes[k],
            "bbox": boxes[k],
            "score": scores[k],
        }
        if has_mask:
            result["segmentation"] = rles[k]
        if has_keypoints:
            kpts = keypoints[k]
            kpts[:, :2] -= 0.5
            result["keypoints"] = [float(v) for v in kpts.flatten().tolist()]
        results.append(result)
    return results


def _evaluate_box_proposals(
    dataset_predictions: list[dict],
    coco_api: COCO,
    thresholds: Any = None,
    area: str = "all",
    limit: int | None = None,
) -> dict[str, Any]:
    """Recall of proposals over IoU thresholds 0.5:0.95 (Fast R-CNN's protocol)."""
    from det.structures import Boxes, BoxMode, pairwise_iou

    areas = {
        "all": 0,
        "small": 1,
        "medium": 2,
        "large": 3,
        "96-128": 4,
        "128-256": 5,
        "256-512": 6,
        "512-inf": 7,
    }
    area_ranges = [
        [0**2, 1e5**2],
        [0**2, 32**2],
        [32**2, 96**2],
        [96**2, 1e5**2],
        [96**2, 128**2],
        [128**2, 256**2],
        [256**2, 512**2],
        [512**2, 1e5**2],
    ]
    if area not in areas:
        raise ValueError(f"Unknown area range: {area}")
    area_range = area_ranges[areas[area]]
    gt_overlaps_list = []
    num_pos = 0
    for prediction_dict in dataset_predictions:
        predictions = prediction_dict["proposals"]
        inds = predictions.objectness_logits.sort(descending=True)[1]
        predictions = predictions[inds]
        ann_ids = coco_api.getAnnIds(imgIds=prediction_dict["image_id"])
        anno = coco_api.loadAnns(ann_ids)
        gt_boxes = [
            BoxMode.convert(obj["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
            for obj in anno
            if obj["iscrowd"] == 0
        ]
        gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4)
        gt_boxes = Boxes(gt_boxes)
        gt_areas = torch.as_tensor([obj["area"] for obj in anno if obj["iscrowd"] == 0])
        if len(gt_boxes) == 0 or len(predictions) == 0:
            continue
        valid_gt_inds = (gt_areas >= area_range[0]) & (gt_areas <= area_range[1])
        gt_boxes = gt_boxes[valid_gt_inds]
        num_pos += len(gt_boxes)
        if len(gt_boxes) == 0:
            continue
        if limit is not None and len(predictions) > limit:
            predictions = predictions[:limit]
        overlaps = pairwise_iou(predictions.proposal_boxes, gt_boxes)
        _gt_overlaps = torch.zeros(len(gt_boxes))
        for j in range(min(len(predictions), len(gt_boxes))):
            # greedily match the best-covered gt box to its best proposal, then remove both
            max_overlaps, argmax_overlaps = overlaps.max(dim=0)
            _, gt_ind = max_overlaps.max(dim=0)
            box_ind = argmax_overlaps[gt_ind]
            _gt_overlaps[j] = overlaps[box_ind, gt_ind]
            overlaps[box_ind, :] = -1
            overlaps[:, gt_ind] = -1
        gt_overlaps_list.append(_gt_overlaps)
    gt_overlaps = (
        torch.cat(gt_overlaps_list, dim=0) if gt_overlaps_list else torch.zeros(0, dtype=torch.float32)
    )
    gt_overlaps, _ = torch.sort(gt_overlaps)
    if thresholds is None:
        step = 0.05
        thresholds = torch.arange(0.5, 0.95 + 1e-5, step, dtype=torch.float32)
    recalls = torch.zeros_like(thresholds)
    for i, t in enumerate(thresholds):
        recalls[i] = (gt_overlaps >= t).float().sum() / float(max(num_pos, 1))
    ar = recalls.mean()
    return {
        "ar": ar,
        "recalls": recalls,
        "thresholds": thresholds,
        "gt_overlaps": gt_overlaps,
        "num_pos": num_pos,
    }


def _evaluate_predictions_on_coco(
    coco_gt: COCO,
    coco_results: list[dict],
    iou_type: str,
    kpt_oks_sigmas: Any = None,
    img_ids: list[int] | None = None,
    max_dets_per_image: list[int] | None = None,
) -> COCOeval:
    """Run COCOeval (evaluate, accumulate, summarize) and return it."""
    if len(coco_results) == 0:
        raise ValueError("_evaluate_predictions_on_coco needs at least one result")
    if iou_type == "segm":
        coco_results = copy.deepcopy(coco_results)
        # With a "bbox" field, loadRes would use it instead of the mask to compute areas.
        for c in coco_results:
            c.pop("bbox", None)
        if any("segmentation" not in c for c in coco_results):
            raise ValueError("segm evaluation needs a 'segmentation' (pred_masks) in every prediction")

    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(coco_results)
    coco_eval = (COCOevalMaxDets if max_dets_per_image and max_dets_per_image[2] != 100 else COCOeval)(
        coco_gt, coco_dt, iou_type
    )
    if max_dets_per_image is None:
        max_dets_per_image = [1, 10, 100]
    if iou_type != "keypoints":
        coco_eval.params.maxDets = max_dets_per_image
    if img_ids is not None:
        coco_eval.params.imgIds = img_ids

    if iou_type == "keypoints":
        if kpt_oks_sigmas is not None and len(kpt_oks_sigmas):
            coco_eval.params.kpt_oks_sigmas = np.array(kpt_oks_sigmas)
        num_keypoints_dt = len(coco_results[0]["keypoints"]) // 3
        num_keypoints_gt = len(next(iter(coco_gt.anns.values()))["keypoints"]) // 3
        num_keypoints_oks = len(coco_eval.params.kpt_oks_sigmas)
        if not (num_keypoints_oks == num_keypoints_dt == num_keypoints_gt):
            raise ValueError(
                f"[COCOEvaluator] Prediction contain {num_keypoints_dt} keypoints. "
                f"Ground truth contains {num_keypoints_gt} keypoints. "
                f"The length of cfg.TEST.KEYPOINT_OKS_SIGMAS is {num_keypoints_oks}. "
                "They have to agree with each other. For meaning of OKS, please refer to "
                "http://cocodataset.org/#keypoints-eval."
            )

    with contextlib.redirect_stdout(io.StringIO()) as buf:
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    logger.info("COCOeval (%s):\n%s", iou_type, buf.getvalue())
    return coco_eval


class COCOevalMaxDets(COCOeval):
    """COCOeval whose summary uses the configured third max-detections limit instead of 100."""

    def summarize(self) -> None:
        def _summarize(
            ap: int = 1, iouThr: float | None = None, areaRng: str = "all", maxDets: int = 100
        ) -> float:
            p = self.params
            aind = [i for i, aRng in enumerate(p.areaRngLbl) if aRng == areaRng]
            mind = [i for i, mDet in enumerate(p.maxDets) if mDet == maxDets]
            if ap == 1:
                s = self.eval["precision"]
                if iouThr is not None:
                    t = np.where(iouThr == p.iouThrs)[0]
                    s = s[t]
                s = s[:, :, :, aind, mind]
            else:
                s = self.eval["recall"]
                if iouThr is not None:
                    t = np.where(iouThr == p.iouThrs)[0]
                    s = s[t]
                s = s[:, :, aind, mind]
            return -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))

        if not self.eval:
            raise RuntimeError("Please run accumulate() first")
        if self.params.iouType == "keypoints":
            super().summarize()
            return
        md = self.params.maxDets
        stats = np.zeros((12,))
        stats[0] = _summarize(1, maxDets=md[2])
        stats[1] = _summarize(1, iouThr=0.5, maxDets=md[2])
        stats[2] = _summarize(1, iouThr=0.75, maxDets=md[2])
        stats[3] = _summarize(1, areaRng="small", maxDets=md[2])
        stats[4] = _summarize(1, areaRng="medium", maxDets=md[2])
        stats[5] = _summarize(1, areaRng="large", maxDets=md[2])
        stats[6] = _summarize(0, maxDets=md[0])
        stats[7] = _summarize(0, maxDets=md[1])
        stats[8] = _summarize(0, maxDets=md[2])
        stats[9] = _summarize(0, areaRng="small", maxDets=md[2])
        stats[10] = _summarize(0, areaRng="medium", maxDets=md[2])
        stats[11] = _summarize(0, areaRng="large", maxDets=md[2])
        self.stats = stats
