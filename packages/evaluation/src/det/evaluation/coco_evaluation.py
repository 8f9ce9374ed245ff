"""COCO box / mask / keypoint AP (detectron2's ``COCOEvaluator``).

Two implementations of COCOeval compute it, chosen by ``use_fast_impl`` as in detectron2:
ultrafast-pycocotools (a compiled reimplementation whose precision, recall and score arrays are
bit-identical to pycocotools') when it is installed, pycocotools' own Python COCOeval otherwise or
on request. :func:`evaluate_coco_results` scores a COCO results file (or list) against a dataset
without a model; :class:`COCOEvaluator` does the same with predictions collected from a model.
"""

from __future__ import annotations

import contextlib
import functools
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

__all__ = [
    "COCOEvaluator",
    "InstancePredictionsEvaluator",
    "evaluate_coco_results",
    "fast_coco_eval_available",
    "instances_to_coco_json",
    "load_coco_api",
]

logger = logging.getLogger(__name__)

_METRICS = {
    "bbox": ["AP", "AP50", "AP75", "APs", "APm", "APl"],
    "segm": ["AP", "AP50", "AP75", "APs", "APm", "APl"],
    "keypoints": ["AP", "AP50", "AP75", "APm", "APl"],
}


@functools.cache
def _fast_coco_modules() -> tuple[type, type] | None:
    """(COCO, COCOeval) of ultrafast-pycocotools, or None when it cannot be imported."""
    try:
        from ultrafast_pycocotools import COCO as FastCOCO
        from ultrafast_pycocotools import COCOeval as FastCOCOeval
    except ImportError as e:
        logger.info("Fast COCO eval is not available (%s); pycocotools' COCOeval will be used.", e)
        return None
    return FastCOCO, FastCOCOeval


def fast_coco_eval_available() -> bool:
    """Whether ``use_fast_impl=True`` gets the compiled COCOeval (ultrafast-pycocotools)."""
    return _fast_coco_modules() is not None


def load_coco_api(json_file: str | os.PathLike | dict, use_fast_impl: bool = True) -> Any:
    """The COCO ground-truth API of a COCO json file (or an already loaded dict), of the
    implementation ``use_fast_impl`` picks; a file that is not COCO json is a ``ValueError``
    naming it::

        coco_gt = load_coco_api("instances_val2017.json")
        coco_gt.getImgIds()[:3]
    """
    modules = _fast_coco_modules() if use_fast_impl else None
    where = "the given dict" if isinstance(json_file, dict) else os.fspath(json_file)
    try:
        if isinstance(json_file, dict):
            dataset = json_file
        else:
            with open(json_file) as f:
                dataset = json.load(f)
        if not isinstance(dataset, dict) or not isinstance(dataset.get("images"), list):
            raise ValueError("it has no 'images' list")
        if modules is not None:
            coco = modules[0](dataset, verbose=False)
        else:
            coco = COCO()
            coco.dataset = dataset
            with contextlib.redirect_stdout(io.StringIO()):
                coco.createIndex()
    except OSError as e:
        raise ValueError(f"Cannot read the COCO json {where}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{where} is not a COCO instances json ({type(e).__name__}: {e}); it needs 'images' "
            "(with 'id', 'height', 'width'), 'annotations' and 'categories'"
        ) from None
    return coco


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
        predictions = _drop_duplicate_images(predictions, self._logger)
        if len(predictions) == 0:
            self._logger.warning("[%s] Did not receive valid predictions.", type(self).__name__)
            return None
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            torch.save(predictions, os.path.join(self._output_dir, "instances_predictions.pth"))
        return predictions

    def _evaluate_collected(self, **eval_kwargs) -> bool:
        """Fill ``self._results`` from the collected predictions: box proposals' recall and
        ``_eval_predictions(predictions, **eval_kwargs)``; False when there is nothing to evaluate
        here (another process, or no predictions)."""
        predictions = self._collect_predictions()
        if predictions is None:
            return False
        self._results: OrderedDict = OrderedDict()
        if "proposals" in predictions[0]:
            self._eval_box_proposals(predictions)
        if "instances" in predictions[0]:
            self._eval_predictions(predictions, **eval_kwargs)
        return True

    def _write_results_json(self, results: list[dict], file_name: str) -> None:
        """Save result dicts to ``output_dir/file_name`` (nothing without an output_dir)."""
        if self._output_dir:
            file_path = os.path.join(self._output_dir, file_name)
            self._logger.info("Saving results to %s", file_path)
            with open(file_path, "w") as f:
                f.write(json.dumps(results))


