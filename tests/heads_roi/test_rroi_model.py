"""A whole rotated Faster R-CNN (RRPN + RROIHeads + ROIAlignRotated), configured from the model zoo's
Base-RCNN-FPN.yaml as detectron2's rotated configs are, builds, trains a step and predicts."""

from __future__ import annotations

import torch

from det.core import EventStorage, build_model, get_cfg
from det.core.modeling import RotatedAnchorGenerator
from det.heads.roi import RROIHeads
from det.heads.rpn import RRPN
from det.structures import Instances, RotatedBoxes

SMALL = [
    "MODEL.RESNETS.DEPTH",
    18,
    "MODEL.RESNETS.STEM_OUT_CHANNELS",
    16,
    "MODEL.RESNETS.RES2_OUT_CHANNELS",
    64,
    "MODEL.FPN.OUT_CHANNELS",
    16,
    "MODEL.ROI_BOX_HEAD.FC_DIM",
    32,
]


def rotated_cfg(configs_dir, pre_nms_topk: int = 50, post_nms_topk: int = 20):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "Base-RCNN-FPN.yaml"))
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.PROPOSAL_GENERATOR.NAME",
            "RRPN",
            "MODEL.ANCHOR_GENERATOR.NAME",
            "RotatedAnchorGenerator",
            "MODEL.ANCHOR_GENERATOR.ANGLES",
            [[-90, -60, -30, 0, 30, 60, 90]],
            "MODEL.RPN.BBOX_REG_WEIGHTS",
            (1.0, 1.0, 1.0, 1.0, 1.0),
            "MODEL.RPN.PRE_NMS_TOPK_TRAIN",
            pre_nms_topk,
            "MODEL.RPN.PRE_NMS_TOPK_TEST",
            pre_nms_topk,
            "MODEL.RPN.POST_NMS_TOPK_TRAIN",
            post_nms_topk,
            "MODEL.RPN.POST_NMS_TOPK_TEST",
            post_nms_topk,
            "MODEL.ROI_HEADS.NAME",
            "RROIHeads",
            "MODEL.ROI_HEADS.NUM_CLASSES",
            3,
            "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
            32,
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            0.0,
            "MODEL.ROI_BOX_HEAD.POOLER_TYPE",
            "ROIAlignRotated",
            "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS",
            (10.0, 10.0, 5.0, 5.0, 1.0),
            *SMALL,
        ]
    )
    return cfg


def rotated_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batch = []
    for _ in range(2):
        instances = Instances((64, 96))
        instances.gt_boxes = RotatedBoxes(
            torch.tensor([[30.0, 30.0, 24.0, 12.0, 30.0], [70.0, 40.0, 16.0, 16.0, -45.0]])
        )
        instances.gt_classes = torch.tensor([0, 2])
        batch.append({"image": torch.rand(3, 64, 96, generator=g) * 255, "instances": instances})
    return batch


def test_rotated_faster_rcnn_builds_trains_a_step_and_predicts(configs_dir):
    torch.manual_seed(0)
    model = build_model(rotated_cfg(configs_dir))
    assert isinstance(model.proposal_generator, RRPN)
    assert isinstance(model.proposal_generator.anchor_generator, RotatedAnchorGenerator)
    assert (
        model.proposal_generator.rpn_head.anchor_deltas.out_channels == 3 * 7 * 5
    )  # 3 ratios x 7 angles x 5
    assert isinstance(model.roi_heads, RROIHeads)
    assert type(model.roi_heads.box_pooler.level_poolers[0]).__name__ == "ROIAlignRotated"
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 3 * 5
    assert model.roi_heads.box_predictor.box2box_transform.weights == (10.0, 10.0, 5.0, 5.0, 1.0)

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with EventStorage(0) as storage:
        losses = model(rotated_batch())
        stats = {k: v[0] for k, v in storage.latest().items()}
    assert sorted(losses) == ["loss_box_reg", "loss_cls", "loss_rpn_cls", "loss_rpn_loc"]
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    # res2 and the stem are frozen (FREEZE_AT 2); gradients reach res3 through the rotated pooler
    res3_grad = model.backbone.bottom_up.res3[0].conv1.weight.grad
    assert res3_grad is not None and res3_grad.abs().sum() > 0
    optimizer.step()
    assert stats["roi_head/num_fg_samples"] >= 2  # at least the appended ground truth boxes
    assert stats["rpn/num_pos_anchors"] > 0

    model.eval()
    with torch.no_grad():
        outputs = model([{"image": rotated_batch()[0]["image"], "height": 128, "width": 192}])
    instances = outputs[0]["instances"]
    assert instances.image_size == (128, 192)
    assert isinstance(instances.pred_boxes, RotatedBoxes)
    assert len(instances) > 0 and instances.pred_boxes.tensor.shape == (len(instances), 5)
    assert instances.scores.shape == instances.pred_classes.shape == (len(instances),)
    assert set(instances.pred_classes.tolist()) <= {0, 1, 2}
