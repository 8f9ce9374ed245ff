"""Cityscapes: loading a tiny gtFine tree written here (json polygons, instanceIds, trainIds),
registration without file access, and the official semantic scores on hand-computed cases."""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from det.data import DatasetCatalog, MetadataCatalog
from det.data.datasets import (
    load_cityscapes_instances,
    load_cityscapes_semantic,
    register_all_cityscapes,
)
from det.data.datasets.cityscapes import CITYSCAPES_LABELS, STUFF_LABELS, THING_LABELS
from det.structures import BoxMode

STEM = "aachen_000000_000019_"
H, W = 6, 8


@pytest.fixture
def tree(tmp_path):
    """leftImg8bit/train/aachen/<stem>leftImg8bit.png and its gtFine files."""
    image_dir = tmp_path / "leftImg8bit" / "train"
    gt_dir = tmp_path / "gtFine" / "train"
    (image_dir / "aachen").mkdir(parents=True)
    (gt_dir / "aachen").mkdir(parents=True)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(image_dir / "aachen" / f"{STEM}leftImg8bit.png")
    objects = [
        {"label": "road", "polygon": [[0, 0], [7, 0], [7, 5], [0, 5]]},
        {"label": "car", "polygon": [[1, 1], [4, 1], [4, 3], [1, 3]]},  # pixels x 1..4, y 1..3
        {"label": "person", "polygon": [[3, 2], [5, 2], [5, 4], [3, 4]]},  # over the car: x 3..5, y 2..4
        {"label": "cargroup", "polygon": [[6, 0], [7, 0], [7, 1], [6, 1]]},  # a crowd, x 6..7, y 0..1
        {"label": "caravan", "polygon": [[0, 5], [1, 5], [1, 5], [0, 5]]},  # ignored in evaluation
        {"label": "license plate", "polygon": [[0, 0], [1, 0], [1, 1]]},  # id -1: not drawn
        {"label": "car", "deleted": 1, "polygon": [[0, 0], [7, 0], [7, 5]]},
    ]
    with open(gt_dir / "aachen" / f"{STEM}gtFine_polygons.json", "w") as f:
        json.dump({"imgHeight": H, "imgWidth": W, "objects": objects}, f)
    inst = np.zeros((H, W), np.uint16)
    inst[:] = 7  # road
    inst[1:4, 1:5] = 26000  # car #0
    inst[2:5, 3:6] = 24001  # person #1 (over the car)
    inst[0:2, 6:8] = 26  # a crowd of cars
    inst[5, 7] = 24002  # a one-pixel person: dropped
    Image.fromarray(inst).save(gt_dir / "aachen" / f"{STEM}gtFine_instanceIds.png")
    label_ids = np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)
    Image.fromarray(label_ids).save(gt_dir / "aachen" / f"{STEM}gtFine_labelIds.png")
    train_ids = np.full((H, W), 255, np.uint8)
    Image.fromarray(train_ids).save(gt_dir / "aachen" / f"{STEM}gtFine_labelTrainIds.png")
    return str(image_dir), str(gt_dir)


def _mask_of(polygons, h=H, w=W):
    from det.structures import polygons_to_bitmask

    return polygons_to_bitmask([np.asarray(p) for p in polygons], h, w)


def test_label_table_facts():
    assert len(CITYSCAPES_LABELS) == 35
    assert [lb.name for lb in THING_LABELS] == [
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    ]
    assert [lb.trainId for lb in STUFF_LABELS] == list(range(19))
    assert [lb.id for lb in STUFF_LABELS] == [
        7,
        8,
        11,
        12,
        13,
        17,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        31,
        32,
        33,
    ]
    car = next(lb for lb in CITYSCAPES_LABELS if lb.name == "car")
    assert (car.id, car.trainId, car.hasInstances, car.ignoreInEval, car.color) == (
        26,
        13,
        True,
        False,
        (0, 0, 142),
    )


def test_label_table_agrees_with_builtin_meta():
    from det.data.datasets import builtin_meta

    meta = builtin_meta.get_builtin_metadata("cityscapes")
    assert meta["thing_classes"] == [lb.name for lb in THING_LABELS]
    assert meta["stuff_classes"] == [lb.name for lb in STUFF_LABELS]