def _drop_duplicate_images(predictions: list[dict], log: logging.Logger) -> list[dict]:
    """Keep the first prediction of every image: an image seen twice (a sampler that pads
    its shards, a dataset listed twice) would otherwise count its detections twice."""
    seen: set = set()
    kept = []
    for prediction in predictions:
        image_id = prediction["image_id"]
        if image_id not in seen:
            seen.add(image_id)
            kept.append(prediction)
    if len(kept) != len(predictions):
        log.warning(
            "%d of %d predictions repeat an image_id that was already processed; only the first "
            "one of each image is evaluated (use InferenceSampler so that every process sees "
            "each image exactly once).",
            len(predictions) - len(kept),
            len(predictions),
        )
    return kept


class COCOEvaluator(InstancePredictionsEvaluator):
    """COCO AP of instance predictions against a registered dataset's ground truth.

    Results look like detectron2's: ``{"bbox": {"AP", "AP50", "AP75", "APs", "APm", "APl",
    "AP-<class>", ...}, "segm": {...}, "keypoints": {...}}`` in percent. Tasks default to what
    the predictions contain (boxes always; masks -> "segm"; keypoints -> "keypoints").
    ``use_fast_impl`` (default) computes them with the compiled COCOeval of
    ultrafast-pycocotools when installed (the same numbers as pycocotools, bit for bit, in a
    fraction of the time and memory), with pycocotools' COCOeval otherwise.

        evaluator = COCOEvaluator("shapes_val", output_dir="out/")
        results = inference_on_dataset(model, build_detection_test_loader(cfg, "shapes_val"), evaluator)
    """

    def __init__(self, dataset_name: str, tasks: tuple[str, ...] | list[str] | None = None,
                 distributed: bool = True, output_dir: str | None = None, *,
                 max_dets_per_image: int | None = None, use_fast_impl: bool = True,
                 kpt_oks_sigmas: tuple[float, ...] | list[float] = (),
                 allow_cached_coco: bool = True) -> None:
        self._logger = logger
        if use_fast_impl and not fast_coco_eval_available():
            logger.info("Fast COCO eval is not installed. Falling back to official COCO eval.")
            use_fast_impl = False
        self._use_fast_impl = use_fast_impl

        # COCOeval's maxDets has three limits; the third is the one AP uses.
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

        self._coco_api = load_coco_api(json_file, use_fast_impl=self._use_fast_impl)

        # Test sets with no annotations only produce result files.
        self._do_evaluation = "annotations" in self._coco_api.dataset
        if self._do_evaluation:
            self._kpt_oks_sigmas = kpt_oks_sigmas or self._metadata.get("keypoint_oks_sigmas") or ()

    def evaluate(self, img_ids: list[int] | None = None) -> OrderedDict | dict | None:
        """Metrics over everything processed; ``img_ids`` restricts COCOeval to those images."""
        if not self._evaluate_collected(img_ids=img_ids):
            return {}
        return OrderedDict((task, dict(res)) for task, res in self._results.items())

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
        return _tasks_from_results(predictions)

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

        # image ids come from the loader's dataset dicts: they must be the json's too
        _check_results(coco_results, self._coco_api, "the predictions", self._metadata.get("json_file", "the json"))
        self._logger.info(
            "Evaluating predictions with %s COCO API...",
            "the fast (ultrafast-pycocotools)" if self._use_fast_impl else "the official (pycocotools)",
        )
        self._results.update(
            _evaluate_tasks(
                self._coco_api,
                coco_results,
                tasks,
                class_names=self._metadata.get("thing_classes"),
                use_fast_impl=self._use_fast_impl,
                kpt_oks_sigmas=self._kpt_oks_sigmas,
                img_ids=img_ids,
                max_dets_per_image=self._max_dets_per_image,
                log=self._logger,
            )
        )

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
        self, coco_eval: Any, iou_type: str, class_names: list[str] | None = None
    ) -> dict[str, float]:
        """COCOeval stats in percent, plus per-category AP when there is more than one class."""
        return _derive_coco_results(coco_eval, iou_type, class_names, self._logger)


