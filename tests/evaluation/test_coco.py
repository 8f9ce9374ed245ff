"""COCOEvaluator: AP 100 on ground truth fed back, pycocotools' own figure on a perturbed case,
hand-computed AP on a one-box case."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from det.data import DatasetCatalog, MetadataCatalog, register_coco_instances
from det.data.shapes import ShapesConfig, register_shapes
from det.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators, inference_on_dataset
from det.evaluation.coco_evaluation import instances_to_coco_json
from det.structures import Boxes, BoxMode, Instances


@pytest.fixture(scope="module")
def shapes_val(tmp_path_factory):
    names = (f"ev_t_{uuid.uuid4().hex[:6]}", f"ev_v_{uuid.uuid4().hex[:6]}")
    register_shapes(
        ShapesConfig(num_train=1, num_val=6, seed=11), tmp_path_factory.mktemp("evshapes"), names=names
    )
    yield names[1]
    for n in names:
        DatasetCatalog.remove(n)


def _gt_as_predictions(dicts, perturb=None):
    """Ground truth of each dataset dict turned into a model output (Instances)."""
    outputs = []
    for d in dicts:
        h, w = d["height"], d["width"]
        annos = d["annotations"]
        boxes = np.array(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos], dtype=np.float32
        )
        masks = []
        for a in annos:
            segm = a["segmentation"]
            rle = mask_util.merge(mask_util.frPyObjects(segm, h, w)) if isinstance(segm, list) else segm
            masks.append(mask_util.decode(rle).astype(bool))
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.from_numpy(boxes))
        inst.scores = torch.ones(len(annos))
        inst.pred_classes = torch.tensor([a["category_id"] for a in annos])
        inst.pred_masks = torch.from_numpy(np.stack(masks))
        inst.pred_keypoints = torch.tensor([a["keypoints"] for a in annos], dtype=torch.float32).reshape(
            len(annos), -1, 3
        )
        if perturb is not None:
            inst = perturb(inst)
        outputs.append({"instances": inst})
    return outputs


def _run(evaluator, dicts, outputs):
    evaluator.reset()
    for d, o in zip(dicts, outputs):
        evaluator.process([{"image_id": d["image_id"]}], [o])
    return evaluator.evaluate()


def test_ground_truth_as_predictions_gives_ap_100(shapes_val):
    dicts = DatasetCatalog.get(shapes_val)
    results = _run(COCOEvaluator(shapes_val, distributed=False), dicts, _gt_as_predictions(dicts))
    assert sorted(results) == ["bbox", "keypoints", "segm"]
    assert set(results["bbox"]) >= {
        "AP",
        "AP50",
        "AP75",
        "APs",
        "APm",
        "APl",
        "AP-circle",
        "AP-square",
        "AP-triangle",
    }
    assert set(results["keypoints"]) >= {"AP", "AP50", "AP75", "APm", "APl"}
    for task in ("bbox", "segm", "keypoints"):
        assert results[task]["AP"] == pytest.approx(100.0), task
        assert results[task]["AP50"] == pytest.approx(100.0), task


def test_perturbed_predictions_match_pycocotools(shapes_val, tmp_path):
    dicts = DatasetCatalog.get(shapes_val)
    gen = torch.Generator().manual_seed(0)

    def perturb(inst):
        inst = inst[torch.arange(len(inst)) != 0]  # miss the first object
        inst.pred_boxes.tensor += torch.randn(inst.pred_boxes.tensor.shape, generator=gen) * 3
        inst.scores = torch.rand(len(inst), generator=gen)
        inst.pred_masks = torch.roll(inst.pred_masks, shifts=2, dims=2)
        return inst

    outputs = _gt_as_predictions(dicts, perturb)
    evaluator = COCOEvaluator(shapes_val, tasks=("bbox", "segm"), distributed=False, output_dir=str(tmp_path))
    results = _run(evaluator, dicts, copy.deepcopy(outputs))

    # The same predictions evaluated by pycocotools directly.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(MetadataCatalog.get(shapes_val).json_file)
        dt = json.loads((tmp_path / "coco_instances_results.json").read_text())
        for iou_type in ("bbox", "segm"):
            res = [dict(r) for r in dt]
            if iou_type == "segm":
                for r in res:
                    r.pop("bbox")
            ev = COCOeval(coco_gt, coco_gt.loadRes(res), iou_type)
            ev.evaluate(), ev.accumulate(), ev.summarize()
            for i, metric in enumerate(["AP", "AP50", "AP75"]):
                assert results[iou_type][metric] == pytest.approx(ev.stats[i] * 100), (iou_type, metric)
    assert 0 < results["bbox"]["AP"] < 100 and 0 < results["segm"]["AP"] < 100
    assert (tmp_path / "instances_predictions.pth").is_file()


@pytest.fixture
def one_box(tmp_path):
    data = {
        "images": [{"id": 7, "file_name": "a.png", "width": 200, "height": 200}],
        "categories": [{"id": 3, "name": "thing"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 3,
                "bbox": [10, 10, 100, 100],
                "area": 10000,
                "iscrowd": 0,
            }
        ],
    }
    (tmp_path / "one.json").write_text(json.dumps(data))
    name = f"one_{uuid.uuid4().hex[:6]}"
    register_coco_instances(name, {}, tmp_path / "one.json", tmp_path)
    DatasetCatalog.get(name)  # sets thing_dataset_id_to_contiguous_id = {3: 0}
    yield name
    DatasetCatalog.remove(name)


def test_one_box_with_iou_062_has_hand_computed_ap(one_box):
    inst = Instances((200, 200))
    inst.pred_boxes = Boxes(torch.tensor([[10.0, 10.0, 72.0, 110.0]]))  # IoU = 62 * 100 / 10000
    inst.scores = torch.tensor([0.9])
    inst.pred_classes = torch.tensor([0])
    ev = COCOEvaluator(one_box, distributed=False)
    ev.reset()
    ev.process([{"image_id": 7}], [{"instances": inst}])
    res = ev.evaluate()["bbox"]
    # Matched at IoU thresholds 0.50, 0.55, 0.60 of the ten 0.50:0.95: AP = 3/10.
    assert res["AP"] == pytest.approx(30.0)
    assert res["AP50"] == pytest.approx(100.0) and res["AP75"] == pytest.approx(0.0)
    assert res["APl"] == pytest.approx(30.0)  # area 10000 > 96^2
    assert np.isnan(res["APs"]) and np.isnan(res["APm"])
    assert "AP-thing" not in res  # per-class AP only with several classes


def test_no_predictions_and_bad_class(one_box, caplog):
    ev = COCOEvaluator(one_box, distributed=False)
    ev.reset()
    assert ev.evaluate() == {}
    inst = Instances((200, 200))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 5.0, 5.0]]))
    inst.scores = torch.tensor([0.5])
    inst.pred_classes = torch.tensor([4])
    ev.process([{"image_id": 7}], [{"instances": inst}])
    with pytest.raises(ValueError, match="only has 1 classes"):
        ev.evaluate()
    with pytest.raises(ValueError, match="unknown tasks"):
        COCOEvaluator(one_box, tasks=("boxes",))


def test_keypoint_sigmas_must_match(shapes_val):
    dicts = DatasetCatalog.get(shapes_val)
    ev = COCOEvaluator(shapes_val, tasks=("keypoints",), distributed=False, kpt_oks_sigmas=(0.1, 0.1))
    with pytest.raises(ValueError, match="have to agree"):
        _run(ev, dicts, _gt_as_predictions(dicts))


def test_instances_to_coco_json():
    inst = Instances((4, 5))
    inst.pred_boxes = Boxes(torch.tensor([[1.0, 1.0, 3.0, 4.0]]))
    inst.scores = torch.tensor([0.5])
    inst.pred_classes = torch.tensor([2])
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    mask[0, 1:3, 1:4] = True
    inst.pred_masks = mask
    inst.pred_keypoints = torch.tensor([[[2.0, 3.0, 0.9]]])
    (r,) = instances_to_coco_json(inst, 42)
    assert r["image_id"] == 42 and r["category_id"] == 2 and r["score"] == 0.5
    assert r["bbox"] == [1.0, 1.0, 2.0, 3.0]
    assert isinstance(r["segmentation"]["counts"], str) and mask_util.area(r["segmentation"]) == 6
    assert r["keypoints"] == pytest.approx([1.5, 2.5, 0.9])
    assert inst.pred_keypoints[0, 0, 0] == 2.0  # the input is not modified
    assert instances_to_coco_json(inst[[]], 1) == []


def test_dataset_without_json_is_converted(tmp_path):
    name = f"nojson_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(
        name,
        lambda: [
            {
                "file_name": "x.png",
                "image_id": 1,
                "height": 50,
                "width": 50,
                "annotations": [{"bbox": [5, 5, 20, 20], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0}],
            }
        ],
    )
    MetadataCatalog.get(name).thing_classes = ["only"]
    try:
        with pytest.raises(ValueError, match="output_dir"):
            COCOEvaluator(name)
        ev = COCOEvaluator(name, distributed=False, output_dir=str(tmp_path))
        inst = Instances((50, 50))
        inst.pred_boxes = Boxes(torch.tensor([[5.0, 5.0, 20.0, 20.0]]))
        inst.scores = torch.tensor([1.0])
        inst.pred_classes = torch.tensor([0])
        ev.process([{"image_id": 1}], [{"instances": inst}])
        assert ev.evaluate()["bbox"]["AP"] == pytest.approx(100.0)
        assert (tmp_path / f"{name}_coco_format.json").is_file()
    finally:
        DatasetCatalog.remove(name)


class _Counter(DatasetEvaluator):
    def __init__(self, key):
        self.key = key

    def reset(self):
        self.n = 0

    def process(self, inputs, outputs):
        self.n += len(outputs)

    def evaluate(self):
        return {self.key: {"n": self.n}}


def test_inference_on_dataset_runs_model_in_eval_mode_and_merges():
    model = torch.nn.Linear(1, 1)
    model.train()
    seen_modes = []

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, inputs):
            seen_modes.append((self.training, torch.is_grad_enabled()))
            return [{} for _ in inputs]

    wrapped = Wrapped()
    wrapped.train()
    loader = [[{"image_id": i}] for i in range(7)]
    results = inference_on_dataset(wrapped, loader, [_Counter("a"), _Counter("b")], progress=False)
    assert results == {"a": {"n": 7}, "b": {"n": 7}}
    assert seen_modes == [(False, False)] * 7 and wrapped.training  # mode restored afterwards
    with pytest.raises(ValueError, match="same key"):
        inference_on_dataset(
            wrapped, loader, DatasetEvaluators([_Counter("a"), _Counter("a")]), progress=False
        )
    assert inference_on_dataset(lambda x: x, loader, None) == {}