def test_instances_from_json(tree):
    image_dir, gt_dir = tree
    (record,) = load_cityscapes_instances(image_dir, gt_dir, from_json=True, to_polygons=True)
    assert record["file_name"] == os.path.join(image_dir, "aachen", f"{STEM}leftImg8bit.png")
    assert record["image_id"] == f"{STEM}leftImg8bit.png"
    assert (record["height"], record["width"]) == (H, W)
    anns = record["annotations"]
    # Latest object first: the crowd, the person, then what is left of the car.
    assert [(a["category_id"], a["iscrowd"]) for a in anns] == [(2, True), (0, False), (2, False)]
    assert all(a["bbox_mode"] == BoxMode.XYXY_ABS for a in anns)
    crowd, person, car = anns
    assert crowd["bbox"] == (6.0, 0.0, 8.0, 2.0)
    assert person["bbox"] == (3.0, 2.0, 6.0, 5.0)
    assert person["segmentation"] == [[3.0, 2.0, 6.0, 2.0, 6.0, 5.0, 3.0, 5.0]]
    # PIL draws the car's pixels x 1..4, y 1..3; the person took x 3..4, y 2..3.
    expected_car = np.zeros((H, W), bool)
    expected_car[1:4, 1:5] = True
    expected_car[2:5, 3:6] = False
    assert car["bbox"] == (1.0, 1.0, 5.0, 4.0)
    np.testing.assert_array_equal(_mask_of(car["segmentation"]), expected_car)


def test_instances_from_png(tree):
    image_dir, gt_dir = tree
    (record,) = load_cityscapes_instances(image_dir, gt_dir, from_json=False, to_polygons=True)
    anns = record["annotations"]
    # Instance ids in increasing order: 26 (crowd car), 24001 (person), 26000 (car).
    assert [(a["category_id"], a["iscrowd"]) for a in anns] == [(2, True), (0, False), (2, False)]
    assert anns[1]["bbox"] == (3.0, 2.0, 6.0, 5.0)
    person = np.zeros((H, W), bool)
    person[2:5, 3:6] = True
    np.testing.assert_array_equal(_mask_of(anns[1]["segmentation"]), person)

    (record,) = load_cityscapes_instances(image_dir, gt_dir, from_json=False, to_polygons=False)
    import pycocotools.mask as mask_util

    np.testing.assert_array_equal(
        mask_util.decode(record["annotations"][1]["segmentation"]).astype(bool), person
    )


def test_instances_json_needs_polygons(tree):
    with pytest.raises(ValueError, match="to_polygons"):
        load_cityscapes_instances(*tree, from_json=True, to_polygons=False)


def test_semantic(tree):
    image_dir, gt_dir = tree
    assert load_cityscapes_semantic(image_dir, gt_dir) == [
        {
            "file_name": os.path.join(image_dir, "aachen", f"{STEM}leftImg8bit.png"),
            "sem_seg_file_name": os.path.join(gt_dir, "aachen", f"{STEM}gtFine_labelTrainIds.png"),
            "height": H,
            "width": W,
        }
    ]


def test_register_all_cityscapes_reads_nothing(tmp_path):
    names = [
        f"cityscapes_fine_{t}_{s}" for t in ("instance_seg", "sem_seg") for s in ("train", "val", "test")
    ]
    saved = {n: (DatasetCatalog.pop(n, None), MetadataCatalog.pop(n, None)) for n in names}
    root = str(tmp_path / "absent")
    try:
        register_all_cityscapes(root)
        meta = MetadataCatalog.get("cityscapes_fine_sem_seg_val")
        assert meta.image_dir == os.path.join(root, "cityscapes/leftImg8bit/val/")
        assert meta.gt_dir == os.path.join(root, "cityscapes/gtFine/val/")
        assert (meta.evaluator_type, meta.ignore_label) == ("cityscapes_sem_seg", 255)
        assert (
            MetadataCatalog.get("cityscapes_fine_instance_seg_train").evaluator_type == "cityscapes_instance"
        )
        assert len(meta.stuff_classes) == 19 and len(meta.thing_classes) == 8
        with pytest.raises(FileNotFoundError, match="DETECTRON2_DATASETS"):
            DatasetCatalog.get("cityscapes_fine_instance_seg_val")
    finally:
        for n, (d, m) in saved.items():
            DatasetCatalog.pop(n, None)
            MetadataCatalog.pop(n, None)
            if d is not None:
                DatasetCatalog[n] = d
            if m is not None:
                MetadataCatalog[n] = m


