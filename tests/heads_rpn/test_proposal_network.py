"""The model-zoo RPN-only config (COCO-Detection/rpn_R_50_FPN_1x.yaml) builds, trains a step and
proposes; channel widths are shrunk as in the golden README so this runs in seconds."""

from __future__ import annotations

import pytest
import torch

from det.core import EventStorage, build_model, get_cfg
from det.structures import Boxes, Instances

pytestmark = pytest.mark.slow  # whole zoo-sized models: end-to-end

SHRINK = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16,
    "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "",
]


def _inputs():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    gt = Instances((96, 128))
    gt.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 50.0]]))
    gt.gt_classes = torch.tensor([1, 2])
    return [{"image": image, "instances": gt, "height": 48, "width": 64}]


@pytest.fixture(scope="module")
def rpn_model(configs_dir):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "COCO-Detection" / "rpn_R_50_FPN_1x.yaml"))
    cfg.merge_from_list(SHRINK)
    torch.manual_seed(0)
    return build_model(cfg), cfg


def test_builds_detectron2_structure(rpn_model):
    model, _cfg = rpn_model
    assert type(model).__name__ == "ProposalNetwork"
    rpn = model.proposal_generator
    assert type(rpn).__name__ == "RPN"
    assert rpn.in_features == ["p2", "p3", "p4", "p5", "p6"]
    assert rpn.post_nms_topk == {True: 1000, False: 2000}
    assert rpn.pre_nms_topk == {True: 2000, False: 1000}
    assert rpn.rpn_head.objectness_logits.weight.shape == (3, 16, 1, 1)
    names = {k for k in model.state_dict() if k.startswith("proposal_generator.")}
    assert names == {f"proposal_generator.rpn_head.{m}.{p}" for m in ("conv", "objectness_logits", "anchor_deltas")
                     for p in ("weight", "bias")}


def test_trains_one_step(rpn_model):
    model, _ = rpn_model
    model.train()
    with EventStorage(0) as storage:
        losses = model(_inputs())
        stats = storage.latest()
    assert sorted(losses) == ["loss_rpn_cls", "loss_rpn_loc"]
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_rpn_cls"].item() > 0 and losses["loss_rpn_loc"].item() > 0
    assert {"rpn/num_pos_anchors", "rpn/num_neg_anchors"} <= set(stats)
    assert stats["rpn/num_pos_anchors"][0] + stats["rpn/num_neg_anchors"][0] == 256
    sum(losses.values()).backward()
    assert model.proposal_generator.rpn_head.conv.weight.grad is not None


def test_inference_returns_rescaled_proposals(rpn_model):
    model, _ = rpn_model
    model.eval()
    with torch.no_grad():
        (out,) = model(_inputs())
    proposals = out["proposals"]
    assert proposals.image_size == (48, 64)
    assert 0 < len(proposals) <= 2000
    boxes = proposals.proposal_boxes.tensor
    assert boxes[:, 2].max() <= 64 and boxes[:, 3].max() <= 48 and boxes.min() >= 0
    logits = proposals.objectness_logits
    # sorted per level (NMS is per level); the best overall comes first
    assert logits[0] == logits.max()
