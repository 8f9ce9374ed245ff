"""det.core.layers losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from det.core.layers import (
    ciou_loss,
    diou_loss,
    giou_loss,
    sigmoid_focal_loss,
    sigmoid_focal_loss_jit,
    sigmoid_focal_loss_star,
    sigmoid_focal_loss_star_jit,
    smooth_l1_loss,
)


def test_smooth_l1_hand_computed_and_l1_below_tiny_beta():
    x = torch.tensor([0.0, 0.5, 1.0, 3.0])
    t = torch.zeros(4)
    # |d| < 1: 0.5 d^2 / 1; else |d| - 0.5
    assert smooth_l1_loss(x, t, beta=1.0).tolist() == [0.0, 0.125, 0.5, 2.5]
    assert smooth_l1_loss(x, t, beta=1.0, reduction="sum").item() == pytest.approx(3.125)
    assert smooth_l1_loss(x, t, beta=1.0, reduction="mean").item() == pytest.approx(3.125 / 4)
    assert smooth_l1_loss(x, t, beta=0.0).tolist() == [0.0, 0.5, 1.0, 3.0]
    assert smooth_l1_loss(x, t, beta=9e-6).tolist() == [0.0, 0.5, 1.0, 3.0]
    # beta = 0.5: 0.5*0.25/0.5 = 0.25 is not < beta branch at |d| = 0.5 -> 0.5 - 0.25
    assert smooth_l1_loss(torch.tensor([0.25, 0.5]), torch.zeros(2), beta=0.5).tolist() == [0.0625, 0.25]


def test_empty_mean_is_zero_with_gradient():
    x = torch.zeros(0, 4, requires_grad=True)
    loss = smooth_l1_loss(x, torch.zeros(0, 4), 0.1, reduction="mean")
    assert loss.item() == 0.0
    loss.backward()
    assert x.grad.shape == (0, 4)
    assert giou_loss(torch.zeros(0, 4), torch.zeros(0, 4), reduction="mean").item() == 0.0


def test_giou_diou_ciou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    iou = 1 / 7  # intersection 1, union 4 + 4 - 1
    # GIoU: enclosing box 3x3 = 9
    assert giou_loss(a, b).item() == pytest.approx(1 - (iou - (9 - 7) / 9), rel=1e-6)
    # DIoU: centres (1,1), (2,2) -> distance^2 2; enclosing diagonal^2 18
    assert diou_loss(a, b).item() == pytest.approx(1 - iou + 2 / 18, rel=1e-6)
    # same aspect ratio: v = 0 and CIoU == DIoU
    assert ciou_loss(a, b).item() == pytest.approx(diou_loss(a, b).item(), rel=1e-6)

    p = torch.tensor([0.0, 0.0, 2.0, 1.0])  # (4,) boxes work too
    g = torch.tensor([0.0, 0.0, 1.0, 2.0])
    iou = 1 / 3
    dist = 0.5 / 8  # centres (1, .5) and (.5, 1); enclosing 2x2
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(0.5)) ** 2
    alpha = v / (1 - iou + v)
    assert ciou_loss(p, g).item() == pytest.approx(1 - iou + dist + alpha * v, rel=1e-5)
    # identical boxes: zero loss; disjoint boxes: GIoU loss above 1
    assert giou_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    far = torch.tensor([[10.0, 10.0, 12.0, 12.0]])
    assert giou_loss(a, far).item() == pytest.approx(1 + (144 - 8) / 144, rel=1e-6)


def test_reductions_and_bad_input():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])
    per_box = giou_loss(a, b)
    assert per_box.shape == (2,)
    assert giou_loss(a, b, reduction="sum").item() == pytest.approx(per_box.sum().item())
    assert diou_loss(a, b, reduction="mean").item() == pytest.approx(diou_loss(a, b).mean().item())
    with pytest.raises(ValueError, match="bad box in boxes1: x1 larger than x2"):
        giou_loss(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), b[:1])
    with pytest.raises(ValueError, match="bad box in boxes1: y1 larger than y2"):
        ciou_loss(torch.tensor([[0.0, 2.0, 1.0, 1.0]]), b[:1])
    with pytest.raises(
        ValueError, match=r"boxes2 must be XYXY boxes of shape \(N, 4\) or \(4,\), got \(1, 5\)"
    ):
        diou_loss(a[:1], torch.zeros(1, 5))
    with pytest.raises(ValueError, match="reduction must be one of"):
        smooth_l1_loss(a, b, 1.0, reduction="avg")


def test_sigmoid_focal_loss_hand_computed():
    logits = torch.tensor([0.0, 0.0, 2.0])
    targets = torch.tensor([1.0, 0.0, 1.0])
    p2 = 1 / (1 + math.exp(-2))
    # p_t = 0.5, 0.5, sigmoid(2); ce = -log p_t; loss = ce * (1 - p_t)^2
    expected = [math.log(2) * 0.25, math.log(2) * 0.25, -math.log(p2) * (1 - p2) ** 2]
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets), torch.tensor(expected))
    # alpha weights positives by alpha, negatives by 1 - alpha
    weighted = [expected[0] * 0.25, expected[1] * 0.75, expected[2] * 0.25]
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=0.25), torch.tensor(weighted))
    assert sigmoid_focal_loss(logits, targets, alpha=0.25, reduction="sum").item() == pytest.approx(
        sum(weighted)
    )
    # gamma = 0 is plain BCE
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, gamma=0), bce)
    # half inputs are computed in float32
    assert sigmoid_focal_loss(logits.half(), targets).dtype == torch.float32
    with pytest.raises(ValueError, match="reduction must be"):
        sigmoid_focal_loss(logits, targets, reduction="avg")


def test_sigmoid_focal_loss_star_hand_computed():
    logits = torch.tensor([0.0, 1.0])
    targets = torch.tensor([1.0, 0.0])
    # -log(sigmoid(gamma * x * (2y - 1))) / gamma with gamma 1: log 2 and log(1 + e)
    expected = torch.tensor([math.log(2), math.log(1 + math.e)])
    torch.testing.assert_close(sigmoid_focal_loss_star(logits, targets), expected)
    g2 = torch.tensor([math.log(2) / 2, math.log(1 + math.exp(2)) / 2])
    torch.testing.assert_close(sigmoid_focal_loss_star(logits, targets, gamma=2), g2)


def test_jit_variants_give_same_numbers():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=gen)
    targets = (torch.rand(6, 5, generator=gen) > 0.7).float()
    for kwargs in ({}, {"alpha": 0.25, "gamma": 2.0, "reduction": "sum"}, {"reduction": "mean"}):
        torch.testing.assert_close(
            sigmoid_focal_loss_jit(logits, targets, **kwargs), sigmoid_focal_loss(logits, targets, **kwargs)
        )
        torch.testing.assert_close(
            sigmoid_focal_loss_star_jit(logits, targets, **kwargs),
            sigmoid_focal_loss_star(logits, targets, **kwargs),
        )
