"""ROIAlign kernels (forward and backward) against torchvision's roi_align, det-core's reference."""

from __future__ import annotations

import pytest
import torch

from det.core.layers.roi_align import _roi_align_reference
from det.ops_cuda import roi_align

ROIS = [
    [0, 1.0, 1.0, 9.0, 7.0],
    [1, -3.0, -2.0, 20.0, 16.0],  # beyond every border
    [0, 5.0, 5.0, 5.0, 5.0],  # a point
    [1, 28.0, 22.0, 30.0, 24.0],  # on the bottom-right border
    [0, 2.3, 4.1, 3.0, 4.5],  # smaller than a bin
    [0, 6.0, 6.0, 2.0, 1.0],  # inverted
    [1, -1e4, -1e4, 1e4, 1e4],  # huge: mostly outside (last: its adaptive grid is 1e7 samples)
]


def _inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 15, generator=g, dtype=dtype).requires_grad_()
    return x, torch.tensor(ROIS, dtype=dtype)


def _compare(x, rois, output_size, scale, ratio, aligned, atol):
    out = roi_align(x, rois, output_size, scale, ratio, aligned)
    ref = _roi_align_reference(x, rois, output_size, scale, ratio, aligned)
    torch.testing.assert_close(out, ref, atol=atol, rtol=0)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (grad,) = torch.autograd.grad(out, x, g)
    (grad_ref,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(grad, grad_ref, atol=atol * 10, rtol=0)
    return out, grad


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2])
def test_forward_and_backward_match_reference(aligned, sampling_ratio):
    x, rois = _inputs()
    rois = rois if sampling_ratio > 0 else rois[:-1]
    out, grad = _compare(x, rois, (3, 4), 0.5, sampling_ratio, aligned, atol=1e-6)
    assert out.shape == (len(rois), 3, 3, 4)
    assert out.abs().sum() > 0 and grad.abs().sum() > 0


def test_float64_and_output_size_as_int():
    x, rois = _inputs(torch.float64)
    out, _ = _compare(x, rois[:-1], 2, 1.0, 0, True, atol=1e-12)
    assert out.dtype == torch.float64 and out.shape == (6, 3, 2, 2)


def test_half_precision_is_computed_in_float32():
    x, rois = _inputs()
    out = roi_align(x.detach().half(), rois.half(), (2, 2), 0.5, 2, True)
    assert out.dtype == torch.float16
    ref = _roi_align_reference(x.detach(), rois.half().float(), (2, 2), 0.5, 2, True)
    torch.testing.assert_close(out.float(), ref, atol=1e-2, rtol=0)


def test_empty_rois_and_foreign_batch_index():
    x, _ = _inputs()
    out = roi_align(x, torch.zeros(0, 5), (7, 7), 1.0, 0, True)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() == 0
    # an ROI of an image not in the batch pools zeros instead of reading out of bounds
    foreign = roi_align(x.detach(), torch.tensor([[5.0, 0.0, 0.0, 4.0, 4.0]]), (2, 2), 1.0, 0, True)
    assert foreign.abs().sum() == 0


def test_gradcheck():
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.5, 1.0, 4.0, 3.5], [0, 2.0, 0.0, 6.0, 5.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, (2, 2), 1.0, 2, True), (x,))


def test_bad_shapes_are_named():
    x, _ = _inputs()
    with pytest.raises(ValueError, match=r"rois must be an \(R, 5\) tensor"):
        roi_align(x, torch.zeros(2, 4), 2)
    with pytest.raises(ValueError, match=r"input must be an \(N, C, H, W\) tensor"):
        roi_align(x[0], torch.zeros(2, 5), 2)