def _tasks_from_results(coco_results: list[dict]) -> list[str]:
    tasks = {"bbox"}
    for result in coco_results:
        if "segmentation" in result:
            tasks.add("segm")
        if "keypoints" in result:
            tasks.add("keypoints")
    return sorted(tasks)


def _evaluate_tasks(
    coco_gt: Any,
    coco_results: list[dict],
    tasks: Any,
    *,
    class_names: list[str] | None,
    use_fast_impl: bool,
    kpt_oks_sigmas: Any = (),
    img_ids: list[int] | None = None,
    max_dets_per_image: list[int] | None = None,
    log: logging.Logger = logger,
) -> OrderedDict:
    """``{task: metrics}`` of COCO results (dataset category ids) for each task, in sorted order."""
    results: OrderedDict = OrderedDict()
    for task in sorted(tasks):
        if task not in _METRICS:
            raise ValueError(f"Got unknown task: {task}! Known tasks: {sorted(_METRICS)}")
        coco_eval = (
            _evaluate_predictions_on_coco(
                coco_gt,
                coco_results,
                task,
                kpt_oks_sigmas=kpt_oks_sigmas,
                cocoeval_fn=_cocoeval_class(use_fast_impl, max_dets_per_image),
                img_ids=img_ids,
                max_dets_per_image=max_dets_per_image,
            )
            if len(coco_results) > 0
            else None  # cocoapi does not handle empty results very well
        )
        results[task] = _derive_coco_results(coco_eval, task, class_names, log)
    return results


def _derive_coco_results(
    coco_eval: Any, iou_type: str, class_names: list[str] | None, log: logging.Logger = logger
) -> dict[str, float]:
    """COCOeval stats in percent (NaN where COCOeval has no value), plus ``AP-<class>`` per
    category when there is more than one class."""
    metrics = _METRICS[iou_type]
    if coco_eval is None:
        log.warning("No predictions from the model!")
        return {metric: float("nan") for metric in metrics}

    results = {
        metric: float(coco_eval.stats[idx] * 100 if coco_eval.stats[idx] >= 0 else "nan")
        for idx, metric in enumerate(metrics)
    }
    log.info("Evaluation results for %s: %s", iou_type, results)
    if not np.isfinite(sum(results.values())):
        log.info("Some metrics cannot be computed and is shown as NaN.")

    if class_names is None or len(class_names) <= 1:
        return results
    # precision has dims (iou, recall, cls, area range, max dets)
    precisions = coco_eval.eval["precision"]
    if len(class_names) != precisions.shape[2]:
        raise ValueError(f"{len(class_names)} class names but COCOeval has {precisions.shape[2]} categories")
    for idx, name in enumerate(class_names):
        precision = precisions[:, :, idx, 0, -1]
        precision = precision[precision > -1]
        ap = np.mean(precision) if precision.size else float("nan")
        results["AP-" + name] = float(ap * 100)
    return results


