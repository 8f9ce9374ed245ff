"""The built-in synthetic shapes dataset: deterministic, cached, visible-part masks, keypoints."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from det.data import DatasetCatalog, MetadataCatalog
from det.data.datasets import load_coco_json
from det.data.detection_utils import create_keypoint_hflip_indices
from det.data.shapes import (
    SHAPES_CLASSES,
    ShapesConfig,
    default_shapes_root,
    prepare_shapes,
    register_shapes,
)

SMALL = ShapesConfig(num_train=8, num_val=3, seed=5, min_shapes=2, max_shapes=4)


@pytest.fixture(scope="module")
def small_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return root, prepare_shapes(SMALL, root)


def _decode(segm, h, w):
    if isinstance(segm, dict):
        return mask_util.decode({"size": segm["size"], "counts": segm["counts"].encode()}).astype(bool)
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects(segm, h, w))).astype(bool)


def test_files_and_splits(small_shapes):
    _, paths = small_shapes
    train_json, train_root = paths["train"]
    coco = json.loads(train_json.read_text())
    assert len(coco["images"]) == 8 and len(json.loads(paths["val"][0].read_text())["images"]) == 3
    assert [c["name"] for c in coco["categories"]] == list(SHAPES_CLASSES)
    assert coco["categories"][0]["keypoints"] == ["center", "top", "left", "right", "bottom"]
    for img in coco["images"]:
        with Image.open(train_root / img["file_name"]) as im:
            assert im.mode == "RGB" and im.size == (img["width"], img["height"])
            assert 128 <= im.size[0] <= 192 and 128 <= im.size[1] <= 192
    per_image = {}
    for a in coco["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    assert all(2 <= len(v) <= 4 for v in per_image.values())


def test_generation_is_deterministic_and_cached(small_shapes, tmp_path):
    root, paths = small_shapes
    again = prepare_shapes(SMALL, tmp_path)
    assert again["train"][0].read_bytes() == paths["train"][0].read_bytes()
    png = sorted(paths["train"][1].iterdir())[0].name
    assert (again["train"][1] / png).read_bytes() == (paths["train"][1] / png).read_bytes()
    # A second call reuses the folder instead of regenerating.
    mtime = paths["train"][0].stat().st_mtime_ns
    assert prepare_shapes(SMALL, root) == paths and paths["train"][0].stat().st_mtime_ns == mtime
    # Another seed is another dataset, in another folder.
    other = prepare_shapes(ShapesConfig(num_train=8, num_val=3, seed=6, min_shapes=2, max_shapes=4), root)
    assert other["train"][0].parent.parent != paths["train"][0].parent.parent
    assert other["train"][0].read_bytes() != paths["train"][0].read_bytes()


def test_masks_are_exactly_the_visible_pixels(small_shapes):
    _, paths = small_shapes
    json_file, image_root = paths["train"]
    coco = json.loads(json_file.read_text())
    n_polygons = n_rle = 0
    for img in coco["images"]:
        image = np.asarray(Image.open(image_root / img["file_name"]))
        h, w = img["height"], img["width"]
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        masks = [_decode(a["segmentation"], h, w) for a in anns]
        union = np.zeros((h, w), dtype=int)
        for a, m in zip(anns, masks):
            n_polygons += isinstance(a["segmentation"], list)
            n_rle += isinstance(a["segmentation"], dict)
            assert m.sum() == a["area"] > 0
            # A shape is painted in one flat colour, so its visible pixels are all that colour.
            assert len(np.unique(image[m].reshape(-1, 3), axis=0)) == 1
            x, y, bw, bh = a["bbox"]
            ys, xs = np.nonzero(m)
            assert (
                x - 1 <= xs.min() and xs.max() <= x + bw + 1 and y - 1 <= ys.min() and ys.max() <= y + bh + 1
            )
            union += m
        assert union.max() <= 1  # visible parts never overlap
    assert n_polygons > 0 and n_rle > 0  # unoccluded shapes as polygons, occluded ones as RLE


def test_keypoints_and_metadata(small_shapes):
    _, paths = small_shapes
    coco = json.loads(paths["train"][0].read_text())
    for a in coco["annotations"]:
        kp = np.asarray(a["keypoints"]).reshape(5, 3)
        assert set(kp[:, 2].tolist()) <= {1, 2}
        x, y, w, h = a["bbox"]
        if isinstance(a["segmentation"], list):  # unoccluded: keypoints lie on the shape's box
            cx, cy = kp[:, 0] + 0.5, kp[:, 1] + 0.5
            assert np.isclose(cy[1], y, atol=1e-3) and np.isclose(cx[2], x, atol=1e-3)
            assert np.isclose(cx[3], x + w, atol=1e-3) and np.isclose(cy[4], y + h, atol=1e-3)
            assert (kp[:, 2] == 2).all()


def test_register_shapes_is_lazy(tmp_path):
    names = (f"shapes_t_{uuid.uuid4().hex[:6]}", f"shapes_v_{uuid.uuid4().hex[:6]}")
    cfg = ShapesConfig(num_train=2, num_val=1, seed=1)
    register_shapes(cfg, tmp_path, names=names)
    try:
        assert not any(tmp_path.iterdir())  # nothing generated yet
        meta = MetadataCatalog.get(names[0])
        assert meta.thing_classes == ["circle", "square", "triangle"] and meta.evaluator_type == "coco"
        assert create_keypoint_hflip_indices(names[0]) == [0, 1, 3, 2, 4]
        dicts = DatasetCatalog.get(names[1])
        assert len(dicts) == 1 and dicts[0]["annotations"][0]["category_id"] in (0, 1, 2)
        val_meta = MetadataCatalog.get(names[1])
        assert dicts == load_coco_json(val_meta.json_file, val_meta.image_root, names[1])
        with pytest.raises(ValueError, match="already registered"):
            register_shapes(cfg, tmp_path, names=names)
        register_shapes(ShapesConfig(num_train=3, num_val=1, seed=1), tmp_path, names=names, replace=True)
        assert len(DatasetCatalog.get(names[0])) == 3
    finally:
        for n in names:
            DatasetCatalog.remove(n)


def test_builtin_names_and_cache_root(monkeypatch, tmp_path):
    assert "shapes_train" in DatasetCatalog and "shapes_val" in DatasetCatalog
    monkeypatch.setenv("DET_CACHE", str(tmp_path))
    assert default_shapes_root() == tmp_path / "shapes"


def test_config_validation():
    with pytest.raises(ValueError, match="min_shapes"):
        ShapesConfig(min_shapes=3, max_shapes=2)
    with pytest.raises(ValueError, match="max_occlusion"):
        ShapesConfig(max_occlusion=1.0)


def test_color_by_class_uses_one_hue_band_per_class(tmp_path):
    import colorsys

    cfg = ShapesConfig(num_train=6, num_val=1, seed=2, color_by_class=True)
    json_file, image_root = prepare_shapes(cfg, tmp_path)["train"]
    coco = json.loads(json_file.read_text())
    images = {i["id"]: i for i in coco["images"]}
    for a in coco["annotations"]:
        info = images[a["image_id"]]
        image = np.asarray(Image.open(image_root / info["file_name"]))
        r, g, b = image[_decode(a["segmentation"], info["height"], info["width"])][0] / 255.0
        hue = colorsys.rgb_to_hsv(r, g, b)[0]
        centre = (a["category_id"] - 1) / 3
        assert min(abs(hue - centre), 1 - abs(hue - centre)) <= 0.08, (a["category_id"], hue)


def test_default_root_without_det_cache_creates_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("DET_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_shapes_root() == tmp_path / "xdg" / "det" / "shapes"
    assert not (tmp_path / "xdg").exists()
