"""Box encodings, Matcher and subsample_labels: hand-computed values and detectron2's RNG use."""

import math

import pytest
import torch

from det.core.modeling import (
    Box2BoxTransform,
    Box2BoxTransformLinear,
    Box2BoxTransformRotated,
    Matcher,
    subsample_labels,
)


def test_box2box_hand_computed_deltas():
    t = Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))
    src = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    tgt = torch.tensor([[1.0, 2.0, 11.0, 22.0]])
    # src center (5, 5) size 10x10; target center (6, 12) size 10x20
    deltas = t.get_deltas(src, tgt)
    torch.testing.assert_close(deltas, torch.tensor([[1.0, 7.0, 0.0, 5 * math.log(2.0)]]))
    torch.testing.assert_close(t.apply_deltas(deltas, src), tgt)


def test_box2box_round_trip_and_class_specific_deltas():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 100
    src = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=g) * 50], dim=1)
    xy = torch.rand(50, 2, generator=g) * 100
    tgt = torch.cat([xy, xy + 1 + torch.rand(50, 2, generator=g) * 50], dim=1)
    t = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
    torch.testing.assert_close(t.apply_deltas(t.get_deltas(src, tgt), src), tgt, atol=1e-3, rtol=1e-5)
    # (N, k*4): one box per class, decoded independently
    two = t.apply_deltas(torch.cat([t.get_deltas(src, tgt), torch.zeros(50, 4)], dim=1), src)
    assert two.shape == (50, 8)
    torch.testing.assert_close(two[:, 4:], src)


def test_box2box_clamps_scale():
    t = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
    out = t.apply_deltas(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), torch.tensor([[0.0, 0.0, 16.0, 16.0]]))
    # exp(log(1000/16)) * 16 = 1000 px wide around center 8
    torch.testing.assert_close(out, torch.tensor([[-492.0, -492.0, 508.0, 508.0]]))


def test_box2box_bad_input():
    t = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        t.get_deltas(torch.zeros(3, 5), torch.zeros(3, 4))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        t.get_deltas([[0, 0, 1, 1]], torch.zeros(1, 4))
    with pytest.raises(ValueError, match="not valid"):
        t.get_deltas(torch.tensor([[5.0, 0, 5, 1]]), torch.tensor([[0.0, 0, 1, 1]]))


def test_box2box_rotated_hand_computed_and_angle_wrap():
    t = Box2BoxTransformRotated(weights=(1.0, 1.0, 1.0, 1.0, 1.0))
    src = torch.tensor([[10.0, 10.0, 4.0, 2.0, 170.0]])
    tgt = torch.tensor([[12.0, 9.0, 8.0, 2.0, -170.0]])
    deltas = t.get_deltas(src, tgt)
    # -170 - 170 = -340 -> +20 degrees after wrapping into [-180, 180)
    torch.testing.assert_close(deltas, torch.tensor([[0.5, -0.5, math.log(2.0), 0.0, math.radians(20.0)]]))
    torch.testing.assert_close(t.apply_deltas(deltas, src), tgt)


def test_box2box_linear():
    t = Box2BoxTransformLinear(normalize_by_size=True)
    src = torch.tensor([[0.0, 0.0, 8.0, 8.0]])  # a stride-8 "anchor" with center (4, 4)
    tgt = torch.tensor([[2.0, 0.0, 12.0, 20.0]])
    deltas = t.get_deltas(src, tgt)
    torch.testing.assert_close(deltas, torch.tensor([[0.25, 0.5, 1.0, 2.0]]))
    torch.testing.assert_close(t.apply_deltas(deltas, src), tgt)
    # negative distances are clipped, so boxes stay valid
    torch.testing.assert_close(
        t.apply_deltas(torch.tensor([[-1.0, -1.0, 1.0, 1.0]]), src), torch.tensor([[4.0, 4.0, 12.0, 12.0]])
    )


