"""Visualizer: render, then check pixels (mask blend inside masks, box outlines, keypoints)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from det.data.catalog import Metadata
from det.engine.visualizer import _PALETTE, ColorMode, VisImage, Visualizer
from det.structures import Boxes, BoxMode, Instances

GRAY = 100


def _image(h=64, w=80):
    return np.full((h, w, 3), GRAY, dtype=np.uint8)


def _blend(color, alpha=0.5):
    return np.round((1 - alpha) * GRAY + alpha * np.asarray(color, dtype=np.float64)).astype(np.uint8)


def _prediction():
    inst = Instances((64, 80))
    inst.pred_boxes = Boxes(torch.tensor([[10.0, 20.0, 50.0, 60.0]]))
    inst.scores = torch.tensor([0.9])
    inst.pred_classes = torch.tensor([1])
    masks = torch.zeros(1, 64, 80, dtype=torch.bool)
    masks[0, 30:55, 15:45] = True
    inst.pred_masks = masks
    return inst


def test_instance_prediction_mask_blend_and_box_outline(tmp_path):
    meta = Metadata(name="vis").set(thing_classes=["circle", "square"])
    out = Visualizer(_image(), meta).draw_instance_predictions(_prediction())
    img = out.get_image()
    assert img.shape == (64, 80, 3) and img.dtype == np.uint8
    color = _PALETTE[0]
    # Inside the mask (away from its outline and the label): 50% image, 50% instance colour.
    np.testing.assert_array_equal(img[45, 30], _blend(color))
    # Outline of the box, in the instance colour, opaque.
    np.testing.assert_array_equal(img[40, 10], color)
    np.testing.assert_array_equal(img[59, 30], color)
    # Outside everything: untouched.
    np.testing.assert_array_equal(img[5, 70], [GRAY] * 3)
    # The label "square 90%" is drawn at the box's top-left corner: pixels there changed.
    assert (img[20:30, 12:40] != _blend(color)).any()
    out.save(tmp_path / "pred.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "pred.png")), img)


def test_segmentation_mode_uses_class_colors_and_scale():
    meta = Metadata(name="vis2").set(thing_classes=["a", "b"], thing_colors=[(0, 0, 0), (0, 200, 0)])
    np.random.seed(0)
    v = Visualizer(_image(), meta, scale=2.0, instance_mode=ColorMode.SEGMENTATION)
    img = v.draw_instance_predictions(_prediction()).get_image()
    assert img.shape == (128, 160, 3)
    px = img[90, 60].astype(int)  # (45, 30) at scale 2
    assert px[1] > px[0] and px[1] > px[2]  # greenish: jittered class colour, alpha 0.8


def test_keypoints_and_skeleton():
    meta = Metadata(name="kp").set(
        keypoint_names=["a", "b", "c"], keypoint_connection_rules=[("a", "b", (0, 0, 255))]
    )
    v = Visualizer(_image(), meta)
    kps = np.array([[[10.0, 10.0, 2.0], [50.0, 10.0, 2.0], [30.0, 40.0, 0.0]]])
    img = v.overlay_instances(keypoints=kps).get_image()
    np.testing.assert_array_equal(img[10, 10], [255, 0, 0])  # keypoint dot
    np.testing.assert_array_equal(img[10, 30], [0, 0, 255])  # skeleton line a-b
    np.testing.assert_array_equal(img[40, 30], [GRAY] * 3)  # invisible keypoint is not drawn


def test_sem_seg_colors_by_label():
    meta = Metadata(name="ss").set(stuff_classes=["left", "right"], stuff_colors=[(255, 0, 0), (0, 0, 255)])
    seg = np.zeros((64, 80), dtype=np.int64)
    seg[:, 40:] = 1
    seg[:5, :5] = 7  # not a class: left alone
    img = Visualizer(_image(), meta).draw_sem_seg(torch.from_numpy(seg), alpha=0.5).get_image()
    np.testing.assert_array_equal(img[60, 20], _blend((255, 0, 0)))
    np.testing.assert_array_equal(img[60, 70], _blend((0, 0, 255)))
    np.testing.assert_array_equal(img[1, 1], [GRAY] * 3)


def test_panoptic_things_and_stuff():
    meta = Metadata(name="pan").set(thing_classes=["t"], stuff_classes=["s"], stuff_colors=[(0, 255, 0)])
    pan = np.zeros((64, 80), dtype=np.int64)
    pan[:, :40] = 1
    pan[10:30, 50:70] = 2
    info = [{"id": 1, "category_id": 0, "isthing": False}, {"id": 2, "category_id": 0, "isthing": True}]
    img = Visualizer(_image(), meta).draw_panoptic_seg(pan, info, alpha=0.5).get_image()
    np.testing.assert_array_equal(img[50, 20], _blend((0, 255, 0)))
    np.testing.assert_array_equal(img[13, 53], _blend(_PALETTE[0]))  # (the label sits at the centre)
    np.testing.assert_array_equal(img[50, 75], [GRAY] * 3)  # void


def test_draw_dataset_dict_with_polygons_rle_and_keypoints(tmp_path):
    import pycocotools.mask as mask_util

    rle_mask = np.zeros((64, 80), dtype=np.uint8)
    rle_mask[40:60, 50:75] = 1
    rle = mask_util.encode(np.asfortranarray(rle_mask))
    dic = {
        "height": 64,
        "width": 80,
        "annotations": [
            {
                "bbox": [5, 5, 30, 30],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "segmentation": [[5, 5, 35, 5, 35, 35, 5, 35]],
                "keypoints": [20, 20, 2],
            },
            {
                "bbox": [50, 40, 25, 20],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 1,
                "segmentation": rle,
                "keypoints": [0, 0, 0],
            },
        ],
    }
    meta = Metadata(name="dd").set(thing_classes=["circle", "square"])
    out = Visualizer(_image(), meta).draw_dataset_dict(dic)
    img = out.get_image()
    # The larger instance (first) gets palette colour 0, the smaller one colour 1.
    np.testing.assert_array_equal(img[30, 30], _blend(_PALETTE[0]))
    np.testing.assert_array_equal(img[55, 70], _blend(_PALETTE[1]))
    np.testing.assert_array_equal(img[20, 20], [255, 0, 0])
    out.save(tmp_path / "sub" / "gt.png")
    assert (tmp_path / "sub" / "gt.png").is_file()


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(H,W,3\)"):
        Visualizer(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="image size"):
        Visualizer(_image()).draw_binary_mask(np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="same number"):
        Visualizer(_image()).overlay_instances(boxes=np.zeros((2, 4)), labels=["a"])
    with pytest.raises(ValueError, match="scale"):
        VisImage(_image(), scale=0)


def test_image_bw_mode_keeps_colour_only_inside_masks():
    img = _image()
    img[..., 0] = 200  # reddish background
    v = Visualizer(img, Metadata(name="bw"), instance_mode=ColorMode.IMAGE_BW)
    inst = _prediction()
    inst.remove("pred_boxes")
    out = v.draw_instance_predictions(inst).get_image()
    gray = round((200 + GRAY + GRAY) / 3)
    np.testing.assert_array_equal(out[5, 70], [gray] * 3)  # outside: grayscale
    expected = np.round(0.7 * np.array([200, GRAY, GRAY]) + 0.3 * np.array(_PALETTE[0])).astype(np.uint8)
    np.testing.assert_array_equal(out[33, 17], expected)  # inside: original colour, alpha 0.3


def test_generic_mask_converts_between_polygons_rle_and_arrays():
    import pycocotools.mask as mask_util

    from det.engine.visualizer import GenericMask

    triangle = GenericMask([[10, 10, 30, 10, 30, 20]], height=40, width=40)
    assert triangle.mask.shape == (40, 40) and triangle.mask.dtype == np.uint8
    assert triangle.area() == 100 and not triangle.has_holes
    np.testing.assert_array_equal(triangle.bbox(), [11.0, 10.0, 30.0, 20.0])  # pycocotools' rasterization

    ring = np.zeros((40, 40), dtype=bool)
    ring[5:15, 8:20] = True
    ring[8:10, 10:12] = False
    from_array = GenericMask(ring, 40, 40)
    assert from_array.area() == 116 and from_array.has_holes
    assert [p.tolist() for p in from_array.polygons] == [
        [8.0, 5.0, 20.0, 5.0, 20.0, 15.0, 8.0, 15.0], [10.0, 8.0, 10.0, 10.0, 12.0, 10.0, 12.0, 8.0]]
    np.testing.assert_array_equal(from_array.bbox(), [8.0, 5.0, 20.0, 15.0])
    from_rle = GenericMask(mask_util.encode(np.asfortranarray(ring.astype(np.uint8))), 40, 40)
    np.testing.assert_array_equal(from_rle.mask, ring)
    with pytest.raises(ValueError, match="the mask is 40x40, expected 30x40"):
        GenericMask(ring, 30, 40)


def test_colormap_and_random_colors_are_bgr_by_default_like_detectron2():
    from det.engine.visualizer import colormap, random_color, random_colors

    bgr, rgb = colormap(), colormap(rgb=True, maximum=1)
    assert bgr.shape == (64, 3)
    np.testing.assert_allclose(bgr[:, ::-1] / 255.0, rgb)
    np.testing.assert_array_equal(bgr[0], np.array(_PALETTE[0], dtype=np.float64)[::-1])
    np.testing.assert_array_equal(random_color(index=3), bgr[3])
    colors = random_colors(70)
    assert len(colors) == 70 and len({tuple(c) for c in colors[:64]}) == 64