def evaluate_coco_results(
    results: list[dict] | str | os.PathLike,
    dataset: str | os.PathLike,
    tasks: tuple[str, ...] | list[str] | None = None,
    *,
    use_fast_impl: bool = True,
    max_dets_per_image: int | None = None,
    kpt_oks_sigmas: tuple[float, ...] | list[float] | None = None,
    img_ids: list[int] | None = None,
) -> OrderedDict:
    """Score COCO results against a dataset's ground truth, without a model.

    ``results`` is a COCO results json (a file, or its list of dicts with ``image_id``, the
    dataset's ``category_id``, XYWH ``bbox``, ``score`` and optionally ``segmentation`` RLE and
    ``keypoints``), e.g. ``coco_instances_results.json`` written by :class:`COCOEvaluator`.
    ``dataset`` is a registered dataset name (its metadata ``json_file``) or a COCO json file.
    Returns what ``COCOEvaluator.evaluate()`` returns: ``{task: {"AP", "AP50", ..., "AP-<class>"}}``
    in percent; tasks default to what the results contain::

        evaluate_coco_results("out/coco_instances_results.json", "coco_2017_val")["bbox"]["AP"]

    Results naming an image or category the ground truth lacks are a ``ValueError`` that names
    them; the caller's list is not modified.
    """
    results_name = "the results list"
    if isinstance(results, (str, os.PathLike)):
        results_name = os.fspath(results)
        try:
            with open(results) as f:
                results = json.load(f)
        except OSError as e:
            raise ValueError(f"Cannot read the COCO results file {results_name}: {e.strerror or e}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{results_name} is not json ({e})") from None
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ValueError(f"{results_name} must be a json list of COCO result dicts")

    metadata = None
    json_file: str | os.PathLike = dataset
    if isinstance(dataset, str) and not os.path.isfile(dataset):
        if dataset not in DatasetCatalog:
            raise ValueError(
                f"{dataset!r} is neither a COCO json file nor a registered dataset; "
                "pass a path or a name listed by DatasetCatalog.list()"
            )
        metadata = MetadataCatalog.get(dataset)
        if metadata.get("json_file") and not os.path.isfile(metadata.json_file):
            DatasetCatalog.get(dataset)  # lazily generated datasets write their json when loaded
        if not metadata.get("json_file") or not os.path.isfile(metadata.json_file):
            raise ValueError(
                f"Dataset {dataset!r} has no COCO json file (metadata 'json_file'); evaluate it "
                "with COCOEvaluator(..., output_dir=...), which converts it"
            )
        json_file = metadata.json_file
    if use_fast_impl and not fast_coco_eval_available():
        use_fast_impl = False
    coco_gt = load_coco_api(json_file, use_fast_impl=use_fast_impl)
    if "annotations" not in coco_gt.dataset:
        raise ValueError(f"{os.fspath(json_file)} has no 'annotations': there is nothing to score against")

    _check_results(results, coco_gt, results_name, os.fspath(json_file))
    if tasks is None:
        tasks = _tasks_from_results(results)
    cat_ids = sorted(coco_gt.getCatIds())
    class_names = [coco_gt.cats[c]["name"] for c in cat_ids]
    if kpt_oks_sigmas is None:
        kpt_oks_sigmas = (metadata.get("keypoint_oks_sigmas") if metadata is not None else None) or ()
    max_dets = [1, 10, 100 if max_dets_per_image is None else max_dets_per_image]
    return _evaluate_tasks(
        coco_gt,
        results,
        tasks,
        class_names=class_names,
        use_fast_impl=use_fast_impl,
        kpt_oks_sigmas=kpt_oks_sigmas,
        img_ids=img_ids,
        max_dets_per_image=max_dets,
    )


