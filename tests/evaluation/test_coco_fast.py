"""The two COCOeval implementations (use_fast_impl=True: ultrafast-pycocotools; False:
pycocotools) give the same numbers bit for bit, on generated cases with crowd regions, images
without objects, images without detections, keypoints and a custom max-detections limit; and
evaluate_coco_results scores a results file without a model."""

from __future__ import annotations

import copy
import json
import math
import uuid

import numpy as np
import pytest
import torch

from det.data import DatasetCatalog, MetadataCatalog, register_coco_instances
from det.evaluation import COCOEvaluator, coco_evaluation
from det.evaluation.coco_evaluation import (
    _cocoeval_class,
    _evaluate_predictions_on_coco,
    evaluate_coco_results,
    fast_coco_eval_available,
    load_coco_api,
)
from det.evaluation.synthetic import synthetic_coco_case
from det.structures import Boxes, BoxMode, Instances

# A messy case: 5 categories, 10% crowd objects, 10% images without objects, 10% without
# detections, duplicates and wrong classes among the detections, tied scores.
_CASE = dict(num_images=120, num_categories=5, dets_per_image=25, crowd_fraction=0.1,
             empty_image_fraction=0.1, no_detection_fraction=0.1, seed=3)
_KEYPOINT_CASE = dict(num_images=100, num_categories=1, keypoints=True, masks=False, dets_per_image=12,
                      crowd_fraction=0.1, empty_image_fraction=0.1, no_detection_fraction=0.1, seed=4)


def test_the_fast_implementation_is_installed():
    # det-evaluation depends on ultrafast-pycocotools; without it every test below would compare
    # pycocotools with itself.
    assert fast_coco_eval_available()


def _same(a: dict, b: dict) -> None:
    """Equal metric dicts, NaN equal to NaN, nothing rounded."""
    assert list(a) == list(b)
    for task in a:
        assert list(a[task]) == list(b[task]), task
        for metric, value in a[task].items():
            other = b[task][metric]
            assert (value == other) or (math.isnan(value) and math.isnan(other)), (task, metric, value, other)


def _write(tmp_path, obj, name):
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fastcoco")
    gt, results = synthetic_coco_case(**_CASE)
    assert any(a["iscrowd"] for a in gt["annotations"])
    annotated = {a["image_id"] for a in gt["annotations"]}
    detected = {r["image_id"] for r in results}
    assert any(img["id"] not in annotated for img in gt["images"])  # images without objects
    assert any(img["id"] not in detected for img in gt["images"])  # images without detections
    return _write(tmp, gt, "gt.json"), _write(tmp, results, "results.json"), gt, results


@pytest.fixture(scope="module")
def keypoint_case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fastcocokp")
    gt, results = synthetic_coco_case(**_KEYPOINT_CASE)
    assert any(a["num_keypoints"] == 0 for a in gt["annotations"])  # people COCOeval ignores
    return _write(tmp, gt, "gt.json"), _write(tmp, results, "results.json"), gt, results


@pytest.mark.parametrize("task", ["bbox", "segm"])
def test_precision_recall_and_scores_arrays_are_bit_identical(case, task):
    gt_file, _, _, results = case
    evals = [
        _evaluate_predictions_on_coco(
            load_coco_api(gt_file, use_fast_impl=fast), results, task,
            cocoeval_fn=_cocoeval_class(fast, None),
        )
        for fast in (False, True)
    ]
    slow, fast = evals
    assert type(slow).__module__.startswith("pycocotools")
    assert type(fast).__module__.startswith("ultrafast_pycocotools")
    for key in ("precision", "recall", "scores"):
        assert slow.eval[key].shape == fast.eval[key].shape
        np.testing.assert_array_equal(slow.eval[key], fast.eval[key])
    np.testing.assert_array_equal(slow.stats, fast.stats)
    assert slow.stats[0] > 0.05  # a real AP, not an empty case


