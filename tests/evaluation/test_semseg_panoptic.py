"""SemSegEvaluator and panoptic quality on hand-computed cases."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from det.data import DatasetCatalog, MetadataCatalog
from det.evaluation import COCOPanopticEvaluator, SemSegEvaluator
from det.evaluation.panoptic_evaluation import pq_compute_single_image, rgb2id


def _scores(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(labels), num_classes).permute(2, 0, 1).float()


@pytest.fixture
def semseg_dataset(tmp_path):
    gt = np.array([[0, 0, 1, 1], [0, 255, 1, 1]], dtype=np.uint8)
    Image.fromarray(gt).save(tmp_path / "gt.png")
    name = f"semseg_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(
        name, lambda: [{"file_name": "img.png", "sem_seg_file_name": str(tmp_path / "gt.png")}]
    )
    MetadataCatalog.get(name).set(stuff_classes=["sky", "road"], ignore_label=255)
    yield name
    DatasetCatalog.remove(name)


def test_sem_seg_metrics_by_hand(semseg_dataset, tmp_path):
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 0]])
    ev = SemSegEvaluator(semseg_dataset, distributed=False, output_dir=str(tmp_path))
    ev.reset()
    ev.process([{"file_name": "img.png"}], [{"sem_seg": _scores(pred, 2)}])
    res = ev.evaluate()["sem_seg"]
    # Non-ignored pixels (gt, pred): (0,0) x2, (0,1), (1,1) x3, (1,0). tp = [2, 3];
    # gt counts [3, 4]; pred counts [3, 4]. IoU = [2/4, 3/5], acc = [2/3, 3/4].
    assert res["IoU-sky"] == pytest.approx(50.0) and res["IoU-road"] == pytest.approx(60.0)
    assert res["mIoU"] == pytest.approx(55.0)
    assert res["fwIoU"] == pytest.approx(100 * (3 / 7 * 0.5 + 4 / 7 * 0.6))
    assert res["ACC-sky"] == pytest.approx(100 * 2 / 3) and res["ACC-road"] == pytest.approx(75.0)
    assert res["mACC"] == pytest.approx(100 * (2 / 3 + 3 / 4) / 2)
    assert res["pACC"] == pytest.approx(100 * 5 / 7)
    assert (tmp_path / "sem_seg_predictions.json").is_file()


def test_sem_seg_bad_output_shape(semseg_dataset):
    ev = SemSegEvaluator(semseg_dataset, distributed=False)
    ev.reset()
    with pytest.raises(ValueError, match=r"\(2,H,W\)"):
        ev.process([{"file_name": "img.png"}], [{"sem_seg": torch.zeros(3, 2, 4)}])


def _pq(gt, gt_info, pred, pred_info):
    return pq_compute_single_image(np.array(gt), gt_info, np.array(pred), pred_info)


def test_pq_thing_match_stuff_miss():
    gt = [[1, 1, 2, 2]] * 4  # segment 1: thing class 0, segment 2: stuff class 1 (8 px each)
    pred = [[10, 10, 10, 20]] * 4  # 10 covers 12 px (IoU 8/12 with 1); 20 covers 4 px (IoU 4/8 with 2)
    gt_info = [{"id": 1, "category_id": 0, "isthing": True}, {"id": 2, "category_id": 1, "isthing": False}]
    pred_info = [
        {"id": 10, "category_id": 0, "isthing": True},
        {"id": 20, "category_id": 1, "isthing": False},
    ]
    stat = _pq(gt, gt_info, pred, pred_info)
    assert stat[(True, 0)] == {"iou": pytest.approx(2 / 3), "tp": 1, "fp": 0, "fn": 0}
    # IoU exactly 0.5 is not a match: one false negative and one false positive.
    assert stat[(False, 1)] == {"iou": 0.0, "tp": 0, "fp": 1, "fn": 1}
    categories = {(True, 0): {"isthing": True}, (False, 1): {"isthing": False}}
    all_, _ = stat.pq_average(categories, isthing=None)
    things, _ = stat.pq_average(categories, isthing=True)
    stuff, _ = stat.pq_average(categories, isthing=False)
    assert (
        things["pq"] == pytest.approx(2 / 3) and things["sq"] == pytest.approx(2 / 3) and things["rq"] == 1.0
    )
    assert stuff == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 1}
    assert all_["pq"] == pytest.approx(1 / 3) and all_["rq"] == pytest.approx(0.5) and all_["n"] == 2


def test_pq_void_and_crowd():
    info = [{"id": 1, "category_id": 0, "isthing": True}]
    # Prediction spills onto unlabeled (void) pixels: those do not count in the union.
    stat = _pq([[1, 1, 0, 0]] * 4, info, [[5, 5, 5, 0]] * 4, [{"id": 5, "category_id": 0, "isthing": True}])
    assert stat[(True, 0)]["tp"] == 1 and stat[(True, 0)]["iou"] == pytest.approx(1.0)
    # An unmatched prediction lying mostly on a crowd region of its class is not a false positive.
    gt_info = [
        {"id": 1, "category_id": 0, "isthing": True},
        {"id": 2, "category_id": 0, "isthing": True, "iscrowd": 1},
    ]
    stat = _pq(
        [[1, 1, 2, 2]] * 4,
        gt_info,
        [[5, 5, 6, 6]] * 4,
        [{"id": 5, "category_id": 0, "isthing": True}, {"id": 6, "category_id": 0, "isthing": True}],
    )
    assert stat[(True, 0)] == {"iou": pytest.approx(1.0), "tp": 1, "fp": 0, "fn": 0}
    with pytest.raises(KeyError, match="not presented in JSON"):
        _pq([[1]], info, [[9]], [])


def test_panoptic_evaluator_end_to_end(tmp_path):
    gt = np.array([[1, 1, 2, 2]] * 4)
    rgb = np.stack([gt % 256, gt // 256 % 256, gt // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "pan.png")
    np.testing.assert_array_equal(rgb2id(np.asarray(Image.open(tmp_path / "pan.png"))), gt)
    segments = [
        {"id": 1, "category_id": 0, "isthing": True, "iscrowd": 0},
        {"id": 2, "category_id": 1, "isthing": False, "iscrowd": 0},
    ]
    name = f"pan_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(
        name,
        lambda: [
            {"file_name": "a.png", "pan_seg_file_name": str(tmp_path / "pan.png"), "segments_info": segments}
        ],
    )
    try:
        ev = COCOPanopticEvaluator(name, distributed=False)
        ev.reset()
        pred = torch.tensor([[3, 3, 4, 4]] * 4)
        pred_info = [
            {"id": 3, "category_id": 0, "isthing": True},
            {"id": 4, "category_id": 1, "isthing": False},
        ]
        ev.process([{"file_name": "a.png"}], [{"panoptic_seg": (pred, pred_info)}])
        res = ev.evaluate()["panoptic_seg"]
        assert res["PQ"] == pytest.approx(100.0) and res["PQ_th"] == pytest.approx(100.0)
        assert res["SQ_st"] == pytest.approx(100.0) and res["RQ"] == pytest.approx(100.0)
    finally:
        DatasetCatalog.remove(name)


def test_coco_panoptic_json_to_evaluator(tmp_path):
    import json

    from det.data.datasets import register_coco_panoptic

    gt = np.array([[1, 1, 2, 2]] * 4)
    rgb = np.stack([gt % 256, gt // 256 % 256, gt // 65536], axis=-1).astype(np.uint8)
    (tmp_path / "pan").mkdir()
    Image.fromarray(rgb).save(tmp_path / "pan" / "000001.png")
    data = {
        "annotations": [
            {
                "image_id": 1,
                "file_name": "000001.png",
                "segments_info": [
                    {"id": 1, "category_id": 17, "iscrowd": 0},
                    {"id": 2, "category_id": 90, "iscrowd": 0},
                ],
            }
        ]
    }
    (tmp_path / "pan.json").write_text(json.dumps(data))
    meta = {"thing_dataset_id_to_contiguous_id": {17: 0}, "stuff_dataset_id_to_contiguous_id": {90: 0}}
    name = f"cocopan_{uuid.uuid4().hex[:6]}"
    register_coco_panoptic(
        name, meta, str(tmp_path / "img"), str(tmp_path / "pan"), str(tmp_path / "pan.json")
    )
    try:
        (d,) = DatasetCatalog.get(name)
        assert d["file_name"] == str(tmp_path / "img" / "000001.jpg")
        assert d["segments_info"] == [
            {"id": 1, "category_id": 0, "iscrowd": 0, "isthing": True},
            {"id": 2, "category_id": 0, "iscrowd": 0, "isthing": False},
        ]
        assert MetadataCatalog.get(name).evaluator_type == "coco_panoptic_seg"
        ev = COCOPanopticEvaluator(name, distributed=False)
        ev.reset()
        # Thing and stuff share contiguous id 0: isthing tells them apart. Swapped labels never match.
        pred_info = [
            {"id": 1, "category_id": 0, "isthing": False},
            {"id": 2, "category_id": 0, "isthing": True},
        ]
        ev.process([{"file_name": d["file_name"]}], [{"panoptic_seg": (torch.from_numpy(gt), pred_info)}])
        res = ev.evaluate()["panoptic_seg"]
        assert res["PQ"] == 0.0 and res["PQ_th"] == 0.0 and res["PQ_st"] == 0.0
    finally:
        DatasetCatalog.remove(name)


def test_panoptic_ground_truth_matched_by_image_id_from_a_cityscapes_style_json(tmp_path):
    """Cityscapes' panoptic json names images by string ids and lists PNGs whose stems are not the
    images' file names: the evaluator matches predictions by image_id, as detectron2 does."""
    import json

    from det.data.datasets import register_all_cityscapes_panoptic

    stem = "aachen_000000_000019"
    image_dir = tmp_path / "cityscapes" / "leftImg8bit" / "val" / "aachen"
    gt_dir = tmp_path / "cityscapes" / "gtFine" / "val" / "aachen"
    pan_dir = tmp_path / "cityscapes" / "gtFine" / "cityscapes_panoptic_val"
    for folder in (image_dir, gt_dir, pan_dir):
        folder.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image_dir / f"{stem}_leftImg8bit.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(gt_dir / f"{stem}_gtFine_labelTrainIds.png")
    gt = np.array([[7, 7, 26001, 26001]] * 4)  # road (label id 7), one car (26, instance 1)
    Image.fromarray(np.stack([gt % 256, gt // 256 % 256, gt // 65536], -1).astype(np.uint8)).save(
        pan_dir / f"{stem}_gtFine_panoptic.png")
    (tmp_path / "cityscapes" / "gtFine" / "cityscapes_panoptic_val.json").write_text(json.dumps({"annotations": [{
        "image_id": stem, "file_name": f"{stem}_gtFine_panoptic.png",
        "segments_info": [{"id": 7, "category_id": 7, "iscrowd": 0}, {"id": 26001, "category_id": 26, "iscrowd": 0}],
    }]}))
    names = ("cityscapes_fine_panoptic_train", "cityscapes_fine_panoptic_val")
    for n in names:
        if n in DatasetCatalog:
            DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)
    register_all_cityscapes_panoptic(tmp_path)
    try:
        (record,) = DatasetCatalog.get("cityscapes_fine_panoptic_val")
        ev = COCOPanopticEvaluator("cityscapes_fine_panoptic_val", distributed=False)
        ev.reset()
        # Panoptic-DeepLab's output: category * label_divisor + instance, no segments_info
        pred = torch.tensor([[0 * 1000, 0 * 1000, 13 * 1000 + 1, 13 * 1000 + 1]] * 4)
        ev.process([{"file_name": record["file_name"], "image_id": record["image_id"]}],
                   [{"panoptic_seg": (pred, None)}])
        res = ev.evaluate()["panoptic_seg"]
        assert res["PQ"] == pytest.approx(100.0)
        assert res["PQ_th"] == pytest.approx(100.0) and res["PQ_st"] == pytest.approx(100.0)
        with pytest.raises(KeyError, match="no panoptic ground truth for image_id 'ulm_000000_000019'"):
            ev.process([{"file_name": "x.png", "image_id": "ulm_000000_000019"}], [{"panoptic_seg": (pred, None)}])
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
        from det.data.datasets.builtin import get_datasets_root

        register_all_cityscapes_panoptic(get_datasets_root())