def test_matcher_thresholds_and_low_quality_matches():
    iou = torch.tensor(
        [
            [0.9, 0.4, 0.1, 0.0],
            [0.1, 0.5, 0.2, 0.25],
            [0.0, 0.0, 0.15, 0.15],
        ]
    )
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=False)(iou)
    assert matches.tolist() == [0, 1, 1, 1]
    assert labels.dtype == torch.int8 and labels.tolist() == [1, -1, 0, 0]

    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(iou)
    # gt1's best (0.5) promotes column 1; gt2's best is a tie (0.15) and promotes both 2 and 3
    assert matches.tolist() == [0, 1, 1, 1]
    assert labels.tolist() == [1, 1, 1, 1]


def test_matcher_empty_and_errors():
    matches, labels = Matcher([0.5], [0, 1])(torch.zeros(0, 5))
    assert matches.tolist() == [0] * 5 and labels.tolist() == [0] * 5
    with pytest.raises(ValueError, match="len\\(thresholds\\) \\+ 1"):
        Matcher([0.3, 0.7], [0, 1])
    with pytest.raises(ValueError, match="increasing"):
        Matcher([0.7, 0.3], [0, -1, 1])
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        Matcher([0.5], [0, 2])
    with pytest.raises(ValueError, match="2-D"):
        Matcher([0.5], [0, 1])(torch.zeros(3))


def test_subsample_labels_counts():
    labels = torch.tensor([1] * 10 + [0] * 20 + [-1] * 5)
    torch.manual_seed(0)
    pos, neg = subsample_labels(labels, num_samples=16, positive_fraction=0.25, bg_label=0)
    assert len(pos) == 4 and len(neg) == 12
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 4 and len(set(neg.tolist())) == 12

    few = torch.tensor([3, 3] + [7] * 30 + [-1] * 5)  # bg_label 7, foreground = any other class
    pos, neg = subsample_labels(few, num_samples=16, positive_fraction=0.25, bg_label=7)
    assert sorted(pos.tolist()) == [0, 1] and len(neg) == 14


def test_subsample_labels_makes_detectron2s_randperm_calls():
    labels = torch.tensor([1, 0, 0, 1, -1, 0, 1, 0, 0, 0, 1, 1])
    torch.manual_seed(123)
    pos, neg = subsample_labels(labels, num_samples=6, positive_fraction=0.5, bg_label=0)
    torch.manual_seed(123)
    positive = torch.tensor([0, 3, 6, 10, 11])
    negative = torch.tensor([1, 2, 5, 7, 8, 9])
    assert pos.tolist() == positive[torch.randperm(5)[:3]].tolist()
    assert neg.tolist() == negative[torch.randperm(6)[:3]].tolist()


def test_dense_box_regression_loss_smooth_l1_and_giou():
    from det.core.modeling import _dense_box_regression_loss
    from det.structures import Boxes

    t = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0))
    anchors = [Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]])), Boxes(torch.tensor([[0.0, 0.0, 20.0, 20.0]]))]
    gt = [torch.tensor([[1.0, 0.0, 11.0, 10.0], [0.0, 0.0, 20.0, 20.0]])]  # image 0: per-anchor targets
    pred = [torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)]  # per level (N, R_i, 4)
    fg = torch.tensor([[True, True]])
    # anchor 0 needs dx = 0.1, anchor 1 is already right: L1 sum = 0.1
    loss = _dense_box_regression_loss(anchors, t, pred, gt, fg, "smooth_l1", 0.0)
    assert loss.item() == pytest.approx(0.1)
    only_second = _dense_box_regression_loss(anchors, t, pred, gt, torch.tensor([[False, True]]))
    assert only_second.item() == 0.0
    # GIoU of [0,0,10,10] vs [1,0,11,10]: IoU 90/110, hull = union -> loss 1 - 9/11
    giou = _dense_box_regression_loss([a.tensor for a in anchors], t, pred, gt, fg, "giou")
    assert giou.item() == pytest.approx(1 - 9 / 11)
    with pytest.raises(ValueError, match="Invalid dense box regression loss type 'l2'"):
        _dense_box_regression_loss(anchors, t, pred, gt, fg, "l2")
