"""Boxes, BoxMode and the pairwise box functions behave as detectron2's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from det.structures import (
    Boxes,
    BoxMode,
    RotatedBoxes,
    matched_boxlist_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)

# --- BoxMode.convert -------------------------------------------------------------------------


def test_convert_xywh_to_xyxy_keeps_the_input_type():
    assert BoxMode.convert([10, 20, 5, 5], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == [10, 20, 15, 25]
    assert BoxMode.convert((10.0, 20.0, 5.0, 5.0), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == (
        10.0,
        20.0,
        15.0,
        25.0,
    )
    arr = np.array([[1.0, 2.0, 3.0, 4.0]])
    out = BoxMode.convert(arr, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [[1.0, 2.0, 4.0, 6.0]])
    np.testing.assert_array_equal(arr, [[1.0, 2.0, 3.0, 4.0]])  # input untouched


def test_convert_xyxy_to_xywh_does_not_modify_the_tensor():
    t = torch.tensor([[1.0, 2.0, 4.0, 6.0]])
    out = BoxMode.convert(t, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    assert out.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert t.tolist() == [[1.0, 2.0, 4.0, 6.0]]


def test_convert_same_mode_returns_the_object_itself():
    t = torch.zeros(2, 4)
    assert BoxMode.convert(t, BoxMode.XYXY_ABS, BoxMode.XYXY_ABS) is t


def test_convert_rotated_to_xyxy_gives_the_enclosing_box():
    rot = torch.tensor(
        [[10.0, 10.0, 4.0, 2.0, 0.0], [10.0, 10.0, 4.0, 2.0, 90.0], [0.0, 0.0, 2.0, 2.0, 45.0]]
    )
    out = BoxMode.convert(rot, BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    assert out.dtype == torch.float32
    r2 = 2**0.5
    expected = torch.tensor([[8.0, 9.0, 12.0, 11.0], [9.0, 8.0, 11.0, 12.0], [-r2, -r2, r2, r2]])
    torch.testing.assert_close(out, expected)
    assert BoxMode.convert([10, 10, 4, 2, 0], BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS) == [8, 9, 12, 11]


def test_convert_xywh_to_rotated_adds_angle_zero():
    out = BoxMode.convert(torch.tensor([[0.0, 0.0, 4.0, 2.0]]), BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    assert out.tolist() == [[2.0, 1.0, 4.0, 2.0, 0.0]]
    out = BoxMode.convert(torch.tensor([[0.0, 0.0, 4.0, 2.0]]), BoxMode.XYXY_ABS, BoxMode.XYWHA_ABS)
    assert out.tolist() == [[2.0, 1.0, 4.0, 2.0, 0.0]]
    out = BoxMode.convert(torch.tensor([[2.0, 1.0, 4.0, 2.0, 0.0]]), BoxMode.XYWHA_ABS, BoxMode.XYWH_ABS)
    assert out.tolist() == [[0.0, 0.0, 4.0, 2.0]]


def test_convert_empty_tensors():
    out = BoxMode.convert(torch.zeros(0, 4), BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    assert out.shape == (0, 5)
    assert BoxMode.convert(torch.zeros(0, 5), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS).shape == (0, 4)


def test_convert_bad_inputs_raise_clear_errors():
    with pytest.raises(NotImplementedError, match="relative"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_REL, BoxMode.XYXY_ABS)
    with pytest.raises(ValueError, match="k == 4 or 5"):
        BoxMode.convert([0, 0, 1], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    with pytest.raises(ValueError, match="5 numbers"):
        BoxMode.convert(torch.zeros(3, 4), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    with pytest.raises(TypeError, match=r"list, tuple, numpy array or torch\.Tensor"):
        BoxMode.convert("0 0 1 1", BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)


finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)
size = st.floats(0, 1e3, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite, size, size), min_size=1, max_size=8))
def test_convert_round_trip_xywh_xyxy(rows):
    t = torch.tensor(rows, dtype=torch.float64)
    back = BoxMode.convert(
        BoxMode.convert(t, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS
    )
    torch.testing.assert_close(back, t, atol=1e-9, rtol=1e-12)
    rot = BoxMode.convert(t, BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    back = BoxMode.convert(rot, BoxMode.XYWHA_ABS, BoxMode.XYWH_ABS)
    torch.testing.assert_close(back, t, atol=1e-9, rtol=1e-12)


# --- Boxes -----------------------------------------------------------------------------------


def test_boxes_are_float32_n_by_4():
    b = Boxes(torch.tensor([[0, 0, 10, 20], [5, 5, 6, 6]]))
    assert b.tensor.dtype == torch.float32
    assert len(b) == 2
    assert Boxes([[1, 2, 3, 4]]).tensor.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert Boxes(np.zeros((3, 4), dtype=np.float64)).tensor.dtype == torch.float32
    assert Boxes(torch.zeros(0)).tensor.shape == (0, 4)
    assert Boxes([]).tensor.shape == (0, 4)


def test_boxes_bad_shapes_and_types():
    with pytest.raises(ValueError, match=r"shape \(N, 4\), got shape \(3, 3\)"):
        Boxes(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        Boxes(torch.zeros(4))
    with pytest.raises(TypeError, match="real-valued"):
        Boxes(torch.zeros(2, 4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="numeric"):
        Boxes(np.array([["a", "b", "c", "d"]]))


def test_boxes_methods():
    b = Boxes(torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 5.0, 8.0], [-5.0, 2.0, 30.0, 40.0]]))
    assert b.area().tolist() == [200.0, 0.0, 1330.0]
    assert b.nonempty().tolist() == [True, False, True]
    assert b.nonempty(threshold=9.5).tolist() == [True, False, True]
    assert b.get_centers().tolist() == [[5.0, 10.0], [5.0, 6.5], [12.5, 21.0]]
    assert b.inside_box((25, 25)).tolist() == [True, True, False]
    assert b.inside_box((25, 25), boundary_threshold=100).tolist() == [True, True, True]
    c = b.clone()
    c.clip((15, 12))
    assert c.tensor.tolist() == [[0.0, 0.0, 10.0, 15.0], [5.0, 5.0, 5.0, 8.0], [0.0, 2.0, 12.0, 15.0]]
    assert b.tensor[2, 0] == -5.0  # clone is independent
    c.scale(2.0, 0.5)
    assert c.tensor[0].tolist() == [0.0, 0.0, 20.0, 7.5]
    assert [t.tolist() for t in Boxes(torch.ones(2, 4))] == [[1.0] * 4, [1.0] * 4]


def test_boxes_clip_rejects_non_finite():
    with pytest.raises(ValueError, match="infinite or NaN"):
        Boxes(torch.tensor([[0.0, 0.0, float("inf"), 1.0]])).clip((10, 10))


def test_boxes_indexing():
    b = Boxes(torch.arange(20, dtype=torch.float32).view(5, 4))
    assert b[1].tensor.tolist() == [[4.0, 5.0, 6.0, 7.0]]
    assert len(b[1:3]) == 2
    assert b[torch.tensor([True, False, False, False, True])].tensor[:, 0].tolist() == [0.0, 16.0]
    assert b[torch.tensor([4, 0])].tensor[:, 0].tolist() == [16.0, 0.0]
    with pytest.raises(IndexError):
        b[1, 2]


def test_boxes_cat_and_to():
    a = Boxes(torch.zeros(2, 4))
    b = Boxes(torch.ones(1, 4))
    c = Boxes.cat([a, b])
    assert c.tensor.tolist() == [[0.0] * 4, [0.0] * 4, [1.0] * 4]
    c.tensor[0, 0] = 5
    assert a.tensor[0, 0] == 0  # never shares storage
    assert Boxes.cat([]).tensor.shape == (0, 4)
    with pytest.raises(TypeError, match="only Boxes"):
        Boxes.cat([a, torch.zeros(1, 4)])
    assert a.to("cpu").device.type == "cpu"
    assert repr(b) == "Boxes(tensor([[1., 1., 1., 1.]]))"


# --- pairwise functions ----------------------------------------------------------------------


def test_pairwise_iou_and_ioa_values():
    b1 = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]]))
    b2 = Boxes(
        torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 5.0, 5.0], [20.0, 20.0, 30.0, 30.0], [3, 3, 3, 3]])
    )
    iou = pairwise_iou(b1, b2)
    torch.testing.assert_close(iou, torch.tensor([[1.0, 0.25, 0.0, 0.0], [25 / 175, 0.0, 0.0, 0.0]]))
    ioa = pairwise_ioa(b1, b2)
    # The empty box at (3, 3) has IoA 0, not 0/0.
    torch.testing.assert_close(ioa, torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.25, 0.0, 0.0, 0.0]]))
    inter = pairwise_intersection(b1, b2)
    assert inter.tolist() == [[100.0, 25.0, 0.0, 0.0], [25.0, 0.0, 0.0, 0.0]]
    torch.testing.assert_close(matched_boxlist_iou(b1, Boxes(b2.tensor[:2])), torch.tensor([1.0, 0.0]))


def test_pairwise_empty_inputs():
    empty = Boxes(torch.zeros(0, 4))
    b = Boxes(torch.ones(3, 4))
    assert pairwise_iou(empty, b).shape == (0, 3)
    assert pairwise_iou(b, empty).shape == (3, 0)
    assert pairwise_ioa(empty, empty).shape == (0, 0)


def test_pairwise_type_errors():
    b = Boxes(torch.ones(3, 4))
    with pytest.raises(TypeError, match="boxes2 must be Boxes"):
        pairwise_iou(b, torch.ones(3, 4))
    with pytest.raises(TypeError, match="pairwise_iou_rotated"):
        pairwise_iou(b, RotatedBoxes(torch.ones(3, 5)))
    with pytest.raises(ValueError, match="same number"):
        matched_boxlist_iou(b, Boxes(torch.ones(2, 4)))


def test_pairwise_point_box_distance():
    points = torch.tensor([[5.0, 5.0], [0.0, 20.0]])
    boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [2.0, 4.0, 3.0, 8.0]]))
    d = pairwise_point_box_distance(points, boxes)
    assert d.shape == (2, 2, 4)
    assert d[0, 0].tolist() == [5.0, 5.0, 5.0, 5.0]
    assert d[0, 1].tolist() == [3.0, 1.0, -2.0, 3.0]
    assert d[1, 0].tolist() == [0.0, 20.0, 10.0, -10.0]
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        pairwise_point_box_distance(torch.zeros(3), boxes)


def _brute_iou_ioa(a, b):
    """Per-pair loops in plain python floats."""
    n, m = len(a), len(b)
    iou = np.zeros((n, m))
    ioa = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            ax0, ay0, ax1, ay1 = a[i]
            bx0, by0, bx1, by1 = b[j]
            iw = min(ax1, bx1) - max(ax0, bx0)
            ih = min(ay1, by1) - max(ay0, by0)
            inter = max(iw, 0.0) * max(ih, 0.0)
            if inter > 0:
                area_a = (ax1 - ax0) * (ay1 - ay0)
                area_b = (bx1 - bx0) * (by1 - by0)
                iou[i, j] = inter / (area_a + area_b - inter)
                ioa[i, j] = inter / area_b
    return iou, ioa


box = st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 30), st.integers(0, 30)).map(
    lambda t: (float(t[0]), float(t[1]), float(t[0] + t[2]), float(t[1] + t[3]))
)


@settings(max_examples=80, deadline=None)
@given(st.lists(box, max_size=6), st.lists(box, max_size=6))
def test_pairwise_iou_ioa_match_brute_force(a, b):
    ta = Boxes(torch.tensor(a, dtype=torch.float32).reshape(-1, 4))
    tb = Boxes(torch.tensor(b, dtype=torch.float32).reshape(-1, 4))
    iou, ioa = _brute_iou_ioa(a, b)
    np.testing.assert_allclose(pairwise_iou(ta, tb).numpy(), iou, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pairwise_ioa(ta, tb).numpy(), ioa, rtol=1e-6, atol=1e-7)


def test_numpy_integer_indexes_like_int():
    from det.structures import BitMasks, Keypoints

    assert Boxes(torch.ones(3, 4))[np.int64(1)].tensor.shape == (1, 4)
    assert RotatedBoxes(torch.ones(3, 5))[np.int32(2)].tensor.shape == (1, 5)
    assert BitMasks(torch.ones(3, 2, 2))[np.int64(0)].tensor.shape == (1, 2, 2)
    assert Keypoints(torch.ones(3, 4, 3))[np.int64(0)].tensor.shape == (1, 4, 3)
