"""Transforms and augmentations: every geometric kind of data moves the same, hand-computed way."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest

from det.data import detection_utils as utils
from det.data import transforms as T
from det.structures import BoxMode


def test_hflip_maps_coords_boxes_polygons_and_image():
    t = T.HFlipTransform(100)
    np.testing.assert_allclose(t.apply_coords(np.array([[10.0, 7.0], [0.0, 0.0]])), [[90, 7], [100, 0]])
    np.testing.assert_allclose(t.apply_box(np.array([[10.0, 20.0, 30.0, 40.0]])), [[70, 20, 90, 40]])
    (poly,) = t.apply_polygons([np.array([[10.0, 20.0], [30.0, 20.0], [30.0, 40.0]])])
    np.testing.assert_allclose(poly, [[90, 20], [70, 20], [70, 40]])
    img = np.arange(12, dtype=np.uint8).reshape(2, 6)
    np.testing.assert_array_equal(T.HFlipTransform(6).apply_image(img), img[:, ::-1])
    assert t.inverse() is t


def test_vflip_maps_coords_and_segmentation():
    t = T.VFlipTransform(50)
    np.testing.assert_allclose(t.apply_coords(np.array([[10.0, 7.0]])), [[10, 43]])
    seg = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    np.testing.assert_array_equal(T.VFlipTransform(2).apply_segmentation(seg), [[3, 4], [1, 2]])


def test_crop_shifts_and_clips_polygons():
    t = T.CropTransform(10, 20, 50, 40)
    np.testing.assert_allclose(t.apply_coords(np.array([[15.0, 25.0]])), [[5, 5]])
    square = np.array([[0.0, 0.0], [30.0, 0.0], [30.0, 30.0], [0.0, 30.0]])
    (clipped,) = t.apply_polygons([square])
    # The square [0,30]^2 cut to the window x in [10,60], y in [20,60] is [10,30]x[20,30].
    assert sorted(map(tuple, clipped.round(6).tolist())) == [(0, 0), (0, 10), (20, 0), (20, 10)]
    outside = np.array([[100.0, 100.0], [110.0, 100.0], [110.0, 110.0]])
    assert t.apply_polygons([outside]) == []
    img = np.arange(100 * 80).reshape(80, 100)
    np.testing.assert_array_equal(t.apply_image(img), img[20:60, 10:60])


def test_crop_of_concave_polygon_keeps_area():
    # A "U" shape whose two arms are both cut by the window's top edge.
    u = np.array([[0, 0], [10, 0], [10, 20], [20, 20], [20, 0], [30, 0], [30, 30], [0, 30]], dtype=float)
    (clipped,) = T.CropTransform(0, 10, 30, 20).apply_polygons([u])
    mask = mask_util.decode(mask_util.merge(mask_util.frPyObjects([clipped.reshape(-1).tolist()], 20, 30)))
    # Window rows 10..30: arms 10 px high each 10 px wide, plus the 10 px bar across 30 px.
    assert int(mask.sum()) == 10 * 10 * 2 + 10 * 30


def test_crop_inverse_is_pad():
    t = T.CropTransform(2, 3, 4, 5, orig_w=10, orig_h=12)
    inv = t.inverse()
    assert isinstance(inv, T.PadTransform)
    img = np.ones((12, 10), dtype=np.uint8)
    back = inv.apply_image(t.apply_image(img))
    assert back.shape == (12, 10) and back.sum() == 20
    np.testing.assert_allclose(inv.apply_coords(t.apply_coords(np.array([[5.0, 6.0]]))), [[5, 6]])


def test_resize_and_list_compose_in_order():
    tfms = T.TransformList([T.ResizeTransform(100, 200, 50, 100), T.HFlipTransform(100)])
    np.testing.assert_allclose(tfms.apply_box(np.array([[10.0, 20.0, 30.0, 40.0]])), [[85, 10, 95, 20]])
    assert len(tfms + T.NoOpTransform()) == 3
    nested = T.TransformList([tfms, T.NoOpTransform()])
    assert [type(t).__name__ for t in nested] == ["ResizeTransform", "HFlipTransform", "NoOpTransform"]
    inv = tfms.inverse()
    np.testing.assert_allclose(inv.apply_coords(tfms.apply_coords(np.array([[10.0, 20.0]]))), [[10, 20]])
    with pytest.raises(TypeError, match="Transform"):
        T.TransformList([object()])


def test_transform_instance_annotations_box_polygon_keypoints_with_flip_map():
    anno = {
        "bbox": [10, 20, 20, 20],
        "bbox_mode": BoxMode.XYWH_ABS,
        "segmentation": [[10.0, 20.0, 30.0, 20.0, 30.0, 40.0]],
        "keypoints": [10.0, 20.0, 2, 30.0, 40.0, 2],
        "category_id": 1,
    }
    tfms = T.TransformList([T.HFlipTransform(100)])
    out = utils.transform_instance_annotations(anno, tfms, (60, 100), keypoint_hflip_indices=[1, 0])
    np.testing.assert_allclose(out["bbox"], [70, 20, 90, 40])
    assert out["bbox_mode"] == BoxMode.XYXY_ABS
    np.testing.assert_allclose(out["segmentation"][0], [90, 20, 70, 20, 70, 40])
    # Flipped coordinates, then the left/right keypoints swap places.
    np.testing.assert_allclose(out["keypoints"], [[70, 40, 2], [90, 20, 2]])


def test_flip_without_flip_indices_is_an_error():
    with pytest.raises(ValueError, match="flip indices"):
        utils.transform_keypoint_annotations([1.0, 2.0, 2], [T.HFlipTransform(10)], (10, 10))


def test_crop_clips_boxes_and_zeroes_keypoints_that_leave():
    anno = {"bbox": [0, 0, 30, 30], "bbox_mode": BoxMode.XYXY_ABS, "keypoints": [5.0, 5.0, 2, 25.0, 25.0, 2]}
    out = utils.transform_instance_annotations(anno, [T.CropTransform(10, 20, 50, 40)], (40, 50))
    np.testing.assert_allclose(out["bbox"], [0, 0, 20, 10])
    np.testing.assert_allclose(out["keypoints"], [[0, 0, 0], [15, 5, 2]])


def test_rle_segmentation_becomes_transformed_mask():
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[1:3, 0:2] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    anno = {"bbox": [0, 1, 2, 2], "bbox_mode": BoxMode.XYWH_ABS, "segmentation": rle}
    out = utils.transform_instance_annotations(anno, [T.HFlipTransform(6)], (4, 6))
    np.testing.assert_array_equal(out["segmentation"], mask[:, ::-1])


def test_random_flip_choices():
    img = np.zeros((10, 20, 3), dtype=np.uint8)
    assert isinstance(T.RandomFlip(prob=1.0).get_transform(img), T.HFlipTransform)
    vflip = T.RandomFlip(prob=1.0, horizontal=False, vertical=True).get_transform(img)
    assert isinstance(vflip, T.VFlipTransform) and vflip.height == 10
    assert isinstance(T.RandomFlip(prob=0.0).get_transform(img), T.NoOpTransform)
    with pytest.raises(ValueError, match="both"):
        T.RandomFlip(horizontal=True, vertical=True)
    with pytest.raises(ValueError, match="At least one"):
        T.RandomFlip(horizontal=False, vertical=False)


def test_random_crop_sizes_for_every_crop_type():
    np.random.seed(0)
    assert T.RandomCrop("relative", (0.5, 0.25)).get_crop_size((100, 200)) == (50, 50)
    assert T.RandomCrop("absolute", (300, 50)).get_crop_size((100, 200)) == (100, 50)
    for _ in range(20):
        h, w = T.RandomCrop("relative_range", (0.5, 0.5)).get_crop_size((100, 200))
        assert 50 <= h <= 100 and 100 <= w <= 200
        h, w = T.RandomCrop("absolute_range", (30, 60)).get_crop_size((40, 200))
        assert 30 <= h <= 40 and 30 <= w <= 60
    tfm = T.RandomCrop("absolute", (10, 10)).get_transform(np.zeros((30, 40, 3), dtype=np.uint8))
    assert isinstance(tfm, T.CropTransform) and (tfm.h, tfm.w) == (10, 10)
    assert 0 <= tfm.x0 <= 30 and 0 <= tfm.y0 <= 20
    with pytest.raises(ValueError, match="crop_type"):
        T.RandomCrop("percent", (0.5, 0.5))


def test_colour_augmentations_blend_as_documented():
    img = np.array([[[100, 100, 100], [200, 50, 0]]], dtype=np.uint8)
    bright = T.RandomBrightness(2.0, 2.0).get_transform(img).apply_image(img)
    np.testing.assert_array_equal(bright, [[[200, 200, 200], [255, 100, 0]]])
    flat = T.RandomContrast(0.0, 0.0).get_transform(img).apply_image(img)
    np.testing.assert_array_equal(flat, np.full_like(img, int(img.mean())))
    gray = T.RandomSaturation(0.0, 0.0).get_transform(img).apply_image(img)
    expected = int(200 * 0.299 + 50 * 0.587 + 0 * 0.114)
    np.testing.assert_array_equal(gray[0, 1], [expected] * 3)
    with pytest.raises(ValueError, match="RGB"):
        T.RandomSaturation(0.5, 1.5).get_transform(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="must not exceed"):
        T.RandomBrightness(2.0, 1.0)


def test_aug_input_transforms_image_and_sem_seg_together():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    seg = np.arange(24, dtype=np.uint8).reshape(4, 6)
    inp = T.AugInput(img, sem_seg=seg)
    tfms = T.AugmentationList([T.Resize((8, 12)), T.RandomFlip(prob=1.0)])(inp)
    assert [type(t).__name__ for t in tfms] == ["ResizeTransform", "HFlipTransform"]
    assert inp.image.shape == (8, 12, 3)
    # Nearest-neighbour for labels: every label value survives unblended, mirrored.
    np.testing.assert_array_equal(inp.sem_seg, np.repeat(np.repeat(seg, 2, axis=0), 2, axis=1)[:, ::-1])
    with pytest.raises(TypeError, match="numpy"):
        T.AugInput([[1, 2]])
    with pytest.raises(ValueError, match="sem_seg"):
        T.AugInput(img, sem_seg=np.zeros((3, 3)))


def test_apply_augmentations_on_array_and_resize_shortest_edge():
    img = np.zeros((100, 200, 3), dtype=np.uint8)
    out, tfms = T.apply_augmentations([T.ResizeShortestEdge(50, 1000, "choice")], img)
    assert out.shape == (50, 100, 3)
    np.testing.assert_allclose(tfms.apply_box(np.array([[0.0, 0.0, 200.0, 100.0]])), [[0, 0, 100, 50]])
    out, _ = T.apply_transform_gens([T.RandomApply(T.RandomBrightness(0.0, 0.0), prob=1.0)], img + 10)
    assert out.max() == 0


def test_build_augmentation_from_cfg():
    from det.core.config import get_cfg

    cfg = get_cfg()
    train = utils.build_augmentation(cfg, True)
    assert [type(a).__name__ for a in train] == ["ResizeShortestEdge", "RandomFlip"]
    cfg.INPUT.RANDOM_FLIP = "none"
    assert [type(a).__name__ for a in utils.build_augmentation(cfg, True)] == ["ResizeShortestEdge"]
    test = utils.build_augmentation(cfg, False)
    assert test[0].short_edge_length == (800, 800) and test[0].max_size == 1333


def test_rotation_by_90_moves_pixels_and_coords_together():
    t = T.RotationTransform(20, 40, 90)
    assert (t.bound_h, t.bound_w) == (40, 20)
    np.testing.assert_allclose(
        t.apply_coords(np.array([[40.0, 10.0], [0.0, 0.0]])), [[10, 0], [0, 40]], atol=1e-9
    )
    img = np.zeros((20, 40), dtype=np.uint8)
    img[:, 30:] = 255  # the right quarter ...
    out = t.apply_image(img)
    assert out.shape == (40, 20) and out[:10].min() == 255 and out[10:].max() == 0  # ... becomes the top
    seg = np.zeros((20, 40, 3), dtype=np.uint8)
    seg[:, 30:] = 7
    assert set(np.unique(t.apply_segmentation(seg[..., 0]))) == {0, 7}  # nearest: no blended labels
    back = t.inverse().apply_coords(t.apply_coords(np.array([[5.0, 6.0]])))
    np.testing.assert_allclose(back, [[5, 6]], atol=1e-6)
    assert isinstance(T.RandomRotation([0, 0]).get_transform(img), T.NoOpTransform)
    rot = T.RandomRotation([30, 30], expand=False).get_transform(img)
    assert isinstance(rot, T.RotationTransform) and rot.apply_image(img).shape == (20, 40)


def test_resize_scale_and_fixed_size_crop():
    np.random.seed(0)
    img = np.zeros((100, 200, 3), dtype=np.uint8)
    t = T.ResizeScale(0.5, 0.5, 80, 80).get_transform(img)
    assert (t.new_h, t.new_w) == (20, 40)  # fits 40x40: limited by the width
    crop_pad = T.FixedSizeCrop((64, 300), pad_value=9).get_transform(img)
    out = crop_pad.apply_image(img)
    assert out.shape == (64, 300, 3)
    assert out[:, :200].max() == 0 and (out[:, 200:] == 9).all()  # padded on the right
    seg = crop_pad.apply_segmentation(np.zeros((100, 200), dtype=np.uint8))
    assert seg.shape == (64, 300) and (seg[:, 200:] == 255).all()