def _onehot_train_ids(train_ids: np.ndarray) -> torch.Tensor:
    return (
        torch.nn.functional.one_hot(torch.as_tensor(train_ids, dtype=torch.int64), 19)
        .permute(2, 0, 1)
        .float()
    )


def test_sem_seg_evaluator_by_hand(tree):
    from det.evaluation import CityscapesSemSegEvaluator

    image_dir, gt_dir = tree
    name = f"cityscapes_mini_{uuid.uuid4().hex[:6]}"
    MetadataCatalog.get(name).set(image_dir=image_dir, gt_dir=gt_dir)
    try:
        ev = CityscapesSemSegEvaluator(name)
        ev.reset()
        # Ground truth (label ids): car 26 (8 visible px of instance 26000 + the crowd's 4),
        # person 24 (9 px of 24001 + 1 px of 24002, which the loader drops but the metric
        # keeps), road 7 elsewhere.
        gt = np.asarray(Image.open(os.path.join(gt_dir, "aachen", f"{STEM}gtFine_labelIds.png")))
        # Predict road (trainId 0) everywhere except the person's 3x3 block -> person (11).
        pred = np.zeros((H, W), np.int64)
        pred[2:5, 3:6] = 11
        file_name = os.path.join(image_dir, "aachen", f"{STEM}leftImg8bit.png")
        ev.process([{"file_name": file_name}], [{"sem_seg": _onehot_train_ids(pred)}])
        res = ev.evaluate()["sem_seg"]
    finally:
        MetadataCatalog.pop(name)
    n_person = int((gt == 24).sum())
    n_car = int((gt == 26).sum())
    n_road = H * W - n_person - n_car
    assert (n_person, n_car, n_road) == (10, 12, 26)
    # road: tp 26, fp = car 12 + person pixel (5, 7) -> 26 / 39; person: 9 / 10; car: 0 / 12.
    # Classes absent from both ground truth and prediction are NaN and not averaged.
    iou = {"road": 26 / 39, "person": 9 / 10, "car": 0.0}
    assert res["IoU"] == pytest.approx(100 * sum(iou.values()) / 3)
    # Categories: flat (road) 26/39, human (person) 9/10, vehicle 0.
    assert res["IoU_sup"] == pytest.approx(100 * (26 / 39 + 9 / 10 + 0) / 3)
    # iIoU: person 24001 (9 px) all right, 24002 (1 px) wrong, each weighted avg/size; car
    # instance 26000 (8 visible px) missed; the crowd (id 26) is no instance; no false positives.
    avg = {"person": 3462.4756337644, "car": 12794.0202738185}
    tp_w, fn_w = 9 * avg["person"] / 9, 1 * avg["person"] / 1
    i_person = tp_w / (tp_w + fn_w)
    i_car = 0.0
    assert res["iIoU"] == pytest.approx(100 * (i_person + i_car) / 2)
    assert res["iIoU_sup"] == pytest.approx(100 * (i_person + i_car) / 2)


def test_instance_evaluator_needs_cityscapesscripts(monkeypatch):
    import builtins

    from det.evaluation import CityscapesInstanceEvaluator

    real_import = builtins.__import__

    def without_cityscapesscripts(name, *args, **kwargs):  # whether or not it is installed here
        if name == "cityscapesscripts" or name.startswith("cityscapesscripts."):
            raise ImportError("No module named 'cityscapesscripts'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_cityscapesscripts)
    with pytest.raises(ImportError, match=r'pip install "det-evaluation\[cityscapes\]"'):
        CityscapesInstanceEvaluator("anything")
