"""RPN: anchor labelling and sampling, losses and statistics, proposals, errors."""

from __future__ import annotations

import math

import pytest
import torch

from det.core import EventStorage
from det.core.layers import giou_loss
from det.core.modeling import Box2BoxTransform, DefaultAnchorGenerator, Matcher
from det.heads.rpn import RPN, StandardRPNHead
from det.structures import Boxes, ImageList, Instances


def _rpn(**overrides) -> RPN:
    # one level, stride 8, one 16x16 anchor per position (offset 0: centred on multiples of 8)
    kwargs = dict(
        in_features=["p3"],
        head=StandardRPNHead(in_channels=4, num_anchors=1),
        anchor_generator=DefaultAnchorGenerator(sizes=[[16]], aspect_ratios=[[1.0]], strides=[8], offset=0.0),
        anchor_matcher=Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True),
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_topk=(100, 50),
        post_nms_topk=(20, 10),
    )
    kwargs.update(overrides)
    return RPN(**kwargs)


def _zero_head(rpn: RPN) -> RPN:
    with torch.no_grad():
        for p in rpn.rpn_head.parameters():
            p.zero_()
    return rpn


def _gt(boxes, size=(32, 32)) -> Instances:
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return inst


def _inputs(n=1, size=(32, 32)):
    images = ImageList(torch.zeros(n, 3, *size), [size] * n)
    features = {"p3": torch.rand(n, 4, size[0] // 8, size[1] // 8)}
    return images, features


def test_label_and_sample_anchors_matches_by_iou():
    rpn = _rpn()
    anchors = [Boxes(torch.tensor([[0.0, 0, 16, 16], [8, 8, 24, 24], [20, 20, 36, 36], [0, 0, 4, 4]]))]
    gt = _gt([[0, 0, 16, 14], [20, 20, 34, 36]])
    labels, matched = rpn.label_and_sample_anchors(anchors, [gt])
    # IoU with gt0: 0.875, 0.22, 0, 0.0625 -> pos, neg, -, neg ; anchor 2 matches gt1 (IoU 0.875)
    assert labels[0].tolist() == [1, 0, 1, 0]
    assert matched[0][[0, 2]].tolist() == [[0, 0, 16, 14], [20, 20, 34, 36]]


def test_low_quality_matches_make_the_best_anchor_of_each_gt_positive():
    rpn = _rpn()
    anchors = [Boxes(torch.tensor([[0.0, 0, 16, 16], [0, 0, 40, 40]]))]
    labels, _ = rpn.label_and_sample_anchors(anchors, [_gt([[0, 0, 8, 8]])])
    # IoU 0.25 and 0.04: both below 0.3, but anchor 0 is gt's best match
    assert labels[0].tolist() == [1, 0]


def test_sampling_keeps_batch_size_and_positive_fraction():
    rpn = _rpn(batch_size_per_image=4, positive_fraction=0.25)
    anchors = [Boxes(torch.tensor([[0.0, 0, 16, 16]] * 3 + [[100, 100, 116, 116]] * 10))]
    torch.manual_seed(0)
    labels, _ = rpn.label_and_sample_anchors(anchors, [_gt([[0, 0, 16, 16]])])
    assert (labels[0] == 1).sum().item() == 1
    assert (labels[0] == 0).sum().item() == 3
    assert (labels[0] == -1).sum().item() == 9
    # the same seed gives the same sample: sampling is torch.randperm, as in detectron2
    torch.manual_seed(0)
    again, _ = rpn.label_and_sample_anchors(anchors, [_gt([[0, 0, 16, 16]])])
    assert torch.equal(labels[0], again[0])


def test_image_without_ground_truth_gives_negatives_and_zero_targets():
    rpn = _rpn()
    anchors = [Boxes(torch.tensor([[0.0, 0, 16, 16], [8, 8, 24, 24]]))]
    labels, matched = rpn.label_and_sample_anchors(anchors, [_gt([])])
    assert labels[0].tolist() == [0, 0]
    assert torch.equal(matched[0], torch.zeros(2, 4))


def test_boundary_threshold_ignores_anchors_leaving_the_image():
    rpn = _rpn(anchor_boundary_thresh=0)
    anchors = [Boxes(torch.tensor([[0.0, 0, 16, 16], [-8, -8, 8, 8], [20, 20, 36, 36]]))]
    labels, _ = rpn.label_and_sample_anchors(anchors, [_gt([[0, 0, 16, 16]], size=(32, 32))])
    # anchor 1 (IoU 0.14, a negative) and anchor 2 (no overlap) cross the border: ignored
    assert labels[0].tolist() == [1, -1, -1]


def test_training_losses_have_detectron2_names_values_and_statistics():
    rpn = _zero_head(_rpn()).train()
    images, features = _inputs()
    gt = _gt([[0, 0, 16, 14], [16, 8, 32, 26]])
    anchors = rpn.anchor_generator([features["p3"]])
    labels, matched = rpn.label_and_sample_anchors(anchors, [gt])
    num_pos = (labels[0] == 1).sum().item()
    num_neg = (labels[0] == 0).sum().item()
    assert num_pos >= 2

    with EventStorage(0) as storage:
        proposals, losses = rpn(images, features, [gt])
        stats = {k: v[0] for k, v in storage.latest().items()}
    assert sorted(losses) == ["loss_rpn_cls", "loss_rpn_loc"]
    assert stats == {"rpn/num_pos_anchors": num_pos, "rpn/num_neg_anchors": num_neg}
    # zero head: every logit is 0, so each sampled anchor costs log(2)
    normalizer = 256 * 1
    assert losses["loss_rpn_cls"].item() == pytest.approx((num_pos + num_neg) * math.log(2) / normalizer, rel=1e-6)
    # zero deltas and beta 0: L1 of the positives' target deltas
    all_anchors = Boxes.cat(anchors).tensor
    pos = labels[0] == 1
    target = Box2BoxTransform((1.0, 1.0, 1.0, 1.0)).get_deltas(all_anchors[pos], matched[0][pos])
    assert losses["loss_rpn_loc"].item() == pytest.approx(target.abs().sum().item() / normalizer, rel=1e-5)
    assert len(proposals) == 1 and len(proposals[0]) <= 20


def test_giou_loss_and_loss_weights():
    rpn = _zero_head(_rpn(box_reg_loss_type="giou", loss_weight={"loss_rpn_cls": 2.0, "loss_rpn_loc": 0.5})).train()
    images, features = _inputs()
    gt = _gt([[0, 0, 16, 14]])
    anchors = rpn.anchor_generator([features["p3"]])
    torch.manual_seed(3)
    labels, matched = rpn.label_and_sample_anchors(anchors, [gt])
    pos = labels[0] == 1
    # zero deltas: the predicted boxes are the anchors themselves
    expected_loc = giou_loss(Boxes.cat(anchors).tensor[pos], matched[0][pos], reduction="sum").item() / 256
    expected_cls = (labels[0] >= 0).sum().item() * math.log(2) / 256
    with EventStorage(0):
        torch.manual_seed(3)
        _, losses = rpn(images, features, [gt])
    assert losses["loss_rpn_loc"].item() == pytest.approx(0.5 * expected_loc, rel=1e-5)
    assert losses["loss_rpn_cls"].item() == pytest.approx(2.0 * expected_cls, rel=1e-6)


def test_losses_backpropagate_to_the_head():
    rpn = _rpn().train()
    images, features = _inputs()
    with EventStorage(0):
        _, losses = rpn(images, features, [_gt([[0, 0, 16, 14]])])
    sum(losses.values()).backward()
    assert rpn.rpn_head.objectness_logits.weight.grad.abs().sum() > 0
    assert rpn.rpn_head.anchor_deltas.weight.grad.abs().sum() > 0


def test_inference_proposals_use_test_topk_and_decoded_boxes():
    rpn = _zero_head(_rpn(nms_thresh=1.0)).eval()
    with torch.no_grad():
        rpn.rpn_head.objectness_logits.bias.fill_(1.5)
    images, features = _inputs(n=2)
    proposals, losses = rpn(images, features)
    assert losses == {}
    assert [len(p) for p in proposals] == [10, 10]  # post_nms_topk test = 10 of 16 anchors
    assert torch.equal(proposals[0].objectness_logits, torch.full((10,), 1.5))
    # zero deltas: proposals are anchors clipped to the 32x32 image
    anchors = rpn.anchor_generator([features["p3"]])[0].tensor
    expected = Boxes(anchors.clone())
    expected.clip((32, 32))
    got = {tuple(b) for b in proposals[0].proposal_boxes.tensor.tolist()}
    assert got <= {tuple(b) for b in expected.tensor.tolist()}


def test_train_and_test_topk_switch_with_mode():
    rpn = _rpn()
    assert rpn.pre_nms_topk == {True: 100, False: 50}
    assert rpn.post_nms_topk == {True: 20, False: 10}


def test_errors():
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        _rpn(box_reg_loss_type="l2")
    with pytest.raises(ValueError, match="post_nms_topk"):
        _rpn(post_nms_topk=(10,))
    rpn = _rpn().train()
    images, features = _inputs()
    with EventStorage(0), pytest.raises(ValueError, match="gt_instances"):
        rpn(images, features, None)
    with pytest.raises(KeyError, match="p3"):
        rpn.eval()(images, {"p4": features["p3"]})
