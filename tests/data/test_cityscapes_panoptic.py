"""Cityscapes panoptic (``cityscapes_fine_panoptic_{train,val}``): a tiny tree in the layout
cityscapesscripts' createPanopticImgs.py writes, loaded to detectron2's records, registered with its
metadata, and served under detectron2's module path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from det.data import DatasetCatalog, MetadataCatalog
from det.data.datasets import (
    get_cityscapes_panoptic_files,
    load_cityscapes_panoptic,
    register_all_cityscapes_panoptic,
)
from det.data.datasets.builtin_meta import CITYSCAPES_CATEGORIES
from det.data.datasets.cityscapes_panoptic import _cityscapes_panoptic_meta

STEMS = ("aachen_000000_000019", "aachen_000001_000019", "bremen_000000_000019")


def _write_split(root, split, stems=STEMS, skip_json_for=()):
    """leftImg8bit/<split>/<city>/..., gtFine/<split>/<city>/..._labelTrainIds.png and the panoptic
    json + PNGs; segments: road (label id 7) and one car (26) per image."""
    annotations = []
    for k, stem in enumerate(stems):
        city = stem.split("_")[0]
        image_dir = root / "cityscapes" / "leftImg8bit" / split / city
        gt_dir = root / "cityscapes" / "gtFine" / split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(image_dir / f"{stem}_leftImg8bit.png")
        Image.fromarray(np.zeros((4, 6), np.uint8)).save(gt_dir / f"{stem}_gtFine_labelTrainIds.png")
        if stem in skip_json_for:
            continue
        pan_dir = root / "cityscapes" / "gtFine" / f"cityscapes_panoptic_{split}"
        pan_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(pan_dir / f"{stem}_gtFine_panoptic.png")
        annotations.append({
            "image_id": stem,
            "file_name": f"{stem}_gtFine_panoptic.png",
            "segments_info": [
                {"id": 7, "category_id": 7, "area": 20, "bbox": [0, 0, 6, 4], "iscrowd": 0},
                {"id": 26000 + k, "category_id": 26, "area": 4, "bbox": [1, 1, 2, 2], "iscrowd": 0},
            ],
        })
    gt_json = root / "cityscapes" / "gtFine" / f"cityscapes_panoptic_{split}.json"
    gt_json.write_text(json.dumps({"annotations": annotations, "categories": []}))
    return (root / "cityscapes" / "leftImg8bit" / split, root / "cityscapes" / "gtFine" / f"cityscapes_panoptic_{split}",
            gt_json)


def test_meta_maps_label_ids_to_train_ids_as_detectron2():
    meta = _cityscapes_panoptic_meta()
    names = [c["name"] for c in CITYSCAPES_CATEGORIES]
    assert len(names) == 19
    assert meta["thing_classes"] == meta["stuff_classes"] == names
    assert meta["thing_dataset_id_to_contiguous_id"] == {24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17,
                                                         33: 18}
    assert meta["stuff_dataset_id_to_contiguous_id"][7] == 0  # road
    assert meta["stuff_dataset_id_to_contiguous_id"][23] == 10  # sky
    assert len(meta["stuff_dataset_id_to_contiguous_id"]) == 11


def test_load_records(tmp_path):
    image_dir, gt_dir, gt_json = _write_split(tmp_path, "train")
    records = load_cityscapes_panoptic(image_dir, gt_dir, gt_json, _cityscapes_panoptic_meta())
    assert [r["image_id"] for r in records] == list(STEMS)
    first = records[0]
    assert first["file_name"] == str(image_dir / "aachen" / f"{STEMS[0]}_leftImg8bit.png")
    assert first["sem_seg_file_name"] == str(
        tmp_path / "cityscapes" / "gtFine" / "train" / "aachen" / f"{STEMS[0]}_gtFine_labelTrainIds.png")
    assert first["pan_seg_file_name"] == str(gt_dir / f"{STEMS[0]}_gtFine_panoptic.png")
    # label ids 7 (road) and 26 (car) become train ids 0 and 13; the json itself is untouched
    assert first["segments_info"] == [
        {"id": 7, "category_id": 0, "area": 20, "bbox": [0, 0, 6, 4], "iscrowd": 0, "isthing": False},
        {"id": 26000, "category_id": 13, "area": 4, "bbox": [1, 1, 2, 2], "iscrowd": 0, "isthing": True},
    ]
    assert json.loads(gt_json.read_text())["annotations"][0]["segments_info"][1]["category_id"] == 26
    files = get_cityscapes_panoptic_files(image_dir, gt_dir, json.loads(gt_json.read_text()))
    assert [os.path.basename(f[0]) for f in files] == [f"{s}_leftImg8bit.png" for s in STEMS]


def test_a_dot_in_the_path_does_not_break_the_label_file(tmp_path):
    root = tmp_path / "my.data"
    image_dir, gt_dir, gt_json = _write_split(root, "val", stems=STEMS[:1])
    record = load_cityscapes_panoptic(image_dir, gt_dir, gt_json, _cityscapes_panoptic_meta())[0]
    assert os.path.isfile(record["sem_seg_file_name"])


def test_missing_files_are_named(tmp_path):
    image_dir, gt_dir, gt_json = _write_split(tmp_path, "train")
    meta = _cityscapes_panoptic_meta()
    with pytest.raises(FileNotFoundError, match=r"cityscapes_panoptic_val.json' does not exist: .*createPanopticImgs"):
        load_cityscapes_panoptic(image_dir, gt_dir, tmp_path / "cityscapes" / "gtFine" / "cityscapes_panoptic_val.json",
                                 meta)
    (gt_dir / f"{STEMS[0]}_gtFine_panoptic.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"_gtFine_panoptic.png' does not exist: .*createPanopticImgs.py"):
        load_cityscapes_panoptic(image_dir, gt_dir, gt_json, meta)
    info = json.loads(gt_json.read_text())
    info["annotations"][0]["image_id"] = "ulm_000000_000019"
    with pytest.raises(FileNotFoundError, match=r"is of image 'ulm_000000_000019', which is not in"):
        get_cityscapes_panoptic_files(image_dir, gt_dir, info)
    info["annotations"][0]["image_id"] = STEMS[0]
    info["annotations"][0]["segments_info"][0]["category_id"] = 3  # "out of roi": no train id
    gt_json.write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"segment 7 has category_id 3, which is no Cityscapes label id"):
        load_cityscapes_panoptic(image_dir, gt_dir, gt_json, meta)
    gt_json.write_text("{not json")
    with pytest.raises(ValueError, match=r"cityscapes_panoptic_train.json is not valid JSON"):
        load_cityscapes_panoptic(image_dir, gt_dir, gt_json, meta)


def test_register_reads_nothing_and_sets_detectron2s_metadata(tmp_path):
    names = ("cityscapes_fine_panoptic_train", "cityscapes_fine_panoptic_val")
    for n in names:
        if n in DatasetCatalog:
            DatasetCatalog.remove(n)
        MetadataCatalog.remove(n)
    try:
        register_all_cityscapes_panoptic(tmp_path)  # nothing exists yet: registering reads no file
        meta = MetadataCatalog.get("cityscapes_fine_panoptic_train")
        root = str(tmp_path)
        assert meta.panoptic_root == os.path.join(root, "cityscapes/gtFine/cityscapes_panoptic_train")
        assert meta.image_root == os.path.join(root, "cityscapes/leftImg8bit/train")
        assert meta.panoptic_json == os.path.join(root, "cityscapes/gtFine/cityscapes_panoptic_train.json")
        assert meta.gt_dir == os.path.join(root, "cityscapes/gtFine/train")
        assert (meta.evaluator_type, meta.ignore_label, meta.label_divisor) == ("cityscapes_panoptic_seg", 255, 1000)
        assert len(meta.thing_classes) == 19 and meta.thing_dataset_id_to_contiguous_id[26] == 13
        _write_split(tmp_path, "val", stems=STEMS[2:])
        records = DatasetCatalog.get("cityscapes_fine_panoptic_val")
        assert [r["image_id"] for r in records] == [STEMS[2]]
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
        from det.data.datasets.builtin import get_datasets_root

        register_all_cityscapes_panoptic(get_datasets_root())


def test_builtin_names_and_detectron2_path(tmp_path):
    script = (
        "from detectron2.data import DatasetCatalog, MetadataCatalog\n"
        "from detectron2.data.datasets.cityscapes_panoptic import load_cityscapes_panoptic\n"
        "import det.data.datasets.cityscapes_panoptic as ours\n"
        "assert load_cityscapes_panoptic is ours.load_cityscapes_panoptic\n"
        "print(sorted(n for n in DatasetCatalog.list() if 'panoptic' in n and 'cityscapes' in n))\n"
        "print(MetadataCatalog.get('cityscapes_fine_panoptic_val').panoptic_json)\n"
    )
    env = {**os.environ, "DETECTRON2_DATASETS": str(tmp_path)}
    env.pop("DET_DATASETS", None)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "['cityscapes_fine_panoptic_train', 'cityscapes_fine_panoptic_val']"
    assert lines[1] == str(tmp_path / "cityscapes" / "gtFine" / "cityscapes_panoptic_val.json")
