"""nms, batched_nms and nms_rotated kernels against torchvision and det-core's references."""

from __future__ import annotations

import pytest
import torch
import torchvision

from det.core.layers.nms import _batched_nms_reference, _nms_rotated_reference
from det.ops_cuda import batched_nms, nms, nms_rotated


def _boxes(n: int, seed: int, scale: float = 50.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * scale
    wh = torch.rand(n, 2, generator=g) * scale * 0.6 + 1
    return torch.cat([xy, xy + wh], dim=1)


def _scores(n: int, seed: int) -> torch.Tensor:
    # distinct scores: ties are ordered arbitrarily by torchvision's sort
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).float() / n


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_keeps_torchvisions_boxes_in_its_order(threshold):
    boxes, scores = _boxes(70, 0), _scores(70, 1)
    expected = torchvision.ops.nms(boxes, scores, threshold)
    assert torch.equal(nms(boxes, scores, threshold), expected)


def test_nms_edge_cases():
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64 and empty.shape == (0,)
    # degenerate (zero-area) boxes have NaN IoU: never suppressed; on image borders and huge
    boxes = torch.tensor(
        [
            [5.0, 5.0, 5.0, 9.0],
            [5.0, 5.0, 5.0, 9.0],
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 9.0],
            [-1e5, -1e5, 1e5, 1e5],
            [-1e5, -1e5, 1e5, 0.9e5],
            [7.0, 7.0, 3.0, 3.0],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 1, 2, 4, 6]
    # one box
    assert nms(boxes[:1], scores[:1], 0.5).tolist() == [0]


def test_nms_float64_and_more_than_32_columns_per_row():
    boxes, scores = _boxes(100, 2, scale=20.0).double(), _scores(100, 3).double()
    assert torch.equal(nms(boxes, scores, 0.4), torchvision.ops.nms(boxes, scores, 0.4))


@pytest.mark.parametrize("num_classes", [1, 3, 80])
def test_batched_nms_matches_torchvision(num_classes):
    boxes, scores = _boxes(90, 4), _scores(90, 5)
    idxs = torch.randint(0, num_classes, (90,), generator=torch.Generator().manual_seed(6))
    keep = batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep, torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))
    assert torch.equal(keep, _batched_nms_reference(boxes, scores, idxs, 0.5))


def test_batched_nms_never_suppresses_across_classes():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 4)
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 2, 3]), 0.5).tolist() == [1, 3, 2, 0]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0, 1]), 0.5).tolist() == [1, 2]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).shape == (
        0,
    )


def _rotated(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 40
    wh = torch.rand(n, 2, generator=g) * 20 + 1
    angle = torch.rand(n, 1, generator=g) * 360 - 180
    return torch.cat([xy, wh, angle], dim=1)


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.9])
def test_nms_rotated_matches_reference(threshold):
    boxes, scores = _rotated(40, 7), _scores(40, 8)
    expected = _nms_rotated_reference(boxes, scores, threshold)
    assert torch.equal(nms_rotated(boxes, scores, threshold), expected)


def test_nms_rotated_edge_cases():
    assert nms_rotated(torch.zeros(0, 5), torch.zeros(0), 0.5).shape == (0,)
    boxes = torch.tensor(
        [
            [5.0, 3.0, 4.0, 2.0, -90.0],
            [5.0, 3.0, 4.0, 2.0, 90.0],  # the same region: IoU 1
            [5.0, 3.0, 4.0, 2.0, 0.0],  # IoU 1/3 with the first
            [30.0, 30.0, 0.0, 5.0, 0.0],  # zero width: IoU 0 with everything
            [30.0, 30.0, 0.0, 5.0, 0.0],
            [1e4, 1e4, 2e3, 1e3, 45.0],  # huge
            [1e4, 1e4, 2e3, 1e3, 45.0],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    assert nms_rotated(boxes, scores, 0.5).tolist() == [0, 2, 3, 4, 5]
    # below 1/3 the box turned by 90 degrees goes too
    assert nms_rotated(boxes, scores, 0.3).tolist() == [0, 3, 4, 5]
    assert nms_rotated(boxes, scores, 0.3).tolist() == _nms_rotated_reference(boxes, scores, 0.3).tolist()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"boxes must be an \(N, 4\)"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(3,\)"):
        nms_rotated(torch.zeros(3, 5), torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match=r"idxs must have shape \(3,\)"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2), 0.5)


def test_cpu_tensors_without_interpreter_are_refused(monkeypatch):
    from det.ops_cuda import _utils

    monkeypatch.setattr(_utils, "INTERPRETED", False)
    with pytest.raises(ValueError, match="Triton kernels need CUDA tensors, got tensors on cpu"):
        nms(torch.zeros(2, 4), torch.zeros(2), 0.5)
