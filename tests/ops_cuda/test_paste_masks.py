"""Mask-pasting kernel against detectron2's grid_sample pasting (det.structures' reference)."""

from __future__ import annotations

import pytest
import torch

from det.core.layers.mask_ops import _paste_masks_reference
from det.ops_cuda import paste_masks
from det.structures.mask_ops import _do_paste_mask

BOXES = [
    [2.0, 3.0, 20.0, 15.0],
    [-5.0, -4.0, 10.0, 8.0],  # over the top-left border
    [30.0, 20.0, 55.5, 49.7],  # over the bottom-right border
    [10.0, 10.0, 10.0, 20.0],  # zero width
    [0.0, 0.0, 50.0, 40.0],  # the whole image
    [-1e4, -1e4, 1e4, 1e4],  # huge
    [20.3, 10.7, 21.1, 11.2],  # under a pixel
]


def _inputs():
    masks = torch.rand(len(BOXES), 7, 7, generator=torch.Generator().manual_seed(0))
    return masks, torch.tensor(BOXES)


def _full_image_reference(masks, boxes, h, w):
    """detectron2's GPU path: every pixel sampled (no CPU skip of the region outside the boxes)."""
    img, _ = _do_paste_mask(masks[:, None], boxes, h, w, skip_empty=False)
    return img


@pytest.mark.parametrize("threshold", [0.5, 0.2, 0.0])
def test_thresholded_masks_match_reference(threshold):
    masks, boxes = _inputs()
    out = paste_masks(masks, boxes, (40, 50), threshold)
    assert out.dtype == torch.bool and out.shape == (7, 40, 50)
    assert torch.equal(out, _full_image_reference(masks, boxes, 40, 50) >= threshold)
    if threshold > 0:  # the CPU reference skips pixels far outside the boxes, which are 0
        assert torch.equal(out, _paste_masks_reference(masks, boxes, (40, 50), threshold))
    assert out[3].sum() == 0  # a zero-width box pastes nothing
    assert out[4].sum() > 0 and out[5].sum() > 0


def test_soft_masks_as_uint8():
    masks, boxes = _inputs()
    out = paste_masks(masks, boxes, (40, 50), -1)
    expected = (_full_image_reference(masks, boxes, 40, 50) * 255).to(torch.uint8)
    assert out.dtype == torch.uint8
    assert (out.int() - expected.int()).abs().max() <= 1  # float rounding at a truncation boundary


def test_empty_and_non_float_masks():
    out = paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), (10, 12))
    assert out.shape == (0, 10, 12) and out.dtype == torch.bool
    ones = torch.ones(1, 4, 4, dtype=torch.bool)
    pasted = paste_masks(ones, torch.tensor([[2.0, 2.0, 6.0, 6.0]]), (8, 8))
    assert pasted[0, 2:6, 2:6].all() and pasted.sum() == 16


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"masks must be an \(N, M, M\) tensor"):
        paste_masks(torch.zeros(2, 28, 14), torch.zeros(2, 4), (10, 10))
    with pytest.raises(ValueError, match=r"boxes must be an \(2, 4\) XYXY tensor"):
        paste_masks(torch.zeros(2, 28, 28), torch.zeros(3, 4), (10, 10))
