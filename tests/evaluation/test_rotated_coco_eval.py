"""RotatedCOCOEvaluator: AP 100 for the ground truth fed back, and a hand-computed AP where
only the rotated IoU gives the right matches."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import torch

from det.data import DatasetCatalog, MetadataCatalog
from det.evaluation import RotatedCOCOEvaluator
from det.evaluation.rotated_coco_evaluation import RotatedCOCOeval
from det.structures import Instances, RotatedBoxes

# Two images, one class; boxes are (cx, cy, w, h, angle in degrees).
GT = {
    1: [[20.0, 20.0, 12.0, 6.0, 30.0]],
    2: [[30.0, 30.0, 8.0, 4.0, 90.0], [60.0, 20.0, 10.0, 10.0, 45.0]],
}


@pytest.fixture
def rotated_dataset(tmp_path):
    images, annotations = [], []
    for image_id, boxes in GT.items():
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 100, "width": 100})
        for box in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 5,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    path = tmp_path / "rotated.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 5, "name": "ship"}]})
    )
    name = f"rotated_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(
        json_file=str(path), thing_classes=["ship"], thing_dataset_id_to_contiguous_id={5: 0}
    )
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _run(name, predictions, tmp_path):
    ev = RotatedCOCOEvaluator(name, distributed=False, output_dir=str(tmp_path / "out"))
    ev.reset()
    for image_id, (boxes, scores) in predictions.items():
        inst = Instances((100, 100))
        inst.pred_boxes = RotatedBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5))
        inst.scores = torch.tensor(scores, dtype=torch.float32)
        inst.pred_classes = torch.zeros(len(scores), dtype=torch.int64)
        ev.process([{"image_id": image_id}], [{"instances": inst}])
    return ev.evaluate()


def test_perfect_predictions(rotated_dataset, tmp_path):
    preds = {i: (boxes, [0.9] * len(boxes)) for i, boxes in GT.items()}
    res = _run(rotated_dataset, preds, tmp_path)["bbox"]
    assert res["AP"] == pytest.approx(100.0)
    assert res["AP50"] == pytest.approx(100.0)
    assert res["AP75"] == pytest.approx(100.0)
    written = json.loads((tmp_path / "out" / "coco_instances_results.json").read_text())
    assert {r["category_id"] for r in written} == {5} and len(written[0]["bbox"]) == 5


def test_hand_computed_ap(rotated_dataset, tmp_path):
    # Image 1: exact box (0.9). Image 2: the 8x4 box turned 90 degrees covers x 28..32,
    # y 26..34; the prediction (30, 30, 5, 4, 90) covers x 28..32, y 27.5..32.5: IoU 20/32 =
    # 0.625 (read as unrotated boxes it would be 4x5 in 8x4: IoU 16/36). Plus a false positive
    # far away (0.7); the 45-degree box is missed.
    preds = {
        1: ([[20.0, 20.0, 12.0, 6.0, 30.0]], [0.9]),
        2: ([[30.0, 30.0, 5.0, 4.0, 90.0], [90.0, 90.0, 4.0, 4.0, 0.0]], [0.8, 0.7]),
    }
    res = _run(rotated_dataset, preds, tmp_path)["bbox"]
    # 3 ground-truth boxes. IoU thresholds 0.50, 0.55, 0.60: TP, TP, FP -> recall 2/3 with
    # precision 1 up to there: 67 of COCO's 101 recall points (0.00 .. 0.66) at 1.0.
    # Thresholds 0.65 .. 0.95 (7): TP, FP, FP -> recall 1/3: 34 points at 1.0.
    ap_low, ap_high = 67 / 101, 34 / 101
    assert res["AP50"] == pytest.approx(100 * ap_low)
    assert res["AP75"] == pytest.approx(100 * ap_high)
    assert res["AP"] == pytest.approx(100 * (3 * ap_low + 7 * ap_high) / 10)


def test_rotated_iou_matches_structures():
    from det.structures import pairwise_iou_rotated

    ev = RotatedCOCOeval.__new__(RotatedCOCOeval)
    dt = [[30.0, 30.0, 5.0, 4.0, 90.0]]
    gt = [[30.0, 30.0, 8.0, 4.0, 90.0], [0.0, 0.0, 2.0, 2.0, 0.0]]
    ious = ev.compute_iou_dt_gt(dt, gt, [0, 0])
    np.testing.assert_allclose(ious, [[0.625, 0.0]], atol=1e-9)
    np.testing.assert_allclose(
        ious, pairwise_iou_rotated(torch.tensor(dt), torch.tensor(gt)).numpy(), atol=1e-6
    )
    with pytest.raises(ValueError, match="crowd"):
        ev.compute_iou_dt_gt(dt, gt, [1, 0])
