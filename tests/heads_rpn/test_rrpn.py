"""RRPN: the rotated RPN labels rotated anchors, trains and proposes RotatedBoxes."""

from __future__ import annotations

import pytest
import torch

from det.core import EventStorage, get_cfg
from det.core.layers import ShapeSpec
from det.core.modeling import Box2BoxTransformRotated, DefaultAnchorGenerator, Matcher, RotatedAnchorGenerator
from det.heads.rpn import RRPN, StandardRPNHead
from det.structures import ImageList, Instances, RotatedBoxes


def _rrpn(**overrides):
    kwargs = dict(
        in_features=["p3"],
        head=StandardRPNHead(in_channels=4, num_anchors=3, box_dim=5),
        anchor_generator=RotatedAnchorGenerator(sizes=[[16]], aspect_ratios=[[1.0]], strides=[8],
                                                angles=[[-60, 0, 60]], offset=0.5),
        anchor_matcher=Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True),
        box2box_transform=Box2BoxTransformRotated(weights=(1.0, 1.0, 1.0, 1.0, 1.0)),
        batch_size_per_image=64,
        positive_fraction=0.5,
        pre_nms_topk=(100, 50),
        post_nms_topk=(20, 10),
    )
    kwargs.update(overrides)
    return RRPN(**kwargs)


def _gt():
    gt = Instances((32, 32))
    gt.gt_boxes = RotatedBoxes(torch.tensor([[12.0, 12.0, 16.0, 16.0, 0.0], [20.0, 20.0, 16.0, 8.0, 60.0]]))
    return gt


def test_label_and_sample_uses_rotated_iou():
    rrpn = _rrpn()
    anchors = [RotatedBoxes(torch.tensor([[12.0, 12.0, 16.0, 16.0, 0.0],
                                          [12.0, 12.0, 16.0, 16.0, 45.0],
                                          [100.0, 100.0, 16.0, 16.0, 0.0]]))]
    gt = Instances((32, 32))
    gt.gt_boxes = RotatedBoxes(torch.tensor([[12.0, 12.0, 16.0, 16.0, 0.0]]))
    labels, matched = rrpn.label_and_sample_anchors(anchors, [gt])
    # identical -> 1; rotated by 45 degrees: IoU ~0.71 -> also positive; far away -> 0
    assert labels[0].tolist() == [1, 1, 0]
    assert matched[0].shape == (3, 5)


def test_trains_and_proposes_rotated_boxes():
    rrpn = _rrpn().train()
    images = ImageList(torch.zeros(1, 3, 32, 32), [(32, 32)])
    features = {"p3": torch.rand(1, 4, 4, 4)}
    with EventStorage(0) as storage:
        proposals, losses = rrpn(images, features, [_gt()])
        stats = storage.latest()
    assert sorted(losses) == ["loss_rpn_cls", "loss_rpn_loc"]
    assert all(torch.isfinite(v) for v in losses.values())
    assert stats["rpn/num_pos_anchors"][0] >= 2
    assert isinstance(proposals[0].proposal_boxes, RotatedBoxes)
    sum(losses.values()).backward()

    rrpn.eval()
    with torch.no_grad():
        proposals, losses = rrpn(images, features)
    assert losses == {}
    assert isinstance(proposals[0].proposal_boxes, RotatedBoxes)
    assert proposals[0].proposal_boxes.tensor.shape[1] == 5
    assert 0 < len(proposals[0]) <= 10
    logits = proposals[0].objectness_logits
    assert torch.equal(logits, logits.sort(descending=True).values)


def test_rrpn_refuses_legacy_boundary_threshold_and_axis_aligned_anchors():
    with pytest.raises(NotImplementedError, match="BOUNDARY_THRESH"):
        _rrpn(anchor_boundary_thresh=0)
    with pytest.raises(ValueError, match="rotated anchors"):
        _rrpn(anchor_generator=DefaultAnchorGenerator(sizes=[[16]], aspect_ratios=[[1.0]], strides=[8]),
              head=StandardRPNHead(in_channels=4, num_anchors=1))


def test_rrpn_from_config_uses_rotated_transform():
    cfg = get_cfg()
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RRPN"
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16]]
    cfg.MODEL.RPN.IN_FEATURES = ["p3"]
    cfg.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)
    rrpn = RRPN(cfg, {"p3": ShapeSpec(channels=4, stride=8)})
    assert isinstance(rrpn.box2box_transform, Box2BoxTransformRotated)
    # 3 aspect ratios x 3 angles per position, 5 deltas each
    assert rrpn.rpn_head.anchor_deltas.out_channels == 9 * 5
