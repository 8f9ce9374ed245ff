"""The second shapes renderer: deterministic, correct COCO annotations of the visible parts, and
drawn differently from the training generator (anti-aliased edges, other triangles)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from det.data import DatasetCatalog, MetadataCatalog
from det.data.shapes_unseen import (
    UNSEEN_PRESETS,
    UnseenShapesConfig,
    _triangle,
    prepare_unseen_shapes,
    register_unseen_shapes,
)

SMALL = UnseenShapesConfig(num_images=6, min_image_size=64, max_image_size=80, min_shape_size=14, max_shape_size=40)


def _load(config, root):
    json_file, image_root = prepare_unseen_shapes(config, root)
    return json.loads(json_file.read_text()), image_root


def test_same_config_same_dataset_and_annotations_are_the_visible_parts(tmp_path):
    config = dataclasses.replace(SMALL, fills=("solid", "gradient", "texture"), backgrounds=("noise", "stripes"),
                                 jpeg_quality=60)
    coco, image_root = _load(config, tmp_path / "a")
    again, again_root = _load(config, tmp_path / "b")
    assert coco == again
    for im in coco["images"]:
        assert (image_root / im["file_name"]).read_bytes() == (again_root / im["file_name"]).read_bytes()
    assert len(coco["images"]) == 6 and {c["name"] for c in coco["categories"]} == {"circle", "square", "triangle"}
    by_image: dict[int, list[np.ndarray]] = {}
    for ann in coco["annotations"]:
        mask = mask_util.decode(ann["segmentation"]).astype(bool)
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert ann["area"] == mask.sum() and ann["category_id"] in (1, 2, 3) and ann["iscrowd"] == 0
        by_image.setdefault(ann["image_id"], []).append(mask)
    assert set(by_image) == {im["id"] for im in coco["images"]}  # every image has a shape
    for masks in by_image.values():
        assert (np.sum(masks, axis=0) <= 1).all()  # visible parts never overlap


def test_edges_are_anti_aliased_unlike_the_training_generator(tmp_path):
    plain = dataclasses.replace(SMALL, num_images=3, noise_std=0.0, backgrounds=("flat",))
    hard, root_hard = _load(dataclasses.replace(plain, supersample=1), tmp_path / "hard")
    soft, root_soft = _load(plain, tmp_path / "soft")
    for im_hard, im_soft in zip(hard["images"], soft["images"]):
        shapes = sum(a["image_id"] == im_hard["id"] for a in hard["annotations"])
        colors_hard = np.unique(np.asarray(Image.open(root_hard / im_hard["file_name"])).reshape(-1, 3), axis=0)
        colors_soft = np.unique(np.asarray(Image.open(root_soft / im_soft["file_name"])).reshape(-1, 3), axis=0)
        assert len(colors_hard) <= shapes + 1 < len(colors_soft)  # edge pixels mix shape and background


def test_triangles_of_any_shape_keep_their_least_angle_and_size():
    rng = np.random.default_rng(0)
    for min_angle in (60.0, 40.0, 25.0):
        for _ in range(20):
            points = _triangle(rng, 50.0, min_angle)
            sides = [np.linalg.norm(points[i] - points[(i + 1) % 3]) for i in range(3)]
            assert max(sides) == pytest.approx(50.0)
            for i in range(3):
                a, b = points[(i + 1) % 3] - points[i], points[(i + 2) % 3] - points[i]
                angle = math.degrees(math.acos(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)))
                assert angle >= min_angle - 1e-6


def test_registered_as_a_coco_dataset_with_the_shapes_classes(tmp_path):
    register_unseen_shapes(dataclasses.replace(SMALL, num_images=2), "unseen_test_tiny", root=tmp_path)
    try:
        dicts = DatasetCatalog.get("unseen_test_tiny")
        meta = MetadataCatalog.get("unseen_test_tiny")
        assert len(dicts) == 2 and meta.thing_classes == ["circle", "square", "triangle"]
        assert meta.evaluator_type == "coco" and meta.unseen_shapes_config["num_images"] == 2
        assert all(isinstance(a["segmentation"], dict) for d in dicts for a in d["annotations"])
        register_unseen_shapes(dataclasses.replace(SMALL, num_images=1), "unseen_test_tiny", root=tmp_path)
        assert len(DatasetCatalog.get("unseen_test_tiny")) == 1  # registering again replaces
    finally:
        DatasetCatalog.remove("unseen_test_tiny")
        MetadataCatalog.remove("unseen_test_tiny")


def test_presets_differ_from_the_training_data_and_bad_configs_are_refused():
    assert set(UNSEEN_PRESETS) == {"renderer", "sizes", "colors", "noise", "all"}
    assert UNSEEN_PRESETS["sizes"].max_shape_size > 80 and UNSEEN_PRESETS["sizes"].min_shape_size < 20
    assert UNSEEN_PRESETS["noise"].jpeg_quality and UNSEEN_PRESETS["colors"].fills != ("solid",)
    with pytest.raises(ValueError, match="fills must be some of"):
        UnseenShapesConfig(fills=("plaid",))
    with pytest.raises(ValueError, match="min_triangle_angle"):
        UnseenShapesConfig(min_triangle_angle=70.0)
    with pytest.raises(ValueError, match="jpeg_quality"):
        UnseenShapesConfig(jpeg_quality=100)
