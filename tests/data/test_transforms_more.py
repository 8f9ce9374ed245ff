"""detectron2's remaining transforms and augmentations: extents, category-constrained and min-IoU
crops, random resizes, colour ops, and fvcore's scale and grid-sample transforms."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from det.data import transforms as T

NEAREST = Image.Resampling.NEAREST


def _grid8() -> np.ndarray:
    return np.arange(64, dtype=np.uint8).reshape(8, 8)


def test_detectron2_public_transform_names_are_exported():
    expected = {
        "ColorTransform", "ExtentTransform", "GridSampleTransform", "MinIoURandomCrop",
        "PILColorTransform", "RandomCrop_CategoryAreaConstraint", "RandomExtent", "RandomResize",
        "ScaleTransform", "TransformGen",
    }  # fmt: skip
    assert expected <= set(T.__all__)
    assert all(hasattr(T, name) for name in T.__all__)
    assert T.TransformGen is T.Augmentation


# -- ExtentTransform / RandomExtent ------------------------------------------------------------


def test_extent_transform_pads_and_crops_pixels_and_moves_coords_with_them():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    # Two columns left of the image (filled) to two columns right of it, at scale 1.
    t = T.ExtentTransform(src_rect=(-2, 0, 6, 4), output_size=(4, 8), interp=NEAREST, fill=7)
    np.testing.assert_array_equal(
        t.apply_image(img),
        [
            [7, 7, 0, 10, 20, 30, 7, 7],
            [7, 7, 40, 50, 60, 70, 7, 7],
            [7, 7, 80, 90, 100, 110, 7, 7],
            [7, 7, 120, 130, 140, 150, 7, 7],
        ],
    )
    np.testing.assert_allclose(t.apply_coords(np.array([[0.0, 1.0], [4.0, 4.0]])), [[2, 1], [6, 4]])
    np.testing.assert_allclose(t.apply_box(np.array([[1.0, 0.0, 3.0, 2.0]])), [[3, 0, 5, 2]])


def test_extent_transform_zooms_a_sub_rectangle():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    # The central 2x2 pixels blown up to 4x4: every source pixel becomes a 2x2 block.
    t = T.ExtentTransform(src_rect=(1, 1, 3, 3), output_size=(4, 4), interp=NEAREST)
    np.testing.assert_array_equal(
        t.apply_image(img), [[50, 50, 60, 60], [50, 50, 60, 60], [90, 90, 100, 100], [90, 90, 100, 100]]
    )
    np.testing.assert_allclose(
        t.apply_coords(np.array([[1.0, 1.0], [2.0, 2.5], [3.0, 3.0]])), [[0, 0], [2, 3], [4, 4]]
    )
    (poly,) = t.apply_polygons([np.array([[1.0, 1.0], [3.0, 1.0], [2.0, 3.0]])])
    np.testing.assert_allclose(poly, [[0, 0], [4, 0], [2, 4]])


def test_extent_transform_fills_per_channel_and_keeps_dtype_and_labels():
    rgb = np.stack([_grid8()[:4, :4] + c for c in range(3)], axis=-1)
    t = T.ExtentTransform((-1, -1, 4, 4), (5, 5), interp=NEAREST, fill=(1, 2, 3))
    out = t.apply_image(rgb)
    assert out.shape == (5, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3])
    np.testing.assert_array_equal(out[1:, 1:], rgb)
    as_float = t.apply_image(rgb.astype(np.float32))
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float[1:, 1:], rgb)
    # labels never blend, even with a bilinear transform; out-of-image labels are the fill (0)
    labels = np.array([[0, 9], [9, 0]], dtype=np.int64)
    seg = T.ExtentTransform((0, 0, 2, 2), (4, 4)).apply_segmentation(labels)
    assert seg.dtype == np.int64
    np.testing.assert_array_equal(seg, np.kron(labels, np.ones((2, 2), dtype=np.int64)))
    with pytest.raises(ValueError, match="one per channel"):
        T.ExtentTransform((0, 0, 4, 4), (4, 4), fill=(1, 2)).apply_image(rgb)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"src_rect": (0, 0, 0, 4), "output_size": (4, 4)}, "x1 > x0"),
        ({"src_rect": (0, 0, 4), "output_size": (4, 4)}, "x1 > x0"),
        ({"src_rect": (0, 0, 4, 4), "output_size": (0, 4)}, "positive ints"),
        ({"src_rect": (0, 0, 4, 4), "output_size": (4.5, 4)}, "positive ints"),
    ],
)
def test_extent_transform_rejects_bad_rect_and_size(kwargs, message):
    with pytest.raises(ValueError, match=message):
        T.ExtentTransform(**kwargs)


def test_random_extent_with_scale_one_and_no_shift_is_the_identity():
    img = _grid8()
    boxes = np.array([[1.0, 2.0, 5.0, 7.0]])
    inp = T.AugInput(img.copy(), boxes=boxes.copy(), sem_seg=img.copy())
    (tfm,) = T.AugmentationList([T.RandomExtent(scale_range=(1, 1), shift_range=(0, 0))])(inp)
    assert isinstance(tfm, T.ExtentTransform)
    assert tfm.src_rect == (0, 0, 8, 8) and tfm.output_size == (8, 8)
    np.testing.assert_array_equal(inp.image, img)
    np.testing.assert_array_equal(inp.sem_seg, img)
    np.testing.assert_allclose(inp.boxes, boxes)


@pytest.mark.parametrize(
    "scale, rect, size, box",
    [
        (0.5, (2, 2, 6, 6), (4, 4), [0, 0, 2, 4]),  # the central half
        (2.0, (-4, -4, 12, 12), (16, 16), [6, 6, 8, 10]),  # the image in the middle of black
    ],
)
def test_random_extent_scales_about_the_centre(scale, rect, size, box):
    img = _grid8()
    inp = T.AugInput(img, boxes=np.array([[2.0, 2.0, 4.0, 6.0]]))
    (tfm,) = T.AugmentationList([T.RandomExtent((scale, scale), (0, 0))])(inp)
    assert tfm.src_rect == rect and tfm.output_size == size
    np.testing.assert_allclose(inp.boxes, [box])
    if scale < 1:
        np.testing.assert_array_equal(inp.image, img[2:6, 2:6])
    else:
        assert inp.image.sum() == img.sum()
        np.testing.assert_array_equal(inp.image[4:12, 4:12], img)


def test_random_extent_draws_scale_then_x_and_y_shift_from_numpy():
    img = np.zeros((8, 10), dtype=np.uint8)
    np.random.seed(3)
    scale, rx, ry = np.random.uniform(0.5, 1.5), np.random.rand(), np.random.rand()
    np.random.seed(3)
    tfm = T.RandomExtent((0.5, 1.5), (0.5, 0.25)).get_transform(img)
    cx = 5 + 0.5 * 10 * (rx - 0.5)
    cy = 4 + 0.25 * 8 * (ry - 0.5)
    np.testing.assert_allclose(tfm.src_rect, [cx - 5 * scale, cy - 4 * scale, cx + 5 * scale, cy + 4 * scale])
    assert tfm.output_size == (int(8 * scale), int(10 * scale))
    np.random.seed(3)
    assert T.RandomExtent((0.5, 1.5), (0.5, 0.25)).get_transform(img).src_rect == tfm.src_rect


@pytest.mark.parametrize(
    "scale_range, shift_range, message",
    [
        ((0, 1), (0, 0), "0 < low <= high"),
        ((1.2, 0.8), (0, 0), "0 < low <= high"),
        ((1,), (0, 0), "two numbers"),
        ((1, 1), (-0.1, 0), ">= 0"),
    ],
)
def test_random_extent_rejects_bad_ranges(scale_range, shift_range, message):
    with pytest.raises(ValueError, match=message):
        T.RandomExtent(scale_range, shift_range)


# -- RandomCrop_CategoryAreaConstraint ---------------------------------------------------------


def _max_share(labels: np.ndarray, ignored: int | None = None) -> float:
    values, counts = np.unique(labels, return_counts=True)
    if ignored is not None:
        counts = counts[values != ignored]
    return counts.max() / counts.sum()


def test_category_area_constraint_never_lets_one_class_dominate_the_crop():
    # Class 0 on columns 0-4, class 1 on 5-7: 4x4 windows at x0 = 0 or 1 are all class 0.
    sem_seg = np.zeros((8, 8), dtype=np.uint8)
    sem_seg[:, 5:] = 1
    aug = T.RandomCrop_CategoryAreaConstraint("absolute", (4, 4), single_category_max_area=0.8)
    plain_x0, constrained_x0 = set(), set()
    for seed in range(40):
        np.random.seed(seed)
        plain_x0.add(T.RandomCrop("absolute", (4, 4)).get_transform(sem_seg).x0)
        np.random.seed(seed)
        inp = T.AugInput(np.zeros((8, 8, 3), dtype=np.uint8), sem_seg=sem_seg)
        tfm = aug(inp)
        assert isinstance(tfm, T.CropTransform) and inp.sem_seg.shape == (4, 4) == inp.image.shape[:2]
        assert _max_share(inp.sem_seg) < 0.8
        constrained_x0.add(tfm.x0)
    assert {0, 1} <= plain_x0  # a plain crop does produce single-class windows
    assert constrained_x0 == {2, 3, 4}


def test_category_area_constraint_does_not_count_the_ignored_category():
    # 255 (ignored) on columns 0-5, class 1 on 6, class 2 on 7, class 3 on 8-11; crops 4x8.
    sem_seg = np.full((4, 12), 255, dtype=np.uint8)
    sem_seg[:, 6], sem_seg[:, 7], sem_seg[:, 8:] = 1, 2, 3
    image = np.zeros((4, 12), dtype=np.uint8)
    found: dict[int | None, set[int]] = {255: set(), None: set()}
    for ignored in found:
        aug = T.RandomCrop_CategoryAreaConstraint("absolute", (4, 8), 0.6, ignored_category=ignored)
        for seed in range(40):
            np.random.seed(seed)
            inp = T.AugInput(image, sem_seg=sem_seg)
            found[ignored].add(aug(inp).x0)
            assert _max_share(inp.sem_seg, ignored) < 0.6
    # Ignoring 255, the windows where it covers 75% and 62.5% become valid; 3 at 60% of the
    # counted pixels (x0=3) does not.
    assert found[255] == {0, 1, 2}
    assert found[None] == {2, 3, 4}


def test_category_area_constraint_falls_back_to_the_tenth_window():
    sem_seg = np.zeros((6, 6), dtype=np.uint8)  # one class: no window can pass
    aug = T.RandomCrop_CategoryAreaConstraint("absolute", (3, 3), single_category_max_area=0.5)
    for seed in (0, 1, 2):
        np.random.seed(seed)
        windows = [(np.random.randint(4), np.random.randint(4)) for _ in range(10)]  # (y0, x0)
        after_ten = np.random.randint(1 << 30)
        np.random.seed(seed)
        tfm = aug.get_transform(np.zeros((6, 6), dtype=np.uint8), sem_seg)
        assert (tfm.y0, tfm.x0, tfm.h, tfm.w) == (*windows[-1], 3, 3)
        assert np.random.randint(1 << 30) == after_ten  # exactly 10 windows were drawn


def test_category_area_constraint_of_one_is_a_plain_random_crop():
    image = np.zeros((10, 12), dtype=np.uint8)
    for seed in range(5):
        np.random.seed(seed)
        expected = T.RandomCrop("relative_range", (0.5, 0.5)).get_transform(image)
        np.random.seed(seed)
        got = T.RandomCrop_CategoryAreaConstraint("relative_range", (0.5, 0.5)).get_transform(image, None)
        assert (got.x0, got.y0, got.w, got.h) == (expected.x0, expected.y0, expected.w, expected.h)


def test_category_area_constraint_rejects_bad_arguments():
    with pytest.raises(ValueError, match="crop_type must be one of"):
        T.RandomCrop_CategoryAreaConstraint("relative_size", (0.5, 0.5))
    with pytest.raises(ValueError, match="must be > 0"):
        T.RandomCrop_CategoryAreaConstraint("absolute", (4, 4), single_category_max_area=0)
    with pytest.raises(ValueError, match="integer label"):
        T.RandomCrop_CategoryAreaConstraint("absolute", (4, 4), 0.5, ignored_category=2.5)
    aug = T.RandomCrop_CategoryAreaConstraint("absolute", (4, 4), 0.5)
    with pytest.raises(ValueError, match="sem_seg=labels"):
        aug(T.AugInput(np.zeros((8, 8), dtype=np.uint8)))


# -- MinIoURandomCrop --------------------------------------------------------------------------


def test_min_iou_crop_keeps_a_box_centre_and_meets_the_iou_bound():
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    boxes = np.array([[20.0, 15.0, 50.0, 45.0]])
    aug = T.MinIoURandomCrop(min_ious=(0.5,))
    assert aug.sample_mode == (1, 0.5, 0)  # 1 keeps the image, 0 asks only for overlap
    aug.sample_mode = (0.5,)  # pin the threshold to check it
    crops = []
    for seed in range(10):
        np.random.seed(seed)
        inp = T.AugInput(image, boxes=boxes.copy())
        tfm = aug(inp)
        assert isinstance(tfm, T.CropTransform)
        x0, y0, x1, y1 = tfm.x0, tfm.y0, tfm.x0 + tfm.w, tfm.y0 + tfm.h
        assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 60
        assert x0 < 35 < x1 and y0 < 30 < y1  # the box centre (35, 30)
        inter = (min(x1, 50) - max(x0, 20)) * (min(y1, 45) - max(y0, 15))
        assert inter / (tfm.w * tfm.h + 30 * 30 - inter) >= 0.5
        assert 0.5 <= tfm.h / tfm.w <= 2 and tfm.w >= 0.3 * 80 - 1 and tfm.h >= 0.3 * 60 - 1
        np.testing.assert_allclose(inp.boxes, boxes - [x0, y0, x0, y0])
        assert inp.image.shape == (tfm.h, tfm.w, 3)
        crops.append((x0, y0, tfm.w, tfm.h))
    assert len(set(crops)) == 10  # random windows
    assert crops[0] == (20, 22, 29, 34)  # fixed seed, fixed window


def test_min_iou_crop_is_deterministic_under_a_seed():
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    boxes = np.array([[20.0, 15.0, 50.0, 45.0], [40.0, 20.0, 70.0, 50.0]])

    def run(seed: int) -> list[str]:
        np.random.seed(seed)
        return [repr(T.MinIoURandomCrop().get_transform(image, boxes)) for _ in range(20)]

    first = run(7)
    assert first == run(7)
    assert any("CropTransform" in r for r in first) and any("NoOpTransform" in r for r in first)


def test_min_iou_crop_of_full_size_is_the_whole_image_or_nothing():
    image = np.zeros((60, 80), dtype=np.uint8)
    aug = T.MinIoURandomCrop(min_crop_size=1.0)
    seen = set()
    for seed in range(10):
        np.random.seed(seed)
        seen.add(repr(aug.get_transform(image, np.array([[10.0, 10.0, 30.0, 30.0]]))))
    assert seen == {"CropTransform(x0=0, y0=0, w=80, h=60)", "NoOpTransform()"}


def test_min_iou_crop_keeps_the_image_without_boxes_or_when_every_trial_fails():
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    aug = T.MinIoURandomCrop()
    assert isinstance(aug(T.AugInput(image)), T.NoOpTransform)  # AugInput without boxes
    # A box whose centre is outside the image: no window can hold it.
    outside = np.array([[-10.0, -10.0, -2.0, -2.0]])
    few = T.MinIoURandomCrop(mode_trials=3, crop_trials=5)
    for seed in range(5):
        np.random.seed(seed)
        assert isinstance(few.get_transform(image, outside), T.NoOpTransform)
    # No boxes at all (an empty (0, 4) array): the first window of the right shape is taken.
    any_window = T.MinIoURandomCrop(min_ious=(0.9,))
    any_window.sample_mode = (0.9,)
    np.random.seed(0)
    assert isinstance(any_window.get_transform(image, np.zeros((0, 4))), T.CropTransform)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_ious": (0.1, 1.5)}, r"in \[0, 1\]"),
        ({"min_crop_size": 0}, r"in \(0, 1\]"),
        ({"min_crop_size": 1.5}, r"in \(0, 1\]"),
        ({"mode_trials": 0}, "mode_trials must be a positive integer"),
        ({"crop_trials": 2.5}, "crop_trials must be a positive integer"),
    ],
)
def test_min_iou_crop_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        T.MinIoURandomCrop(**kwargs)


# -- RandomResize ------------------------------------------------------------------------------


def test_random_resize_picks_each_listed_shape_and_resizes_labels_with_nearest():
    shapes = [(4, 6), (10, 5), (8, 8)]
    aug = T.RandomResize(shapes, interp=Image.Resampling.BILINEAR)
    labels = (_grid8() % 3).astype(np.uint8)
    seen = set()
    for seed in range(20):
        np.random.seed(seed)
        inp = T.AugInput(_grid8(), sem_seg=labels)
        (tfm,) = T.AugmentationList([aug])(inp)
        assert isinstance(tfm, T.ResizeTransform)
        seen.add(inp.image.shape)
        assert inp.sem_seg.shape == inp.image.shape and set(np.unique(inp.sem_seg)) <= {0, 1, 2}
    assert seen == set(shapes)
    np.random.seed(0)
    first = aug.get_transform(_grid8())
    np.random.seed(0)
    assert (first.new_h, first.new_w) == shapes[np.random.randint(0, 3)]


@pytest.mark.parametrize("shape_list", [[], [(0, 4)], [640], [(4, 5, 6)], [(4.5, 6)]])
def test_random_resize_rejects_bad_shape_lists(shape_list):
    with pytest.raises(ValueError, match=r"RandomResize: shape_list"):
        T.RandomResize(shape_list)


# -- ColorTransform / PILColorTransform --------------------------------------------------------


def test_color_transforms_change_pixels_only():
    img = _grid8()
    boxes = np.array([[1.0, 2.0, 3.0, 4.0]])
    for tfm in (T.ColorTransform(lambda im: 255 - im), T.PILColorTransform(ImageOps.invert)):
        np.testing.assert_array_equal(tfm.apply_image(img), 255 - img)
        np.testing.assert_array_equal(tfm.apply_box(boxes), boxes)
        np.testing.assert_array_equal(tfm.apply_segmentation(img), img)
        assert isinstance(tfm.inverse(), T.NoOpTransform)
    inp = T.AugInput(img, boxes=boxes, sem_seg=img)
    T.AugmentationList([T.PILColorTransform(ImageOps.invert)])(inp)
    np.testing.assert_array_equal(inp.image, 255 - img)
    np.testing.assert_array_equal(inp.sem_seg, img)
    with pytest.raises(ValueError, match="op must be a callable"):
        T.ColorTransform(3)
    with pytest.raises(ValueError, match="op must be a callable"):
        T.PILColorTransform("invert")


# -- ScaleTransform / GridSampleTransform (fvcore) ---------------------------------------------


def test_scale_transform_area_average_coords_and_inverse():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    t = T.ScaleTransform(4, 4, 2, 2, interp="area")
    np.testing.assert_allclose(t.apply_image(img), [[2.5, 4.5], [10.5, 12.5]])
    # uint8 rounds half to even, as fvcore
    np.testing.assert_array_equal(t.apply_image(img.astype(np.uint8)), [[2, 4], [10, 12]])
    batch = np.stack([img[..., None], 2 * img[..., None]])  # (N, H, W, C)
    np.testing.assert_allclose(t.apply_image(batch)[1, ..., 0], [[5, 9], [21, 25]])
    np.testing.assert_allclose(t.apply_coords(np.array([[4.0, 2.0]])), [[2, 1]])
    inv = t.inverse()
    assert (inv.h, inv.w, inv.new_h, inv.new_w) == (2, 2, 4, 4)
    labels = np.array([[1, 2], [3, 4]], dtype=np.int64)
    np.testing.assert_array_equal(
        inv.apply_segmentation(labels), np.kron(labels, np.ones((2, 2), dtype=np.int64))
    )
    with pytest.raises(ValueError, match=r"made for images of \(h, w\) = \(4, 4\)"):
        t.apply_image(np.zeros((3, 4), dtype=np.float32))


def test_scale_transform_rejects_bad_arguments():
    with pytest.raises(ValueError, match="interp must be one of"):
        T.ScaleTransform(4, 4, 2, 2, interp="linear")
    with pytest.raises(ValueError, match="new_h must be a positive integer"):
        T.ScaleTransform(4, 4, 0, 2)


def test_grid_sample_transform_identity_and_mirror_grids():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    centres = np.linspace(-0.75, 0.75, 4)  # pixel centres of a 4-wide image, align_corners=False
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    identity = T.GridSampleTransform(np.stack([xs, ys], axis=-1)[None], "bilinear")
    np.testing.assert_array_equal(identity.apply_image(img), img)
    rgb = np.stack([img, img + 1, img + 2], axis=-1).astype(np.float64)
    np.testing.assert_allclose(identity.apply_image(rgb), rgb)
    mirror = T.GridSampleTransform(np.stack([-xs, ys], axis=-1)[None], "nearest")
    np.testing.assert_array_equal(mirror.apply_image(img), img[:, ::-1])
    np.testing.assert_array_equal(mirror.apply_segmentation(img), img[:, ::-1])
    with pytest.raises(NotImplementedError, match="cannot map coordinates"):
        mirror.apply_coords(np.zeros((1, 2)))


def test_grid_sample_transform_rejects_bad_grids():
    with pytest.raises(ValueError, match=r"\(N, H_out, W_out, 2\)"):
        T.GridSampleTransform(np.zeros((4, 4, 2)), "bilinear")
    with pytest.raises(ValueError, match="interp must be one of"):
        T.GridSampleTransform(np.zeros((1, 4, 4, 2)), "area")
    with pytest.raises(ValueError, match="N = 1"):
        T.GridSampleTransform(np.zeros((2, 4, 4, 2)), "bilinear").apply_image(np.zeros((4, 4)))


def test_rotated_boxes_through_flip_resize_and_transform_lists():
    from det.data.detection_utils import annotations_to_instances_rotated

    boxes = np.array([[10.0, 20.0, 8.0, 4.0, 30.0]])
    np.testing.assert_allclose(T.HFlipTransform(100).apply_rotated_box(boxes.copy()), [[90, 20, 8, 4, -30]])
    uniform = T.ResizeTransform(50, 100, 100, 200).apply_rotated_box(boxes.copy())
    np.testing.assert_allclose(uniform, [[20, 40, 16, 8, 30]])
    # x doubles only: a box at 0 degrees doubles its width, one at 90 degrees its height
    stretch = T.ResizeTransform(50, 100, 50, 200)
    np.testing.assert_allclose(stretch.apply_rotated_box(np.array([[10.0, 20, 8, 4, 0]])), [[20, 20, 16, 4, 0]])
    np.testing.assert_allclose(stretch.apply_rotated_box(np.array([[10.0, 20, 8, 4, 90]])), [[20, 20, 8, 8, 90]],
                               atol=1e-12)
    both = T.TransformList([T.ResizeTransform(50, 100, 100, 200), T.HFlipTransform(200), T.NoOpTransform()])
    np.testing.assert_allclose(both.apply_rotated_box(boxes.copy()), [[180, 40, 16, 8, -30]])

    instances = annotations_to_instances_rotated(
        [{"bbox": [10, 20, 8, 4, 30], "category_id": 2}, {"bbox": [5, 5, 2, 2, 0], "category_id": 0}], (50, 100))
    assert instances.gt_boxes.tensor.tolist() == [[10, 20, 8, 4, 30], [5, 5, 2, 2, 0]]
    assert instances.gt_classes.tolist() == [2, 0] and instances.image_size == (50, 100)
    with pytest.raises(ValueError, match=r"\(cx, cy, w, h, angle\)"):
        annotations_to_instances_rotated([{"bbox": [1, 2, 3, 4], "category_id": 0}], (50, 100))


def test_register_type_adds_an_apply_method_that_transform_lists_follow():
    T.VFlipTransform.register_type("marks", lambda t, marks: [t.height - m for m in marks])
    try:
        vflip = T.VFlipTransform(10)
        assert vflip.apply_marks([1, 4]) == [9, 6]
        assert T.TransformList([vflip, vflip]).apply_marks([1, 4]) == [1, 4]
        with pytest.raises(AttributeError, match="apply_marks"):
            T.TransformList([T.HFlipTransform(4)]).apply_marks([1])
        with pytest.raises(TypeError, match="must be callable"):
            T.VFlipTransform.register_type("other", 3)
        with pytest.raises(ValueError, match="identifier"):
            T.VFlipTransform.register_type("two words", lambda t, x: x)
    finally:
        del T.VFlipTransform.apply_marks
