"""box_iou_rotated kernel against det.structures' float64 polygon-clipping reference."""

from __future__ import annotations

import math

import pytest
import torch

from det.ops_cuda import box_iou_rotated
from det.structures import pairwise_iou_rotated


def _rotated(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 30
    wh = torch.rand(n, 2, generator=g) * 15 + 0.5
    angle = torch.rand(n, 1, generator=g) * 360 - 180
    return torch.cat([xy, wh, angle], dim=1)


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 2e-6), (torch.float64, 1e-12)])
def test_random_boxes_match_reference(dtype, atol):
    a, b = _rotated(24, 0).to(dtype), _rotated(20, 1).to(dtype)
    b[:4] = a[:4]
    iou = box_iou_rotated(a, b)
    expected = pairwise_iou_rotated(a.double(), b.double())
    assert iou.dtype == dtype and iou.shape == (24, 20)
    assert (expected > 0).sum() > 40  # enough overlapping pairs to mean something
    torch.testing.assert_close(iou.double(), expected, atol=atol, rtol=0)
    torch.testing.assert_close(
        iou[:4, :4].diagonal().double(), torch.ones(4, dtype=torch.float64), atol=atol, rtol=0
    )


def test_exact_values_of_simple_configurations():
    boxes1 = torch.tensor([[10.0, 10.0, 4.0, 2.0, 0.0]] * 6)
    boxes2 = torch.tensor(
        [
            [10.0, 10.0, 4.0, 2.0, 0.0],  # identical
            [10.0, 10.0, 4.0, 2.0, 180.0],  # the same region
            [10.0, 10.0, 4.0, 2.0, 90.0],  # cross: 2x2 overlap of 8 + 8 - 4
            [14.0, 10.0, 4.0, 2.0, 0.0],  # touching edges
            [11.0, 10.0, 4.0, 2.0, 0.0],  # shifted by a quarter: 6 / 10
            [10.0, 10.0, 2.0, 1.0, 0.0],  # contained: 2 / 8
        ]
    )
    iou = box_iou_rotated(boxes1, boxes2).diagonal()
    torch.testing.assert_close(iou, torch.tensor([1.0, 1.0, 1 / 3, 0.0, 0.6, 0.25]), atol=1e-6, rtol=0)
    # 45 degrees: a square and its rotated copy overlap in a regular octagon
    sq = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]])
    octagon = 8 * (math.sqrt(2) - 1)
    iou45 = box_iou_rotated(sq, torch.tensor([[0.0, 0.0, 2.0, 2.0, 45.0]]))
    assert iou45.item() == pytest.approx(octagon / (8 - octagon), abs=1e-6)


def test_degenerate_huge_tiny_and_thin_boxes():
    boxes = torch.tensor(
        [
            [5.0, 5.0, 0.0, 3.0, 10.0],  # zero area
            [5.0, 5.0, 1e-8, 1e-7, 0.0],  # area below 1e-14
            [1e4, -1e4, 3e4, 2e4, 33.0],  # huge, negative coordinates
            [1e4, -1e4, 2.9e4, 2e4, 31.0],
            [0.001, 0.002, 1e-3, 2e-3, 17.0],  # tiny
            [0.0012, 0.002, 1e-3, 2e-3, 20.0],
            [0.0, 0.0, 1e3, 1e-4, 0.0],  # thin
            [0.0, 0.0, 1e3, 1e-4, 1e-3],
        ],
        dtype=torch.float64,
    )
    iou = box_iou_rotated(boxes, boxes)
    torch.testing.assert_close(iou, pairwise_iou_rotated(boxes, boxes), atol=1e-9, rtol=0)
    assert iou[0].abs().sum() == 0 and iou[:, 1].abs().sum() == 0
    assert 0.8 < iou[2, 3] < 1 and 0.5 < iou[4, 5] < 1 and 0 < iou[6, 7] < 1
    # float32 keeps huge and tiny boxes to float32 precision (thin ones need float64)
    f = boxes[:6].float()
    torch.testing.assert_close(
        box_iou_rotated(f, f).double(), pairwise_iou_rotated(boxes[:6], boxes[:6]), atol=1e-5, rtol=0
    )


def test_empty_inputs_and_half_precision():
    assert box_iou_rotated(torch.zeros(0, 5), _rotated(3, 2)).shape == (0, 3)
    assert box_iou_rotated(_rotated(3, 2), torch.zeros(0, 5)).shape == (3, 0)
    half = _rotated(5, 3).half()
    iou = box_iou_rotated(half, half)
    assert iou.dtype == torch.float16
    torch.testing.assert_close(
        iou.float(), pairwise_iou_rotated(half.float(), half.float()), atol=2e-3, rtol=0
    )


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"boxes2 must be a \(N, 5\) tensor"):
        box_iou_rotated(torch.zeros(2, 5), torch.zeros(2, 4))
