"""Model-zoo configs that exercise options of the RPN / ROI heads build and train a step
(widths shrunk as in the golden README; mask heads off: they are tested with det-heads-mask)."""

from __future__ import annotations

import pytest
import torch

from det.core import EventStorage, build_model, get_cfg
from det.structures import Boxes, Instances

pytestmark = pytest.mark.slow  # whole models: end-to-end

SHRINK = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16,
    "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "MODEL.ROI_BOX_HEAD.CONV_DIM", 32,
    "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.MASK_ON", False,
]


def _train_step(model):
    gt = Instances((96, 128))
    gt.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 50.0]]))
    gt.gt_classes = torch.tensor([3, 0])
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    model.train()
    with EventStorage(0):
        losses = model([{"image": image, "instances": gt}])
    sum(losses.values()).backward()
    return losses


@pytest.mark.parametrize(
    "config, check",
    [
        ("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_giou.yaml",
         lambda m: m.proposal_generator.box_reg_loss_type == m.roi_heads.box_predictor.box_reg_loss_type == "giou"
         and m.proposal_generator.loss_weight == {"loss_rpn_cls": 1.0, "loss_rpn_loc": 2.0}
         and m.roi_heads.box_predictor.loss_weight == {"loss_box_reg": 10.0}),
        ("Misc/mask_rcnn_R_50_FPN_1x_cls_agnostic.yaml",
         lambda m: m.roi_heads.box_predictor.bbox_pred.out_features == 4),
        ("COCO-Detection/faster_rcnn_R_50_DC5_1x.yaml",
         lambda m: m.roi_heads.in_features == ["res5"] and len(m.roi_heads.box_head.conv_norm_relus) == 0),
        ("quick_schedules/mask_rcnn_R_50_FPN_pred_boxes_training_acc_test.yaml",
         lambda m: m.roi_heads.train_on_pred_boxes),
    ],
)
def test_zoo_config_trains(configs_dir, config, check):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / config))
    cfg.merge_from_list(SHRINK)
    torch.manual_seed(0)
    model = build_model(cfg)
    assert check(model)
    losses = _train_step(model)
    assert {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"} == set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