def _check_results(results: list[dict], coco_gt: Any, results_name: str, gt_name: str) -> None:
    image_ids = set(coco_gt.getImgIds())
    cat_ids = set(coco_gt.getCatIds())
    for i, result in enumerate(results):
        missing = [k for k in ("image_id", "category_id", "score") if k not in result]
        if missing:
            raise ValueError(f"Result {i} of {results_name} lacks {missing}: {str(result)[:200]}")
        if result["image_id"] not in image_ids:
            raise ValueError(
                f"Result {i} of {results_name} has image_id {result['image_id']!r}, which {gt_name} does not have"
            )
        if result["category_id"] not in cat_ids:
            raise ValueError(
                f"Result {i} of {results_name} has category_id {result['category_id']!r}; {gt_name} has "
                f"{sorted(cat_ids)[:20]}{' ...' if len(cat_ids) > 20 else ''} (results use the dataset's ids)"
            )


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
    coco_gt: Any,
    coco_results: list[dict],
    iou_type: str,
    kpt_oks_sigmas: Any = None,
    cocoeval_fn: Any = None,
    img_ids: list[int] | None = None,
    max_dets_per_image: list[int] | None = None,
) -> Any:
    """Run COCOeval (evaluate, accumulate, summarize) of ``iou_type`` and return it.

    ``cocoeval_fn`` is the COCOeval class (default: the fast one when installed); ``coco_gt``
    must be the COCO API of the same implementation (:func:`load_coco_api`). The caller's result
    dicts are not modified: each task works on its own shallow copies, because ``loadRes`` writes
    ``id``, ``area`` and ``iscrowd`` into them.
    """
    if len(coco_results) == 0:
        raise ValueError("_evaluate_predictions_on_coco needs at least one result")
    if max_dets_per_image is None:
        max_dets_per_image = [1, 10, 100]
    elif len(max_dets_per_image) < 3:
        raise ValueError(
            f"COCOeval needs at least 3 max-detections limits (maxDets), got {list(max_dets_per_image)}"
        )
    if cocoeval_fn is None:
        cocoeval_fn = _cocoeval_class(True, max_dets_per_image)
    if iou_type == "segm":
        if any("segmentation" not in c for c in coco_results):
            raise ValueError("segm evaluation needs a 'segmentation' (pred_masks) in every prediction")
        # With a "bbox" field, loadRes would use the box instead of the mask for the area (and so
        # for the small / medium / large split).
        task_results = [{k: v for k, v in c.items() if k != "bbox"} for c in coco_results]
    else:
        task_results = [dict(c) for c in coco_results]

    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(task_results)
        coco_eval = cocoeval_fn(coco_gt, coco_dt, iou_type)
    if iou_type != "keypoints":
        coco_eval.params.maxDets = list(max_dets_per_image)
    if img_ids is not None:
        coco_eval.params.imgIds = img_ids

    if iou_type == "keypoints":
        # Use the COCO default keypoint OKS sigmas unless overrides are specified
        if kpt_oks_sigmas is not None and len(kpt_oks_sigmas):
            coco_eval.params.kpt_oks_sigmas = np.array(kpt_oks_sigmas, dtype=np.float64)
        if any("keypoints" not in c for c in coco_results):
            raise ValueError("keypoints evaluation needs 'keypoints' (pred_keypoints) in every prediction")
        # COCOAPI requires every detection and every gt to have keypoints, so the first of each tells
        num_keypoints_dt = len(coco_results[0]["keypoints"]) // 3
        first_gt: dict = next(iter(coco_gt.anns.values()), {})
        if "keypoints" not in first_gt:
            raise ValueError("keypoints evaluation needs ground truth with 'keypoints'; this dataset has none")
        num_keypoints_gt = len(first_gt["keypoints"]) // 3
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


class _MaxDetsSummary:
    """COCOeval summary that uses the configured third max-detections limit instead of 100 for
    AP and AR (pycocotools hard-codes 100 for AP, which gives -1 for any other limit)."""

    params: Any
    eval: dict
    stats: Any

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
            super().summarize()  # type: ignore[misc]
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


class COCOevalMaxDets(_MaxDetsSummary, COCOeval):
    """pycocotools' COCOeval whose summary uses the configured third max-detections limit."""


@functools.cache
def _fast_cocoeval_maxdets() -> type:
    modules = _fast_coco_modules()
    if modules is None:
        raise RuntimeError("ultrafast-pycocotools is not installed")
    return type("COCOevalMaxDets_opt", (_MaxDetsSummary, modules[1]), {"__module__": __name__})


def _cocoeval_class(use_fast_impl: bool, max_dets_per_image: list[int] | None) -> type:
    """The COCOeval class for one evaluation: the compiled one or pycocotools', with the
    max-detections summary when the AP limit is not COCO's 100."""
    custom_limit = max_dets_per_image is not None and max_dets_per_image[2] != 100
    if use_fast_impl:
        modules = _fast_coco_modules()
        if modules is None:
            raise RuntimeError(
                "use_fast_impl=True needs ultrafast-pycocotools (pip install ultrafast-pycocotools)"
            )
        return _fast_cocoeval_maxdets() if custom_limit else modules[1]
    return COCOevalMaxDets if custom_limit else COCOeval
