"""Pascal VOC: the XML loader (1-based pixel shift, difficult objects kept) and the evaluator's
AP (VOC2007 11-point and area-under-curve), checked against values worked out by hand."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch

from det.data import DatasetCatalog, MetadataCatalog
from det.data.datasets.pascal_voc import CLASS_NAMES, load_voc_instances, register_pascal_voc
from det.evaluation import PascalVOCDetectionEvaluator
from det.evaluation.pascal_voc_evaluation import voc_ap
from det.structures import Boxes, BoxMode, Instances

CLASSES = ("cat", "dog")


def _object(name: str, box: tuple[int, int, int, int], difficult: int | None = 0) -> str:
    flag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    xmin, ymin, xmax, ymax = box
    return (
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{flag}"
        f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>"
        "</object>"
    )


@pytest.fixture
def voc_dir(tmp_path):
    """Image "a" (100x80): cats at (1,1,10,10), (21,21,30,30), a difficult cat at (41,41,50,50)
    and a dog at (1,21,10,30). Image "b" (50x60): a cat at (1,1,20,20) without <difficult>."""
    root = tmp_path / "VOC2007"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "test.txt").write_text("a\nb\n")
    objects_a = (
        _object("cat", (1, 1, 10, 10))
        + _object("cat", (21, 21, 30, 30))
        + _object("cat", (41, 41, 50, 50), difficult=1)
        + _object("dog", (1, 21, 10, 30))
    )
    size = "<size><width>{}</width><height>{}</height><depth>3</depth></size>"
    (root / "Annotations" / "a.xml").write_text(
        f"<annotation><filename>a.jpg</filename>{size.format(100, 80)}{objects_a}</annotation>"
    )
    (root / "Annotations" / "b.xml").write_text(
        f"<annotation>{size.format(50, 60)}{_object('cat', (1, 1, 20, 20), difficult=None)}</annotation>"
    )
    return root


@pytest.fixture
def registered(voc_dir):
    """The same split registered as a 2007 and a 2012 dataset."""
    names = {year: f"voc_test_{year}_{uuid.uuid4().hex[:6]}" for year in (2007, 2012)}
    for year, name in names.items():
        register_pascal_voc(name, voc_dir, "test", year, class_names=CLASSES)
    yield names
    for name in names.values():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_load_voc_instances(voc_dir):
    a, b = load_voc_instances(str(voc_dir), "test", CLASSES)
    assert a["file_name"] == str(voc_dir / "JPEGImages" / "a.jpg")
    assert (a["image_id"], a["height"], a["width"]) == ("a", 80, 100)
    assert [o["category_id"] for o in a["annotations"]] == [0, 0, 0, 1]  # the difficult cat kept
    assert a["annotations"][0]["bbox"] == [0.0, 0.0, 10.0, 10.0]  # xmin/ymin - 1, xmax/ymax kept
    assert a["annotations"][3]["bbox"] == [0.0, 20.0, 10.0, 30.0]
    assert all(o["bbox_mode"] == BoxMode.XYXY_ABS for o in a["annotations"])
    assert (b["height"], b["width"], b["annotations"][0]["bbox"]) == (60, 50, [0.0, 0.0, 20.0, 20.0])
    with pytest.raises(KeyError, match="'dog' is not one of class_names"):
        load_voc_instances(str(voc_dir), "test", ("cat",))


def test_register_pascal_voc_metadata(registered, voc_dir):
    meta = MetadataCatalog.get(registered[2007])
    assert meta.thing_classes == list(CLASSES) and meta.dirname == str(voc_dir)
    assert meta.year == 2007 and meta.split == "test"
    assert [d["image_id"] for d in DatasetCatalog.get(registered[2012])] == ["a", "b"]
    assert len(CLASS_NAMES) == 20 and CLASS_NAMES[14] == "person"


def test_voc_ap_by_hand():
    rec, prec = np.array([0.5, 1.0]), np.array([1.0, 0.5])
    # area: recall 0->0.5 at precision 1, 0.5->1 at 0.5
    assert voc_ap(rec, prec) == pytest.approx(0.75)
    # 11-point: levels 0..0.5 (6) reach precision 1, levels 0.6..1 (5) only 0.5
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(8.5 / 11)
    # The envelope: a later, higher precision lifts the earlier points.
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # np.arange's third level is 0.30000000000000004: recall exactly 0.3 does not reach it.
    assert voc_ap(np.array([0.3]), np.array([1.0]), use_07_metric=True) == pytest.approx(3 / 11)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0


def _predictions(image_id: str, boxes: list[tuple[float, ...]], scores: list[float], classes: list[int]):
    instances = Instances((80, 100))
    instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    instances.scores = torch.tensor(scores)
    instances.pred_classes = torch.tensor(classes)
    return [{"image_id": image_id}], [{"instances": instances}]


def _evaluate(name: str) -> dict:
    """Cat detections by score (det's XYXY, i.e. VOC's box with xmin/ymin - 1):
    0.9 exact cat (TP), 0.8 exact difficult cat (ignored), 0.7 the first cat again (FP),
    0.6 exact cat of "b" (TP), 0.5 nowhere in "b" (FP); the cat at (21,21,30,30) is missed.
    -> recall 1/3, 1/3, 1/3, 2/3, 2/3 and precision 1, 1, 1/2, 2/3, 1/2 at every IoU threshold.
    Dog: one box of IoU 100/160 = 0.625 with the dog: TP for thresholds 0.5-0.6, FP above."""
    evaluator = PascalVOCDetectionEvaluator(name)
    evaluator.reset()
    evaluator.process(
        *_predictions(
            "a",
            [(0, 0, 10, 10), (40, 40, 50, 50), (0, 0, 10, 10), (0, 20, 10, 36)],
            [0.9, 0.8, 0.7, 0.95],
            [0, 0, 0, 1],
        )
    )
    evaluator.process(*_predictions("b", [(0, 0, 20, 20), (59, 59, 70, 70)], [0.6, 0.5], [0, 0]))
    return evaluator.evaluate()["bbox"]


def test_evaluator_area_metric_2012(registered):
    res = _evaluate(registered[2012])
    # cat: area under the envelope = 1/3 * 1 + 1/3 * 2/3 = 5/9 at every threshold
    # dog: 1 at 0.5, 0.55, 0.6 and 0 at the 7 higher thresholds
    assert res["AP50"] == pytest.approx(100 * (5 / 9 + 1) / 2)  # 77.78
    assert res["AP75"] == pytest.approx(100 * (5 / 9) / 2)  # 27.78
    assert res["AP"] == pytest.approx(100 * (3 * (5 / 9 + 1) / 2 + 7 * (5 / 9) / 2) / 10)  # 42.78


def test_evaluator_11_point_metric_2007(registered):
    res = _evaluate(registered[2007])
    # cat: levels 0, .1, .2, .3 reach precision 1; .4, .5, .6 reach 2/3; .7-1 nothing -> 6/11
    assert res["AP50"] == pytest.approx(100 * (6 / 11 + 1) / 2)  # 77.27
    assert res["AP75"] == pytest.approx(100 * (6 / 11) / 2)  # 27.27
    assert res["AP"] == pytest.approx(100 * (3 * (6 / 11 + 1) / 2 + 7 * (6 / 11) / 2) / 10)  # 42.27


def test_difficult_objects_are_neither_hit_nor_miss(registered):
    """Without the detection of the difficult cat the result is the same; were that cat an
    ordinary object, the recall would be over 4 cats."""
    evaluator = PascalVOCDetectionEvaluator(registered[2012])
    evaluator.reset()
    evaluator.process(*_predictions("a", [(0, 0, 10, 10), (0, 0, 10, 10)], [0.9, 0.7], [0, 0]))
    evaluator.process(*_predictions("b", [(0, 0, 20, 20), (59, 59, 70, 70)], [0.6, 0.5], [0, 0]))
    evaluator.process(*_predictions("a", [(0, 20, 10, 36)], [0.95], [1]))
    assert evaluator.evaluate()["bbox"] == pytest.approx(_evaluate(registered[2012]))


def test_evaluator_needs_voc_metadata():
    name = f"not_voc_{uuid.uuid4().hex[:6]}"
    MetadataCatalog.get(name).set(thing_classes=["x"])
    try:
        with pytest.raises(ValueError, match="'dirname'"):
            PascalVOCDetectionEvaluator(name)
    finally:
        MetadataCatalog.remove(name)
