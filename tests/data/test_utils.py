"""detection_utils: image reading (formats, EXIF), size checks, instance building and filtering."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from det.data import detection_utils as utils
from det.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks


@pytest.fixture
def rgb_png(tmp_path):
    img = np.zeros((4, 6, 3), dtype=np.uint8)
    img[..., 0] = 200
    img[..., 1] = 100
    img[0, 0] = (10, 20, 30)
    path = tmp_path / "a.png"
    Image.fromarray(img).save(path)
    return path


def test_read_image_formats(rgb_png):
    rgb = utils.read_image(rgb_png, "RGB")
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8 and tuple(rgb[0, 0]) == (10, 20, 30)
    bgr = utils.read_image(rgb_png, "BGR")
    assert tuple(bgr[0, 0]) == (30, 20, 10)
    gray = utils.read_image(rgb_png, "L")
    assert gray.shape == (4, 6, 1)
    assert gray[1, 1, 0] == round(200 * 0.299 + 100 * 0.587)
    yuv = utils.read_image(rgb_png, "YUV-BT.601")
    assert yuv.dtype == np.float64 and yuv[1, 1, 0] == pytest.approx((200 * 0.299 + 100 * 0.587) / 255)
    np.testing.assert_allclose(utils.convert_image_to_rgb(yuv, "YUV-BT.601")[1, 1], [200, 100, 0], atol=0.5)
    np.testing.assert_array_equal(utils.convert_image_to_rgb(bgr, "BGR"), rgb)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        utils.read_image(rgb_png.parent / "missing.png")


def test_read_image_applies_exif_orientation(tmp_path):
    img = np.zeros((2, 3, 3), dtype=np.uint8)
    img[0, 0] = 255  # top-left marker
    exif = Image.Exif()
    exif[274] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.jpg"
    Image.fromarray(img).save(path, exif=exif, quality=100)
    out = utils.read_image(path, "RGB")
    assert out.shape == (3, 2, 3)
    assert out[0, 1].mean() > 128 and out[0, 0].mean() < 128  # the marker is now top-right


def test_check_image_size():
    d = {"file_name": "x.png", "height": 4, "width": 6}
    utils.check_image_size(d, np.zeros((4, 6, 3)))
    with pytest.raises(utils.SizeMismatchError, match=r"got \(5, 4\), expect \(6, 4\)"):
        utils.check_image_size(d, np.zeros((4, 5, 3)))
    d = {}
    utils.check_image_size(d, np.zeros((7, 9, 3)))
    assert (d["height"], d["width"]) == (7, 9)


def test_annotations_to_instances_polygon_and_bitmask():
    annos = [
        {
            "bbox": [1, 1, 4, 3],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 2,
            "segmentation": [[1.0, 1.0, 5.0, 1.0, 5.0, 4.0, 1.0, 4.0]],
        },
        {
            "bbox": [0, 0, 2, 2],
            "bbox_mode": BoxMode.XYXY_ABS,
            "category_id": 0,
            "segmentation": np.pad(np.ones((2, 2), dtype=np.uint8), ((0, 4), (0, 6))),
        },
    ]
    with pytest.raises(ValueError, match="bitmask"):
        utils.annotations_to_instances(annos, (6, 8), mask_format="polygon")
    inst = utils.annotations_to_instances(annos, (6, 8), mask_format="bitmask")
    torch.testing.assert_close(
        inst.gt_boxes.tensor, torch.tensor([[1.0, 1.0, 5.0, 4.0], [0.0, 0.0, 2.0, 2.0]])
    )
    assert inst.gt_classes.tolist() == [2, 0] and inst.gt_classes.dtype == torch.int64
    assert isinstance(inst.gt_masks, BitMasks) and inst.gt_masks.tensor.sum(dim=(1, 2)).tolist() == [12, 4]
    poly = utils.annotations_to_instances(annos[:1], (6, 8))
    assert isinstance(poly.gt_masks, PolygonMasks)
    empty = utils.annotations_to_instances([], (6, 8))
    assert len(empty) == 0 and empty.gt_boxes.tensor.shape == (0, 4)


def test_filter_empty_instances():
    inst = Instances((10, 10))
    inst.gt_boxes = Boxes(torch.tensor([[0.0, 0.0, 5.0, 5.0], [3.0, 3.0, 3.0, 8.0], [1.0, 1.0, 4.0, 4.0]]))
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, :2, :2] = True
    masks[1, 3:8, 3] = True
    inst.gt_masks = BitMasks(masks)  # the third mask is empty
    kept, keep = utils.filter_empty_instances(inst, return_mask=True)
    assert keep.tolist() == [True, False, False] and len(kept) == 1
    assert len(utils.filter_empty_instances(inst, by_mask=False)) == 2


def test_gen_crop_transform_with_instance_contains_centre():
    np.random.seed(0)
    inst = {"bbox": [40, 30, 20, 10], "bbox_mode": BoxMode.XYWH_ABS}
    for _ in range(20):
        t = utils.gen_crop_transform_with_instance((16, 24), (100, 120), inst)
        assert (t.h, t.w) == (16, 24)
        assert t.x0 <= 50 <= t.x0 + t.w and t.y0 <= 35 <= t.y0 + t.h

