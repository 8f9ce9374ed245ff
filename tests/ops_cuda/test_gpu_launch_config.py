"""The kernels launched with the block sizes a GPU gets (the interpreter otherwise runs wider
programs) give the same results: one rotated-NMS row per program, a few columns at a time, 4 IoU pairs
per program, 128 ROIAlign outputs and 512 pasted pixels per program."""

from __future__ import annotations

import pytest
import torch

from det.core.layers.nms import _nms_rotated_reference
from det.core.layers.roi_align import _roi_align_reference
from det.core.layers.roi_align_rotated import _roi_align_rotated_reference
from det.ops_cuda import mask_kernels, nms_kernels, roi_align_kernels, rotated_iou_kernels
from det.structures import pairwise_iou_rotated
from det.structures.mask_ops import _do_paste_mask


@pytest.fixture
def gpu_blocks(monkeypatch):
    # the wrappers choose launch sizes from these names; check_device still accepts CPU tensors
    for module in (nms_kernels, rotated_iou_kernels, roi_align_kernels):
        monkeypatch.setattr(module, "INTERPRETED", False)
    monkeypatch.setattr(roi_align_kernels, "BLOCK", 128)
    monkeypatch.setattr(mask_kernels, "BLOCK", 512)


def _rotated(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 30
    return torch.cat(
        [xy, torch.rand(n, 2, generator=g) * 15 + 1, torch.rand(n, 1, generator=g) * 180 - 90], 1
    )


def test_rotated_nms_and_iou(gpu_blocks, monkeypatch):
    # the column loop as on a GPU, in 2 steps of 16 instead of 8 of 4 (the interpreter is slow)
    monkeypatch.setattr(nms_kernels, "GPU_COLUMNS", 16)
    boxes = _rotated(34, 0)  # two 32-column words
    scores = torch.randperm(34, generator=torch.Generator().manual_seed(1)).float()
    assert torch.equal(
        nms_kernels.nms_rotated(boxes, scores, 0.3), _nms_rotated_reference(boxes, scores, 0.3)
    )
    iou = rotated_iou_kernels.box_iou_rotated(boxes[:7], boxes[:9])  # 63 pairs: a partial last block
    torch.testing.assert_close(iou, pairwise_iou_rotated(boxes[:7], boxes[:9]), atol=2e-6, rtol=0)


def test_roi_align_both_kinds(gpu_blocks):
    x = torch.randn(2, 3, 9, 11, generator=torch.Generator().manual_seed(2), requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 8.0, 7.0], [1, -2.0, 3.0, 12.0, 10.0]])
    out = roi_align_kernels.roi_align(x, rois, (7, 7), 1.0, 0, True)  # 147 outputs: 2 programs per ROI
    ref = _roi_align_reference(x, rois, (7, 7), 1.0, 0, True)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0], atol=1e-5, rtol=0
    )
    from det.ops_cuda.roi_align_rotated_kernels import roi_align_rotated

    rrois = torch.tensor([[0, 4.0, 4.0, 6.0, 4.0, 30.0], [1, 6.0, 5.0, 8.0, 8.0, -60.0]])
    torch.testing.assert_close(
        roi_align_rotated(x, rrois, (7, 7), 1.0, 2),
        _roi_align_rotated_reference(x, rrois, (7, 7), 1.0, 2),
        atol=1e-6,
        rtol=0,
    )


def test_paste_masks(gpu_blocks):
    masks = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(3))
    boxes = torch.tensor([[2.0, 3.0, 20.0, 15.0], [10.0, 1.0, 31.0, 24.0]])
    out = mask_kernels.paste_masks(masks, boxes, (25, 33))  # 825 pixels: 2 programs per mask
    expected = _do_paste_mask(masks[:, None], boxes, 25, 33, skip_empty=False)[0] >= 0.5
    assert torch.equal(out, expected)