def test_summary_and_per_category_ap_identical_for_boxes_and_masks(case):
    gt_file, results_file, _, _ = case
    fast = evaluate_coco_results(results_file, gt_file, use_fast_impl=True)
    slow = evaluate_coco_results(results_file, gt_file, use_fast_impl=False)
    _same(fast, slow)
    assert list(fast) == ["bbox", "segm"]
    assert set(fast["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"} | {
        f"AP-class_{c}" for c in (1, 2, 3, 4, 5)
    }
    assert 5 < fast["bbox"]["AP"] < 95 and 5 < fast["segm"]["AP"] < 95


def test_keypoints_identical(keypoint_case):
    gt_file, results_file, _, _ = keypoint_case
    fast = evaluate_coco_results(results_file, gt_file, tasks=["bbox", "keypoints"], use_fast_impl=True)
    slow = evaluate_coco_results(results_file, gt_file, tasks=["bbox", "keypoints"], use_fast_impl=False)
    _same(fast, slow)
    assert set(fast["keypoints"]) == {"AP", "AP50", "AP75", "APm", "APl"}
    assert 5 < fast["keypoints"]["AP"] < 95


def test_custom_max_dets_and_image_subset_identical(case):
    gt_file, _, gt, results = case
    img_ids = [img["id"] for img in gt["images"][::3]]
    fast = evaluate_coco_results(results, gt_file, ["bbox"], max_dets_per_image=10, img_ids=img_ids)
    slow = evaluate_coco_results(results, gt_file, ["bbox"], max_dets_per_image=10, img_ids=img_ids,
                                 use_fast_impl=False)
    _same(fast, slow)
    # 10 detections per image instead of 100 loses recall, so AP moves
    full = evaluate_coco_results(results, gt_file, ["bbox"], img_ids=img_ids)
    assert fast["bbox"]["AP"] != full["bbox"]["AP"]


def test_evaluator_gives_the_same_numbers_with_either_implementation(keypoint_case):
    """COCOEvaluator fed model outputs (Instances with contiguous class ids), both flags."""
    gt_file, _, gt, results = keypoint_case
    name = f"fastcoco_{uuid.uuid4().hex[:6]}"
    register_coco_instances(name, {}, str(gt_file), "/nonexistent")
    try:
        DatasetCatalog.get(name)  # fills thing_classes and the id mapping
        MetadataCatalog.get(name).keypoint_oks_sigmas = [0.05] * 17
        by_image: dict = {img["id"]: [] for img in gt["images"]}
        for r in results:
            by_image[r["image_id"]].append(r)
        outputs = []
        for img in gt["images"]:
            rs = by_image[img["id"]]
            inst = Instances((img["height"], img["width"]))
            boxes = BoxMode.convert(np.array([r["bbox"] for r in rs], dtype=np.float64).reshape(-1, 4),
                                    BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
            inst.pred_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float64))
            inst.scores = torch.tensor([r["score"] for r in rs], dtype=torch.float64)
            inst.pred_classes = torch.zeros(len(rs), dtype=torch.int64)
            kps = torch.tensor([r["keypoints"] for r in rs], dtype=torch.float64).reshape(len(rs), 17, 3)
            kps[:, :, :2] += 0.5  # instances_to_coco_json shifts back by -0.5
            inst.pred_keypoints = kps
            outputs.append(({"image_id": img["id"]}, {"instances": inst}))

        answers = []
        for fast in (True, False):
            evaluator = COCOEvaluator(name, distributed=False, use_fast_impl=fast)
            assert evaluator._use_fast_impl is fast
            evaluator.reset()
            for inp, out in outputs:
                evaluator.process([inp], [out])
            answers.append(evaluator.evaluate())
        _same(*answers)
        direct = evaluate_coco_results(results, gt_file, ["bbox", "keypoints"], kpt_oks_sigmas=[0.05] * 17)
        _same(answers[0], direct)

        # an input whose image the json lacks is named, not an AssertionError from the COCO API
        evaluator.reset()
        evaluator.process([{"image_id": 999999}], [outputs[0][1]])
        with pytest.raises(ValueError, match=r"the predictions has image_id 999999, which .*gt.json does not have"):
            evaluator.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_results_are_not_modified(case):
    gt_file, _, _, results = case
    before = copy.deepcopy(results[:50])
    evaluate_coco_results(results[:50], gt_file, ["bbox", "segm"])
    assert results[:50] == before


def test_falls_back_to_pycocotools_without_the_fast_package(case, monkeypatch, caplog):
    gt_file, results_file, _, _ = case
    monkeypatch.setattr(coco_evaluation, "_fast_coco_modules", lambda: None)
    assert not fast_coco_eval_available()
    assert type(load_coco_api(gt_file)).__module__.startswith("pycocotools")
    answer = evaluate_coco_results(results_file, gt_file, ["bbox"], use_fast_impl=True)
    assert answer["bbox"]["AP"] > 5
    with pytest.raises(RuntimeError, match="pip install ultrafast-pycocotools"):
        _cocoeval_class(True, None)


def test_results_that_do_not_fit_the_ground_truth_are_named(case, tmp_path):
    gt_file, _, _, results = case
    bad_image = [dict(results[0], image_id=123456789)]
    with pytest.raises(ValueError, match=r"image_id 123456789, which .*gt.json does not have"):
        evaluate_coco_results(bad_image, gt_file)
    bad_class = [dict(results[0], category_id=0)]
    with pytest.raises(ValueError, match=r"category_id 0; .*gt.json has \[1, 2, 3, 4, 5\]"):
        evaluate_coco_results(bad_class, gt_file)
    with pytest.raises(ValueError, match=r"lacks \['score'\]"):
        evaluate_coco_results([{"image_id": results[0]["image_id"], "category_id": 1}], gt_file)
    not_json = tmp_path / "r.json"
    not_json.write_text("{nope")
    with pytest.raises(ValueError, match=r"r.json is not json"):
        evaluate_coco_results(not_json, gt_file)
    with pytest.raises(ValueError, match=r"neither a COCO json file nor a registered dataset"):
        evaluate_coco_results([], "no_such_dataset_anywhere")
    with pytest.raises(ValueError, match=r"not a COCO instances json"):
        evaluate_coco_results([], not_json)
    with pytest.raises(ValueError, match=r"Cannot read the COCO results file .*missing.json"):
        evaluate_coco_results(tmp_path / "missing.json", gt_file)


def test_empty_results_give_nan(case):
    gt_file, _, _, _ = case
    answer = evaluate_coco_results([], gt_file, ["bbox"])
    assert all(math.isnan(v) for v in answer["bbox"].values())
