"""BitMasks, PolygonMasks, ROIMasks and the polygon helpers."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from det.structures import (
    BitMasks,
    Boxes,
    PolygonMasks,
    ROIMasks,
    polygon_area,
    polygons_to_bitmask,
    rasterize_polygons_within_box,
)
from det.structures.mask_ops import paste_masks_in_image
from det.structures.roi_align import roi_align as torch_roi_align

SQUARE = np.array([2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0])
TRIANGLE = np.array([10.0, 1.0, 14.0, 1.0, 14.0, 5.0])


# --- polygons --------------------------------------------------------------------------------


def test_polygon_area():
    assert polygon_area(SQUARE[0::2], SQUARE[1::2]) == 16.0
    assert polygon_area(TRIANGLE[0::2], TRIANGLE[1::2]) == 8.0


def test_polygons_to_bitmask_is_cocos_rasterization():
    mask = polygons_to_bitmask([SQUARE, TRIANGLE], 8, 16)
    assert mask.dtype == bool and mask.shape == (8, 16)
    rle = mask_util.merge(mask_util.frPyObjects([SQUARE, TRIANGLE], 8, 16))
    np.testing.assert_array_equal(mask, mask_util.decode(rle).astype(bool))
    assert mask[2:6, 2:6].all() and mask.sum() == 16 + mask[:, 8:].sum()


def test_polygons_to_bitmask_empty_and_degenerate():
    assert not polygons_to_bitmask([], 4, 5).any()
    assert polygons_to_bitmask([], 4, 5).shape == (4, 5)
    # A 4-number "polygon" would be read by pycocotools as a bbox: refuse it.
    with pytest.raises(ValueError, match="at least 3 points"):
        polygons_to_bitmask([np.array([0.0, 0.0, 3.0, 3.0])], 4, 4)
    with pytest.raises(ValueError, match="even count"):
        polygons_to_bitmask([np.arange(7.0)], 4, 4)


@st.composite
def polygon(draw):
    n = draw(st.integers(3, 7))
    return np.array(draw(st.lists(st.floats(-2, 22, allow_nan=False), min_size=2 * n, max_size=2 * n)))


@settings(max_examples=60, deadline=None)
@given(st.lists(polygon(), min_size=1, max_size=3), st.integers(1, 20), st.integers(1, 20))
def test_polygons_to_bitmask_matches_pycocotools(polys, h, w):
    expected = mask_util.decode(mask_util.merge(mask_util.frPyObjects(polys, h, w))).astype(bool)
    np.testing.assert_array_equal(polygons_to_bitmask(polys, h, w), expected)
    via_bitmasks = BitMasks.from_polygon_masks(PolygonMasks([polys]), h, w)
    np.testing.assert_array_equal(via_bitmasks.tensor[0].numpy(), expected)


def test_rasterize_polygons_within_box():
    out = rasterize_polygons_within_box([SQUARE.copy()], np.array([2.0, 2.0, 6.0, 6.0]), 4)
    assert out.dtype == torch.bool and out.all()
    # The box covers the square's left half, scaled 2x horizontally.
    out = rasterize_polygons_within_box([SQUARE.copy()], np.array([0.0, 2.0, 4.0, 6.0], dtype=np.float32), 4)
    assert out.int().tolist() == [[0, 0, 1, 1]] * 4
    poly = SQUARE.copy()
    rasterize_polygons_within_box([poly], np.array([0.0, 0.0, 1.0, 1.0]), 4)
    np.testing.assert_array_equal(poly, SQUARE)  # input not modified


# --- PolygonMasks ----------------------------------------------------------------------------


def test_polygon_masks_construction_and_validation():
    pm = PolygonMasks(
        [[SQUARE, TRIANGLE], [torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])], [[0, 0, 2, 0, 0, 2]]]
    )
    assert len(pm) == 3
    assert all(p.dtype == np.float64 for inst in pm for p in inst)
    assert pm.device.type == "cpu" and pm.to("cpu") is pm
    assert repr(pm) == "PolygonMasks(num_instances=3)"
    with pytest.raises(ValueError, match="list of list of polygons"):
        PolygonMasks(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="list of polygons per instance"):
        PolygonMasks([SQUARE])
    with pytest.raises(ValueError, match="from 4 coordinates"):
        PolygonMasks([[np.array([0.0, 0.0, 1.0, 1.0])]])
    with pytest.raises(ValueError, match="from 7 coordinates"):
        PolygonMasks([[np.arange(7.0)]])


def test_polygon_masks_methods():
    pm = PolygonMasks([[SQUARE, TRIANGLE], [], [SQUARE + 1]])
    torch.testing.assert_close(pm.area(), torch.tensor([24.0, 0.0, 16.0], dtype=torch.float64))
    assert pm.nonempty().tolist() == [True, False, True]
    boxes = pm.get_bounding_boxes()
    assert isinstance(boxes, Boxes)
    assert boxes.tensor[0].tolist() == [2.0, 1.0, 14.0, 6.0]
    assert boxes.tensor[2].tolist() == [3.0, 3.0, 7.0, 7.0]
    assert boxes.tensor[1, 2:].tolist() == [0.0, 0.0]


def test_polygon_masks_indexing_and_cat():
    pm = PolygonMasks([[SQUARE], [TRIANGLE], [SQUARE + 1]])
    assert pm[1].polygons[0][0].tolist() == TRIANGLE.tolist()
    assert len(pm[0:2]) == 2
    assert [p[0][0] for p in pm[[2, 0]].polygons] == [3.0, 2.0]
    assert [p[0][0] for p in pm[torch.tensor([True, False, True])].polygons] == [2.0, 3.0]
    assert [p[0][0] for p in pm[torch.tensor([1])].polygons] == [10.0]
    with pytest.raises(ValueError, match="Unsupported tensor dtype"):
        pm[torch.tensor([0.5])]
    with pytest.raises(IndexError, match="bool mask"):
        pm[torch.tensor([True])]
    both = PolygonMasks.cat([pm, pm[0]])
    assert len(both) == 4
    with pytest.raises(TypeError, match="only PolygonMasks"):
        PolygonMasks.cat([pm, BitMasks(torch.zeros(1, 2, 2))])


def test_polygon_crop_and_resize():
    pm = PolygonMasks([[SQUARE], [TRIANGLE]])
    boxes = torch.tensor([[2.0, 2.0, 6.0, 6.0], [10.0, 1.0, 14.0, 5.0]])
    out = pm.crop_and_resize(boxes, 4)
    assert out.shape == (2, 4, 4) and out.dtype == torch.bool
    assert out[0].all()
    expected = mask_util.decode(mask_util.frPyObjects([np.array([0.0, 0, 4, 0, 4, 4])], 4, 4)).astype(bool)[
        ..., 0
    ]
    np.testing.assert_array_equal(out[1].numpy(), expected)
    assert pm.crop_and_resize(Boxes(boxes), 4).shape == (2, 4, 4)
    assert PolygonMasks([]).crop_and_resize(torch.zeros(0, 4), 7).shape == (0, 7, 7)
    with pytest.raises(ValueError, match="got 1 boxes for 2 masks"):
        pm.crop_and_resize(boxes[:1], 4)


# --- BitMasks --------------------------------------------------------------------------------


def test_bitmasks_basics():
    t = torch.zeros(3, 10, 12, dtype=torch.uint8)
    t[0, 2:5, 3:9] = 1
    t[2, 9, 11] = 1
    bm = BitMasks(t)
    assert bm.tensor.dtype == torch.bool and bm.image_size == (10, 12)
    assert bm.nonempty().tolist() == [True, False, True]
    assert bm.area().tolist() == [18, 0, 1]
    assert bm.get_bounding_boxes().tensor.tolist() == [
        [3.0, 2.0, 9.0, 5.0],
        [0.0, 0.0, 0.0, 0.0],
        [11.0, 9.0, 12.0, 10.0],
    ]
    assert bm[0].tensor.shape == (1, 10, 12)
    assert len(bm[bm.nonempty()]) == 2
    assert len(bm[torch.tensor([2, 0])]) == 2
    assert len(BitMasks.cat([bm, bm[1:]])) == 5
    assert BitMasks(np.ones((1, 2, 2))).tensor.all()
    assert repr(bm) == "BitMasks(num_instances=3)"
    assert [m.shape for m in bm] == [(10, 12)] * 3
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        BitMasks(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="different image sizes"):
        BitMasks.cat([bm, BitMasks(torch.zeros(1, 3, 3))])
    with pytest.raises(IndexError):
        bm[0, 1]


def test_bitmasks_from_polygon_masks():
    pm = PolygonMasks([[SQUARE], [TRIANGLE]])
    bm = BitMasks.from_polygon_masks(pm, 8, 16)
    assert bm.tensor.shape == (2, 8, 16)
    assert bm.tensor[0, 2:6, 2:6].all() and bm.tensor[0].sum() == 16
    assert BitMasks.from_polygon_masks([], 4, 4).tensor.shape == (0, 4, 4)
    assert BitMasks.from_polygon_masks(PolygonMasks([[]]), 4, 4).tensor.shape == (1, 4, 4)


def test_bitmasks_crop_and_resize():
    t = torch.zeros(2, 16, 16, dtype=torch.bool)
    t[0, 4:12, 4:12] = True
    t[1, :, :8] = True
    bm = BitMasks(t)
    boxes = torch.tensor([[4.0, 4.0, 12.0, 12.0], [0.0, 0.0, 16.0, 16.0]])
    out = bm.crop_and_resize(boxes, 4)
    assert out.dtype == torch.bool
    assert out[0].all()
    assert out[1].int().tolist() == [[1, 1, 0, 0]] * 4
    with pytest.raises(ValueError, match="boxes must have shape"):
        bm.crop_and_resize(torch.zeros(2, 5), 4)


def test_bitmask_and_polygon_targets_agree_on_a_square():
    pm = PolygonMasks([[SQUARE * 4]])  # the square [8, 24] x [8, 24]
    bm = BitMasks.from_polygon_masks(pm, 32, 32)
    boxes = torch.tensor([[4.0, 4.0, 28.0, 28.0]])
    torch.testing.assert_close(pm.crop_and_resize(boxes, 6), bm.crop_and_resize(boxes, 6))


def test_pure_torch_roi_align_is_bit_identical_to_torchvision():
    tv_ops = pytest.importorskip("torchvision.ops")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 25, generator=g)
    rois = torch.rand(40, 4, generator=g) * 30 - 3
    rois[:, 2:] = rois[:, :2] + torch.rand(40, 2, generator=g) * 15 - 1  # includes inverted boxes
    rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).float(), rois], dim=1)
    for aligned in (True, False):
        for sampling_ratio in (0, 2):
            for scale in (1.0, 0.5, 0.0625):
                expected = tv_ops.roi_align(x, rois, (7, 5), scale, sampling_ratio, aligned)
                got = torch_roi_align(x, rois, (7, 5), scale, sampling_ratio, aligned)
                assert torch.equal(got, expected), (aligned, sampling_ratio, scale)
    expected = tv_ops.roi_align(x.double(), rois.double(), 4, 0.5, 0, True)
    assert torch.equal(torch_roi_align(x.double(), rois.double(), 4, 0.5, 0, True), expected)
    assert torch_roi_align(x, torch.zeros(0, 5), 3).shape == (0, 3, 3, 3)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_mask_targets_match_torchvision_exactly(seed, integer_boxes):
    """Thresholding at 0.5 exposes any last-bit difference; there must be none."""
    tv_ops = pytest.importorskip("torchvision.ops")
    g = torch.Generator().manual_seed(seed)
    masks = (torch.rand(5, 1, 24, 30, generator=g) > 0.5).float()
    xy = torch.rand(5, 2, generator=g) * 24
    boxes = torch.cat([xy, xy + 0.5 + torch.rand(5, 2, generator=g) * 20], dim=1)
    if integer_boxes:
        boxes = boxes.round()
    rois = torch.cat([torch.arange(5.0)[:, None], boxes], dim=1)
    expected = tv_ops.roi_align(masks, rois, (14, 14), 1.0, 0, True)
    assert torch.equal(torch_roi_align(masks, rois, (14, 14), 1.0, 0, True), expected)


def test_bitmask_crop_and_resize_without_torchvision(monkeypatch):
    """With torchvision hidden, crop_and_resize takes the pure-torch path and gives the same masks."""
    import builtins
    import sys

    g = torch.Generator().manual_seed(3)
    bm = BitMasks(torch.rand(6, 40, 50, generator=g) > 0.4)
    xy = torch.rand(6, 2, generator=g) * 35
    boxes = torch.cat([xy, xy + 2 + torch.rand(6, 2, generator=g) * 20], dim=1)
    with_tv = bm.crop_and_resize(boxes, 14)

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name == "torchvision" or name.startswith("torchvision."):
            raise ImportError("torchvision hidden for this test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    without_tv = bm.crop_and_resize(boxes, 14)
    assert torch.equal(with_tv, without_tv)


# --- ROIMasks and pasting --------------------------------------------------------------------


def test_roi_masks_to_bitmasks_pastes_into_the_box():
    roi = ROIMasks(torch.ones(2, 28, 28))
    boxes = Boxes(torch.tensor([[2.0, 3.0, 10.0, 7.0], [0.0, 0.0, 4.0, 4.0]]))
    bm = roi.to_bitmasks(boxes, 12, 14)
    assert isinstance(bm, BitMasks) and bm.tensor.shape == (2, 12, 14)
    expected = torch.zeros(12, 14, dtype=torch.bool)
    expected[3:7, 2:10] = True
    assert torch.equal(bm.tensor[0], expected)
    assert bm.tensor[1].sum() == 16
    assert len(roi[0:1]) == 1 and roi.to("cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="3 dimension"):
        ROIMasks(torch.zeros(28, 28))
    with pytest.raises(ValueError, match=r"returns a tensor with shape \(28, 28\)"):
        roi[0]
    with pytest.raises(TypeError, match="to_bitmasks"):
        BitMasks.from_roi_masks(roi, 12, 14)


def test_paste_masks_in_image_threshold_and_uint8():
    masks = torch.zeros(1, 4, 4)
    masks[0, :, :2] = 1.0  # left half
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    out = paste_masks_in_image(masks, boxes, (8, 10))
    assert out.dtype == torch.bool
    assert out[0].sum(dim=1).tolist() == [4] * 8
    raw = paste_masks_in_image(masks, boxes, (8, 10), threshold=-1)
    # grid_sample pads with zeros: the box's border pixels fade (0.5625 * 255 at the corner).
    assert raw.dtype == torch.uint8
    assert raw[0, 0, :5].tolist() == [143, 191, 191, 143, 47]
    assert raw[0, 1, :5].tolist() == [191, 255, 255, 191, 63]
    assert raw[0, :, 5:].eq(0).all()
    assert paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 6)).shape == (0, 5, 6)
    with pytest.raises(ValueError, match="square"):
        paste_masks_in_image(torch.zeros(1, 28, 14), boxes, (8, 8))


def test_first_mask_target_does_not_pin_the_training_step_frames():
    """Mask targets are made inside the training forward; the torchvision.ops import they trigger
    makes a reference cycle through the importing stack, so it runs on a thread of its own."""
    import subprocess
    import sys

    child = r"""
import gc, sys, weakref
import torch
gc.disable()  # only reference counting may free the tensor
from det.structures import BitMasks
def training_step():
    activation = torch.zeros(1000)
    BitMasks(torch.ones(2, 8, 8, dtype=torch.bool)).crop_and_resize(torch.tensor([[0.0, 0, 4, 4], [1, 1, 6, 6]]), 4)
    return weakref.ref(activation)
ref = training_step()
print("torchvision.ops" in sys.modules, ref() is None)
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_an_import_error_on_the_loader_thread_is_raised_to_the_caller():
    from det.structures.thread_import import import_on_own_thread

    with pytest.raises(ModuleNotFoundError, match="no_such_module_for_det"):
        import_on_own_thread("no_such_module_for_det")
    assert import_on_own_thread("json") is __import__("json")
