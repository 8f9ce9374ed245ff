"""find_top_rpn_proposals: per-level top-k, clipping, small-box removal, per-level NMS, top-k."""

from __future__ import annotations

import math

import pytest
import torch

from det.heads.rpn import find_top_rpn_proposals


def _levels():
    # level 0: four boxes, level 1: two boxes; one image of 50x60 (h, w)
    level0 = torch.tensor([[[0.0, 0.0, 10.0, 10.0],     # logit 4
                            [0.0, 0.0, 10.0, 10.5],     # logit 3, IoU 0.95 with the first: suppressed
                            [40.0, 40.0, 80.0, 49.0],   # logit 2, clipped to x2 = 60
                            [20.0, 20.0, 20.5, 30.0]]]) # logit 1, 0.5 px wide
    logits0 = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    level1 = torch.tensor([[[0.0, 0.0, 10.0, 10.0],     # same box as level 0's best, other level: kept
                            [30.0, 5.0, 45.0, 25.0]]])
    logits1 = torch.tensor([[5.0, -1.0]])
    return [level0, level1], [logits0, logits1]


def test_nms_is_per_level_and_results_are_sorted():
    proposals, logits = _levels()
    (res,) = find_top_rpn_proposals(proposals, logits, [(50, 60)], nms_thresh=0.7,
                                    pre_nms_topk=10, post_nms_topk=10, min_box_size=0.0, training=False)
    assert res.image_size == (50, 60)
    assert res.objectness_logits.tolist() == [5.0, 4.0, 2.0, 1.0, -1.0]
    assert res.proposal_boxes.tensor.tolist() == [
        [0.0, 0.0, 10.0, 10.0],
        [0.0, 0.0, 10.0, 10.0],
        [40.0, 40.0, 60.0, 49.0],
        [20.0, 20.0, 20.5, 30.0],
        [30.0, 5.0, 45.0, 25.0],
    ]


def test_min_box_size_and_topk_limits():
    proposals, logits = _levels()
    (res,) = find_top_rpn_proposals(proposals, logits, [(50, 60)], nms_thresh=0.7,
                                    pre_nms_topk=10, post_nms_topk=3, min_box_size=1.0, training=False)
    # the 0.5 px wide box is gone, then only the best three remain
    assert res.objectness_logits.tolist() == [5.0, 4.0, 2.0]

    (res,) = find_top_rpn_proposals(proposals, logits, [(50, 60)], nms_thresh=0.7,
                                    pre_nms_topk=1, post_nms_topk=10, min_box_size=0.0, training=False)
    # one per level before NMS
    assert res.objectness_logits.tolist() == [5.0, 4.0]


def test_each_image_is_handled_separately():
    proposals, logits = _levels()
    proposals = [torch.cat([p, p.flip(1)]) for p in proposals]
    logits = [torch.cat([lg, lg.flip(1)]) for lg in logits]
    res = find_top_rpn_proposals(proposals, logits, [(50, 60), (20, 20)], nms_thresh=0.7,
                                 pre_nms_topk=10, post_nms_topk=10, min_box_size=0.0, training=False)
    assert len(res) == 2
    assert res[1].image_size == (20, 20)
    # second image: clipped to 20x20, boxes outside the image become empty and are dropped
    assert res[1].proposal_boxes.tensor.max().item() <= 20.0
    assert res[0].objectness_logits.tolist() == [5.0, 4.0, 2.0, 1.0, -1.0]


def test_non_finite_predictions():
    proposals, logits = _levels()
    logits[0][0, 2] = math.nan
    with pytest.raises(FloatingPointError, match="diverged"):
        find_top_rpn_proposals(proposals, logits, [(50, 60)], 0.7, 10, 10, 0.0, training=True)
    (res,) = find_top_rpn_proposals(proposals, logits, [(50, 60)], 0.7, 10, 10, 0.0, training=False)
    assert not torch.isnan(res.objectness_logits).any()
    assert len(res) == 4


def test_mismatched_levels_are_refused():
    proposals, logits = _levels()
    with pytest.raises(ValueError, match="levels"):
        find_top_rpn_proposals(proposals, logits[:1], [(50, 60)], 0.7, 10, 10, 0.0, False)
