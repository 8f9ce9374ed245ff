"""DatasetCatalog / MetadataCatalog and COCO json <-> standard dataset dicts."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from PIL import Image

from det.data import DatasetCatalog, MetadataCatalog
from det.data.catalog import Metadata
from det.data.datasets import (
    convert_to_coco_dict,
    load_coco_json,
    load_sem_seg,
    register_coco_instances,
)
from det.structures import BoxMode


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def coco_json(tmp_path):
    """Two images, non-contiguous category ids 5 and 9, a crowd RLE, a degenerate polygon."""
    for i, (w, h) in enumerate([(40, 30), (20, 50)], start=1):
        Image.fromarray(np.full((h, w, 3), 10 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    data = {
        "images": [
            {"id": 1, "file_name": "1.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "2.png", "width": 20, "height": 50},
        ],
        "categories": [{"id": 9, "name": "square"}, {"id": 5, "name": "circle"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 9,
                "bbox": [2, 3, 10, 8],
                "area": 80,
                "iscrowd": 0,
                "segmentation": [[2, 3, 12, 3, 12, 11, 2, 11]],
                "keypoints": [4, 5, 2, 0, 0, 0],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 5,
                "bbox": [20, 10, 5, 5],
                "area": 25,
                "iscrowd": 1,
                "segmentation": {"size": [30, 40], "counts": [610, 5, 25, 5, 25, 5, 25, 5, 25, 5, 520]},
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 5,
                "bbox": [1, 1, 3, 3],
                "area": 9,
                "iscrowd": 0,
                "segmentation": [[1, 1, 4, 1]],
            },
            {
                "id": 4,
                "image_id": 2,
                "category_id": 5,
                "bbox": [5, 6, 7, 8],
                "area": 56,
                "iscrowd": 0,
                "segmentation": [[5, 6, 12, 6, 12, 14]],
            },
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_dataset_catalog_register_get_and_errors():
    name = _name("cat")
    DatasetCatalog.register(name, lambda: [{"file_name": "x"}])
    try:
        assert DatasetCatalog.get(name) == [{"file_name": "x"}]
        assert name in DatasetCatalog.list()
        with pytest.raises(ValueError, match="already registered"):
            DatasetCatalog.register(name, lambda: [])
    finally:
        DatasetCatalog.remove(name)
    with pytest.raises(KeyError, match="not registered"):
        DatasetCatalog.get(name)
    with pytest.raises(TypeError, match="callable"):
        DatasetCatalog.register(_name("bad"), [1, 2])


def test_metadata_is_write_once_and_knows_old_names():
    meta = MetadataCatalog.get(_name("meta"))
    meta.set(thing_classes=["a", "b"])
    meta.thing_classes = ["a", "b"]  # the same value again is fine
    with pytest.raises(AssertionError, match="different value"):
        meta.thing_classes = ["b", "a"]
    assert meta.class_names == ["a", "b"]  # detectron2's old name
    with pytest.raises(AttributeError, match="stuff_classes"):
        _ = meta.stuff_classes
    assert meta.get("stuff_classes", 7) == 7
    assert isinstance(meta, Metadata) and meta.as_dict()["thing_classes"] == ["a", "b"]


def test_load_coco_json_maps_ids_filters_and_converts(coco_json, tmp_path):
    name = _name("coco")
    dicts = load_coco_json(coco_json, tmp_path, name)
    meta = MetadataCatalog.get(name)
    # Classes sorted by dataset id; contiguous ids follow that order.
    assert meta.thing_classes == ["circle", "square"]
    assert meta.thing_dataset_id_to_contiguous_id == {5: 0, 9: 1}

    assert [d["image_id"] for d in dicts] == [1, 2]
    d1, d2 = dicts
    assert d1["file_name"] == str(tmp_path / "1.png") and (d1["height"], d1["width"]) == (30, 40)
    a, crowd = d1["annotations"]
    assert a["category_id"] == 1 and a["bbox"] == [2, 3, 10, 8] and a["bbox_mode"] == BoxMode.XYWH_ABS
    assert a["keypoints"] == [4.5, 5.5, 2, 0.5, 0.5, 0]  # +0.5 to x/y, visibility untouched
    assert crowd["iscrowd"] == 1 and crowd["category_id"] == 0
    assert isinstance(crowd["segmentation"]["counts"], bytes)  # uncompressed RLE got compressed
    # The instance whose only polygon has 2 points is dropped.
    assert len(d2["annotations"]) == 1 and d2["annotations"][0]["bbox"] == [5, 6, 7, 8]


def test_load_coco_json_rejects_unknown_category(tmp_path):
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0}
        ],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(KeyError, match="category_id=2"):
        load_coco_json(path, tmp_path, _name("bad"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_coco_json(tmp_path / "missing.json", tmp_path)


def test_register_coco_instances_is_lazy_and_sets_metadata(coco_json, tmp_path):
    name = _name("reg")
    register_coco_instances(name, {"extra": 1}, coco_json, tmp_path)
    try:
        meta = MetadataCatalog.get(name)
        assert meta.json_file == str(coco_json) and meta.evaluator_type == "coco" and meta.extra == 1
        assert len(DatasetCatalog.get(name)) == 2
    finally:
        DatasetCatalog.remove(name)


def test_convert_to_coco_dict_round_trips(coco_json, tmp_path):
    name = _name("conv")
    register_coco_instances(name, {}, coco_json, tmp_path)
    try:
        coco = convert_to_coco_dict(name)
    finally:
        DatasetCatalog.remove(name)
    assert sorted(c["id"] for c in coco["categories"]) == [5, 9]
    first = coco["annotations"][0]
    assert first["category_id"] == 9 and first["bbox"] == [2, 3, 10, 8]
    assert first["keypoints"] == [4, 5, 2, 0, 0, 0] and first["num_keypoints"] == 1
    assert first["area"] == 80.0
    assert coco["annotations"][1]["iscrowd"] == 1


def test_load_sem_seg_pairs_files_by_name(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    for stem in ("a", "b", "c"):
        (tmp_path / "img" / f"{stem}.jpg").write_bytes(b"")
    for stem in ("a", "c"):
        (tmp_path / "gt" / f"{stem}.png").write_bytes(b"")
    dicts = load_sem_seg(str(tmp_path / "gt"), str(tmp_path / "img"))
    assert [(d["file_name"].split("/")[-1], d["sem_seg_file_name"].split("/")[-1]) for d in dicts] == [
        ("a.jpg", "a.png"),
        ("c.jpg", "c.png"),
    ]
