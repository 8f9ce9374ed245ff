"""RotatedBoxes and pairwise_iou_rotated, checked against an independent polygon clipper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from det.structures import Boxes, BoxMode, RotatedBoxes, pairwise_iou, pairwise_iou_rotated
from det.structures.rotated_boxes import pairwise_iou as rotated_pairwise_iou

# --- an independent reference: Sutherland-Hodgman clipping in plain python floats --------------


def _corners(box):
    """Corners of (xc, yc, w, h, angle ccw in degrees), counter-clockwise in a y-up frame."""
    xc, yc, w, h, a = box
    t = math.radians(a)
    # Image y points down, so a ccw rotation on screen is cw in a y-up frame: rotate by -a in y-up,
    # then flip y. Equivalently: width axis (cos a, -sin a), height axis (sin a, cos a) in image coords.
    ux, uy = math.cos(t), -math.sin(t)
    vx, vy = math.sin(t), math.cos(t)
    pts = []
    for sw, sh in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        pts.append((xc + sw * w / 2 * ux + sh * h / 2 * vx, yc + sw * w / 2 * uy + sh * h / 2 * vy))
    return pts


def _signed_area(poly):
    s = 0.0
    for i in range(len(poly)):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % len(poly)]
        s += x0 * y1 - x1 * y0
    return s / 2


def _clip(subject, clipper):
    """Sutherland-Hodgman: the part of convex ``subject`` inside convex ccw ``clipper``."""
    out = list(subject)
    for i in range(len(clipper)):
        a = clipper[i]
        b = clipper[(i + 1) % len(clipper)]
        inp, out = out, []
        if not inp:
            break

        def side(p, a=a, b=b):
            return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

        for j in range(len(inp)):
            p, q = inp[j], inp[(j + 1) % len(inp)]
            sp, sq = side(p), side(q)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def _ccw(poly):
    return poly if _signed_area(poly) >= 0 else poly[::-1]


def reference_iou(b1, b2):
    a1, a2 = b1[2] * b1[3], b2[2] * b2[3]
    if a1 < 1e-14 or a2 < 1e-14:
        return 0.0
    inter = abs(_signed_area(_clip(_ccw(_corners(b1)), _ccw(_corners(b2))) or [(0, 0)]))
    return inter / (a1 + a2 - inter)


# --- RotatedBoxes ----------------------------------------------------------------------------


def test_rotated_boxes_shape_and_dtype():
    b = RotatedBoxes(torch.tensor([[1, 2, 3, 4, 5]]))
    assert b.tensor.dtype == torch.float32
    assert RotatedBoxes(torch.zeros(0)).tensor.shape == (0, 5)
    with pytest.raises(ValueError, match=r"shape \(N, 5\), got shape \(2, 4\)"):
        RotatedBoxes(torch.zeros(2, 4))
    with pytest.raises(TypeError, match="real-valued"):
        RotatedBoxes(torch.zeros(2, 5, dtype=torch.complex64))


def test_rotated_boxes_methods():
    b = RotatedBoxes(torch.tensor([[50.0, 50.0, 20.0, 10.0, 30.0], [5.0, 5.0, 0.0, 3.0, -200.0]]))
    assert b.area().tolist() == [200.0, 0.0]
    assert b.nonempty().tolist() == [True, False]
    assert b.get_centers().tolist() == [[50.0, 50.0], [5.0, 5.0]]
    c = b.clone()
    c.normalize_angles()
    assert c.tensor[:, 4].tolist() == [30.0, 160.0]
    assert len(RotatedBoxes.cat([b, c])) == 4
    assert RotatedBoxes.cat([]).tensor.shape == (0, 5)
    assert b[0].tensor.shape == (1, 5)
    assert b[torch.tensor([False, True])].tensor[0, 0] == 5.0
    assert isinstance(b[0:1], RotatedBoxes)
    assert repr(b[0]).startswith("RotatedBoxes(")
    with pytest.raises(TypeError, match="only RotatedBoxes"):
        RotatedBoxes.cat([b, Boxes(torch.zeros(1, 4))])


def test_rotated_clip_only_touches_nearly_horizontal_boxes():
    b = RotatedBoxes(
        torch.tensor([[5.0, 5.0, 20.0, 4.0, 0.5], [5.0, 5.0, 20.0, 4.0, 45.0], [5.0, 5.0, 4.0, 4.0, 360.0]])
    )
    b.clip((8, 10))
    t = b.tensor
    # Box 0: x range [-5, 15] clipped to [0, 10]; y range [3, 7] kept.
    torch.testing.assert_close(t[0], torch.tensor([5.0, 5.0, 10.0, 4.0, 0.5]))
    torch.testing.assert_close(t[1], torch.tensor([5.0, 5.0, 20.0, 4.0, 45.0]))
    torch.testing.assert_close(t[2], torch.tensor([5.0, 5.0, 4.0, 4.0, 0.0]))


def test_rotated_inside_box_uses_the_enclosing_rectangle():
    b = RotatedBoxes(
        torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0], [10.0, 10.0, 20.0, 2.0, 90.0], [10, 10, 20, 2, 0]])
    )
    assert b.inside_box((30, 30)).tolist() == [True, True, True]
    assert b.inside_box((19, 30)).tolist() == [True, False, True]


def test_rotated_scale():
    b = RotatedBoxes(
        torch.tensor([[10.0, 10.0, 4.0, 2.0, 0.0], [10.0, 10.0, 4.0, 2.0, 90.0], [1, 1, 2, 2, 30]])
    )
    b.scale(2.0, 3.0)
    torch.testing.assert_close(b.tensor[0], torch.tensor([20.0, 30.0, 8.0, 6.0, 0.0]))
    # At 90 degrees the width runs along y: it scales by 3, the height by 2.
    torch.testing.assert_close(b.tensor[1], torch.tensor([20.0, 30.0, 12.0, 4.0, 90.0]))
    # An isotropic scale keeps the angle.
    c = RotatedBoxes(torch.tensor([[1.0, 1.0, 2.0, 2.0, 30.0]]))
    c.scale(2.0, 2.0)
    torch.testing.assert_close(c.tensor, torch.tensor([[2.0, 2.0, 4.0, 4.0, 30.0]]))


# --- pairwise_iou_rotated: exact cases --------------------------------------------------------


def iou(a, b):
    return pairwise_iou_rotated(
        torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    ).item()


def test_identical_boxes():
    for box in ([0, 0, 2, 2, 0], [3, -4, 10, 1, 33.3], [1e4, 1e4, 1e3, 2e3, -170]):
        assert iou(box, box) == pytest.approx(1.0, abs=1e-12)
    # Shifted by far less than the tolerances: still at most 1.
    assert 1 - 1e-9 < iou([0, 0, 1, 1, 0], [0, 1e-12, 1, 1, 0]) <= 1.0


def test_nested_boxes():
    assert iou([0, 0, 4, 4, 0], [0, 0, 2, 2, 0]) == pytest.approx(0.25, abs=1e-12)
    assert iou([0, 0, 4, 4, 45], [0.5, 0, 1, 1, 10]) == pytest.approx(1 / 16, abs=1e-12)
    # Nested with a shared edge.
    assert iou([0, 0, 4, 4, 0], [-1, 0, 2, 4, 0]) == pytest.approx(0.5, abs=1e-12)


def test_parallel_and_collinear_edges():
    assert iou([0, 0, 2, 2, 0], [1, 0, 2, 2, 0]) == pytest.approx(2 / 6, abs=1e-12)
    assert iou([0, 0, 2, 2, 30], [0, 0, 2, 2, 210]) == pytest.approx(1.0, abs=1e-12)
    assert iou([0, 0, 2, 2, 0], [0, 0, 2, 2, 90]) == pytest.approx(1.0, abs=1e-12)
    # Same height and row, overlapping in x: collinear top and bottom edges.
    assert iou([0, 0, 4, 2, 0], [2, 0, 4, 2, 0]) == pytest.approx(4 / 12, abs=1e-12)


def test_touching_and_disjoint():
    assert iou([0, 0, 2, 2, 0], [2, 0, 2, 2, 0]) == 0.0
    assert iou([0, 0, 2, 2, 0], [2, 2, 2, 2, 0]) == 0.0
    assert iou([0, 0, 2, 2, 0], [2 + math.sqrt(2), 0, 2, 2, 45]) == pytest.approx(0.0, abs=1e-12)
    assert iou([0, 0, 2, 2, 0], [100, 100, 2, 2, 0]) == 0.0


def test_rotated_45_square():
    # Square and the same square turned 45 degrees: intersection is a regular octagon.
    octagon = 8 * (math.sqrt(2) - 1)
    assert iou([0, 0, 2, 2, 0], [0, 0, 2, 2, 45]) == pytest.approx(octagon / (8 - octagon), abs=1e-12)


def test_large_and_tiny_boxes():
    assert iou([5e4, 5e4, 1e4, 1e4, 0], [5e4 + 5e3, 5e4, 1e4, 1e4, 0]) == pytest.approx(1 / 3, abs=1e-12)
    assert iou([1e3, 1e3, 1e-3, 1e-3, 0], [1e3 + 5e-4, 1e3, 1e-3, 1e-3, 0]) == pytest.approx(1 / 3, abs=1e-9)
    # Tiny inside large.
    assert iou([0, 0, 100, 100, 10], [1, 1, 0.01, 0.01, 70]) == pytest.approx(1e-8, rel=1e-6)
    # A degenerate box has IoU 0 with everything, itself included.
    assert iou([0, 0, 0, 5, 0], [0, 0, 0, 5, 0]) == 0.0
    # Negative width and height (positive area, as detectron2 computes it) is the same rectangle.
    assert iou([0, 0, -4, -2, 30], [0, 0, 4, 2, 30]) == pytest.approx(1.0, abs=1e-12)


def test_accepts_rotated_boxes_and_tensors_and_keeps_dtype():
    a = RotatedBoxes(torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0], [10.0, 10.0, 2.0, 2.0, 0.0]]))
    b = torch.tensor([[1.0, 0.0, 2.0, 2.0, 0.0]])
    out = pairwise_iou_rotated(a, b)
    assert out.dtype == torch.float32 and out.shape == (2, 1)
    torch.testing.assert_close(out, torch.tensor([[1 / 3], [0.0]]))
    torch.testing.assert_close(rotated_pairwise_iou(a, RotatedBoxes(b)), out)
    assert pairwise_iou_rotated(a, torch.zeros(0, 5)).shape == (2, 0)
    assert pairwise_iou_rotated(torch.zeros(0, 5), a).shape == (0, 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        pairwise_iou_rotated(torch.zeros(2, 4), torch.zeros(2, 5))
    with pytest.raises(TypeError, match="floating point"):
        pairwise_iou_rotated(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5))
    with pytest.raises(TypeError, match="axis-aligned"):
        pairwise_iou_rotated(Boxes(torch.zeros(2, 4)), torch.zeros(2, 5))
    with pytest.raises(TypeError, match="RotatedBoxes or an"):
        pairwise_iou_rotated([[0, 0, 1, 1, 0]], torch.zeros(2, 5))


def test_zero_angle_matches_axis_aligned_iou():
    g = torch.Generator().manual_seed(0)
    xywh = torch.rand(30, 4, generator=g, dtype=torch.float64) * torch.tensor(
        [50, 50, 20, 20]
    ) + torch.tensor([0, 0, 1, 1])
    rot = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    xyxy = BoxMode.convert(xywh, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
    expected = pairwise_iou(Boxes(xyxy), Boxes(xyxy)).double()
    torch.testing.assert_close(pairwise_iou_rotated(rot, rot), expected, atol=1e-6, rtol=1e-6)


def test_many_boxes_are_chunked_consistently():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(300, 5, generator=g, dtype=torch.float64) * torch.tensor([60, 60, 20, 20, 360])
    b = torch.rand(70, 5, generator=g, dtype=torch.float64) * torch.tensor([60, 60, 20, 20, 360])
    full = pairwise_iou_rotated(a, b)
    for i, j in [(0, 0), (17, 5), (299, 69), (123, 45)]:
        assert full[i, j].item() == pytest.approx(reference_iou(a[i].tolist(), b[j].tolist()), abs=1e-9)
    torch.testing.assert_close(pairwise_iou_rotated(a[:7], b), full[:7])


# --- property test against the clipper --------------------------------------------------------

coord = st.floats(-20, 20, allow_nan=False)
side = st.floats(0.05, 15, allow_nan=False)
angle = st.floats(-360, 360, allow_nan=False) | st.sampled_from([0.0, 45.0, 90.0, -90.0, 180.0])
rbox = st.tuples(coord, coord, side, side, angle)


@settings(max_examples=150, deadline=None)
@given(st.lists(rbox, min_size=1, max_size=5), st.lists(rbox, min_size=1, max_size=5))
def test_matches_sutherland_hodgman(a, b):
    out = pairwise_iou_rotated(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    expected = np.array([[reference_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(rbox, st.floats(0.1, 3), st.floats(-5, 5), st.floats(-5, 5))
def test_symmetric_and_shifted_copies(box, scale, dx, dy):
    shifted = [box[0] + dx, box[1] + dy, box[2] * scale, box[3], box[4] + 17]
    a = torch.tensor([box], dtype=torch.float64)
    b = torch.tensor([shifted], dtype=torch.float64)
    assert pairwise_iou_rotated(a, b).item() == pytest.approx(pairwise_iou_rotated(b, a).item(), abs=1e-12)
    assert pairwise_iou_rotated(a, b).item() == pytest.approx(reference_iou(box, shifted), abs=1e-9)


def centered_reference_iou(b1, b2):
    """reference_iou after moving both boxes' mid-point to the origin (IoU is translation invariant),
    so that the plain-float clipper stays accurate for tiny boxes."""
    cx, cy = (b1[0] + b2[0]) / 2, (b1[1] + b2[1]) / 2
    return reference_iou([b1[0] - cx, b1[1] - cy, *b1[2:]], [b2[0] - cx, b2[1] - cy, *b2[2:]])


log_side = st.floats(-4, 3).map(lambda e: 10.0**e)
thin_box = st.tuples(st.floats(-5, 5), st.floats(-5, 5), log_side, log_side, st.floats(-180, 180))


@settings(max_examples=150, deadline=None)
@given(
    thin_box,
    st.floats(-1, 1),
    st.floats(-1, 1),
    st.floats(0.5, 2),
    st.sampled_from([0.0, 1e-6, 1e-3, 0.5, 90.0, 180.0, -1e-3]),
)
def test_thin_tiny_and_nearly_parallel_boxes(box, fx, fy, fw, dangle):
    """Extreme aspect ratios (1e-4 x 1e3) and angle differences down to 1e-6 degrees."""
    other = [box[0] + fx * box[2], box[1] + fy * box[3], box[2] * fw, box[3], box[4] + dangle]
    got = pairwise_iou_rotated(
        torch.tensor([box], dtype=torch.float64), torch.tensor([other], dtype=torch.float64)
    )
    assert 0.0 <= got.item() <= 1.0
    assert got.item() == pytest.approx(centered_reference_iou(list(box), other), abs=1e-7)


@pytest.mark.parametrize(
    ("box1", "box2", "expected"),
    [
        # Near-identical boxes from detectron2 issues #2154 and #2167 (float32 noise in every number).
        (
            [296.6620178222656, 458.73883056640625, 23.515729904174805, 47.677001953125, 0.08795166015625],
            [296.66201, 458.73882000000003, 23.51573, 47.67702, 0.087951],
            1.0,
        ),
        (
            [2563.74462890625, 1436.7901611328125, 2174.703369140625, 214.09500122070312, 115.11834716796875],
            [2563.74462890625, 1436.790283203125, 2174.702880859375, 214.09495544433594, 115.11835479736328],
            1.0,
        ),
        ([565.0, 565.0, 10.0, 10.0, 0.0], [565.0, 565.0, 10.0, 8.3, 0.0], 0.83),
        # Absurdly far apart: 0, never negative or NaN.
        (
            [160.0, 153.0, 230.0, 23.0, -37.0],
            [-1.117407639806935e17, 1.3858420478349148e18, 1000.0, 1000.0, 1612.0],
            0.0,
        ),
    ],
)
def test_float32_precision_cases(box1, box2, expected):
    out = pairwise_iou_rotated(torch.tensor([box1]), torch.tensor([box2]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[expected]]), atol=1e-6, rtol=1e-6)
