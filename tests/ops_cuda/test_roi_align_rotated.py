"""ROIAlignRotated kernels (forward and backward) against det-core's plain-torch reference."""

from __future__ import annotations

import pytest
import torch

from det.core.layers.roi_align_rotated import _roi_align_rotated_reference
from det.ops_cuda import roi_align, roi_align_rotated

ROIS = [
    [0, 5.0, 4.0, 8.0, 6.0, 30.0],
    [1, 7.0, 6.0, 30.0, 20.0, -45.0],  # beyond the borders
    [0, 5.0, 5.0, 0.0, 0.0, 10.0],  # a point
    [1, 29.0, 23.0, 3.0, 2.0, 90.0],  # on the bottom-right border
    [0, 0.0, 0.0, 4.5, 3.3, 179.0],  # centred on the top-left corner
    [1, 10.0, 10.0, 1e4, 1e4, 60.0],  # huge
    [0, 12.0, 9.0, 0.4, 0.3, -170.0],  # smaller than a bin
]


def _inputs(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 15, generator=g, dtype=dtype).requires_grad_()
    return x, torch.tensor(ROIS, dtype=dtype)


@pytest.mark.parametrize("sampling_ratio", [0, 1, 2])
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_forward_and_backward_match_reference(sampling_ratio, dtype, atol):
    x, rois = _inputs(dtype)
    rois_ = rois if sampling_ratio else rois[:5]  # the adaptive grid of the huge box is 1e8 samples
    out = roi_align_rotated(x, rois_, (3, 4), 0.5, sampling_ratio)
    ref = _roi_align_rotated_reference(x, rois_, (3, 4), 0.5, sampling_ratio)
    assert out.shape == (len(rois_), 3, 3, 4) and out.dtype == dtype
    torch.testing.assert_close(out, ref, atol=atol, rtol=0)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    (grad,) = torch.autograd.grad(out, x, g)
    (grad_ref,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(grad, grad_ref, atol=atol * 10, rtol=0)
    assert grad.abs().sum() > 0


def test_angle_zero_is_aligned_roi_align():
    x, _ = _inputs()
    rotated = torch.tensor([[0, 6.0, 5.0, 8.0, 6.0, 0.0], [1, 3.0, 9.0, 5.0, 7.0, 0.0]])
    xyxy = torch.cat(
        [rotated[:, :1], rotated[:, 1:3] - rotated[:, 3:5] / 2, rotated[:, 1:3] + rotated[:, 3:5] / 2], 1
    )
    torch.testing.assert_close(
        roi_align_rotated(x.detach(), rotated, (2, 3), 1.0, 2),
        roi_align(x.detach(), xyxy, (2, 3), 1.0, 2, True),
        atol=1e-6,
        rtol=0,
    )


def test_empty_rois_keep_the_graph():
    x, _ = _inputs()
    out = roi_align_rotated(x, torch.zeros(0, 6), 7, 1.0, 0)
    assert out.shape == (0, 3, 7, 7)
    out.sum().backward()
    assert x.grad.abs().sum() == 0


def test_gradcheck():
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 2.5, 2.0, 4.0, 3.0, 25.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: roi_align_rotated(t, rois, (2, 2), 1.0, 2), (x,))


def test_bad_shapes_are_named():
    x, _ = _inputs()
    with pytest.raises(ValueError, match=r"rois must be an \(R, 6\) tensor"):
        roi_align_rotated(x, torch.zeros(2, 5), 2, 1.0, 0)
