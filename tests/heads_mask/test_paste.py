"""Pasting (M, M) mask probabilities into the image: detectron2's ``paste_masks_in_image``.

det.heads.mask re-exports det-core's ``paste_masks_in_image`` (served by the op table, so a
plugin can replace it per device); ``detector_postprocess`` pastes ``pred_masks`` with the same
semantics: bilinear ``grid_sample`` of pixel centres, ``>= 0.5`` threshold, CPU masks pasted one
at a time over their own box so that memory stays bounded.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from det.core.layers import ops
from det.core.modeling.postprocessing import detector_postprocess
from det.heads.mask import paste_masks_in_image
from det.structures import Boxes, Instances, ROIMasks


def test_a_full_mask_fills_exactly_the_pixels_whose_centre_is_in_the_box():
    pasted = paste_masks_in_image(torch.ones(1, 28, 28), Boxes(torch.tensor([[2.0, 3.0, 7.0, 9.0]])), (12, 12))
    expected = torch.zeros(1, 12, 12, dtype=torch.bool)
    expected[0, 3:9, 2:7] = True
    assert pasted.dtype == torch.bool and torch.equal(pasted, expected)


def test_threshold_is_half_and_negative_threshold_gives_uint8_scaled_masks():
    masks = torch.tensor([[[0.5, 0.49], [0.51, 1.0]]])
    box = torch.tensor([[0.0, 0.0, 2.0, 2.0]])  # one mask cell per pixel: pasting samples the cell centres
    assert paste_masks_in_image(masks, box, (2, 2)).tolist() == [[[True, False], [True, True]]]
    soft = paste_masks_in_image(masks, box, (2, 2), threshold=-1)
    assert soft.dtype == torch.uint8 and soft.tolist() == [[[127, 124], [130, 255]]]


def test_pasting_no_masks_gives_an_empty_uint8_image_stack():
    out = paste_masks_in_image(torch.zeros(0, 28, 28), torch.zeros(0, 4), (5, 6))
    assert out.shape == (0, 5, 6)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="square"):
        paste_masks_in_image(torch.zeros(1, 28, 14), torch.zeros(1, 4), (5, 5))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        paste_masks_in_image(torch.zeros(2, 28, 28), torch.zeros(3, 4), (5, 5))


def test_100_masks_on_a_large_image_are_pasted_one_box_at_a_time(monkeypatch):
    # Memory stays bounded: on the CPU each grid_sample call covers one mask and its own box
    # (plus a pixel of margin), never N full images.
    calls = []
    real_grid_sample = F.grid_sample

    def recording_grid_sample(inp, grid, *args, **kwargs):
        calls.append((inp.shape[0], grid.shape[1] * grid.shape[2]))
        return real_grid_sample(inp, grid, *args, **kwargs)

    monkeypatch.setattr(F, "grid_sample", recording_grid_sample)
    n, height, width = 100, 800, 1200
    xy = torch.arange(n, dtype=torch.float32)[:, None] * torch.tensor([11.0, 7.0])
    boxes = torch.cat([xy, xy + torch.tensor([20.0, 30.0])], dim=1)  # 20 x 30 boxes along a diagonal
    pasted = paste_masks_in_image(torch.ones(n, 28, 28), boxes, (height, width))

    assert len(calls) == n
    assert all(batch == 1 and pixels <= 22 * 32 for batch, pixels in calls)
    assert pasted.shape == (n, height, width)
    assert pasted.flatten(1).sum(1).tolist() == [600] * n  # exactly each box's 20 x 30 pixels
    assert pasted[37, 7 * 37 : 7 * 37 + 30, 11 * 37 : 11 * 37 + 20].all()


def test_paste_goes_through_the_op_table_so_plugins_can_replace_it():
    seen = []

    def fake_paste(masks, boxes, image_shape, threshold):
        seen.append((tuple(masks.shape), image_shape, threshold))
        return torch.zeros(len(masks), *image_shape, dtype=torch.bool)

    ops.register_op("paste_masks", "cpu", fake_paste)
    try:
        paste_masks_in_image(torch.ones(2, 28, 28), Boxes(torch.tensor([[0.0, 0, 4, 4]] * 2)), (6, 6))
    finally:
        ops.unregister_op("paste_masks", "cpu")
    assert seen == [((2, 28, 28), (6, 6), 0.5)]


def _detections() -> Instances:
    torch.manual_seed(0)
    det = Instances((40, 60))
    det.pred_boxes = Boxes(torch.tensor([[4.0, 6.0, 30.0, 25.0], [10.5, 2.25, 55.0, 39.0], [0.0, 0.0, 0.0, 5.0]]))
    det.scores = torch.tensor([0.9, 0.8, 0.7])
    det.pred_classes = torch.tensor([1, 2, 3])
    det.pred_masks = torch.rand(3, 1, 28, 28)  # what mask_rcnn_inference leaves: (N, 1, M, M)
    return det


@pytest.mark.parametrize("as_roi_masks", [False, True], ids=["tensor", "ROIMasks"])
def test_detector_postprocess_pastes_with_the_same_semantics(as_roi_masks):
    det = _detections()
    soft_masks = det.pred_masks[:, 0].clone()
    if as_roi_masks:
        det.pred_masks = ROIMasks(det.pred_masks[:, 0])
    out = detector_postprocess(det, 80, 90)  # 1.5x wider, 2x taller

    # the empty box is dropped; the others are rescaled, then their masks pasted at 0.5
    scaled = torch.tensor([[6.0, 12.0, 45.0, 50.0], [15.75, 4.5, 82.5, 78.0]])
    torch.testing.assert_close(out.pred_boxes.tensor, scaled)
    expected = paste_masks_in_image(soft_masks[:2], scaled, (80, 90), threshold=0.5)
    assert out.pred_masks.dtype == torch.bool and out.pred_masks.shape == (2, 80, 90)
    assert torch.equal(out.pred_masks, expected)
    assert out.pred_masks[0, :12].sum() == 0  # rows whose centre lies above box 0 (y0 = 12) stay empty
