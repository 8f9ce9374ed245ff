"""Shared pieces of det-pointrend's tests: PointRend's YAMLs, shrinking overrides and tiny inputs."""

from __future__ import annotations

from pathlib import Path

import torch

from det.structures import BitMasks, Boxes, Instances

POINTREND = Path(__file__).resolve().parents[2].parent / "shared/detectron2-projects/projects/PointRend/configs"
YAMLS = sorted(POINTREND.glob("*/*.yaml"))

# a small backbone and narrow heads: the YAML's head names, point counts and subdivision stay
SHRINK = [
    "MODEL.WEIGHTS", "",
    "MODEL.DEVICE", "cpu",
    "MODEL.RESNETS.DEPTH", 18,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
    "MODEL.RESNETS.NUM_GROUPS", 1,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 64,
    "MODEL.FPN.OUT_CHANNELS", 32,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", 64,
    "MODEL.RPN.POST_NMS_TOPK_TEST", 32,
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 32,
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
    "TEST.DETECTIONS_PER_IMAGE", 3,
    "MODEL.ROI_BOX_HEAD.FC_DIM", 64,
    "MODEL.ROI_MASK_HEAD.CONV_DIM", 32,
    "MODEL.ROI_MASK_HEAD.FC_DIM", 64,
    "MODEL.POINT_HEAD.FC_DIM", 32,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
]

H, W = 64, 96


def instance_input(num_classes: int) -> dict:
    torch.manual_seed(0)
    inst = Instances((H, W))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 8.0, 50.0, 40.0], [40.0, 20.0, 90.0, 60.0]]))
    inst.gt_classes = torch.tensor([1, num_classes - 1])
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, 10:38, 12:48] = True
    masks[1, 22:58, 42:88] = True
    inst.gt_masks = BitMasks(masks)
    return {"image": torch.randint(0, 256, (3, H, W)).float(), "instances": inst}


def semantic_input(num_classes: int) -> dict:
    torch.manual_seed(0)
    labels = torch.randint(0, num_classes, (H, W))
    labels[:4] = 255  # ignored
    return {"image": torch.randint(0, 256, (3, H, W)).float(), "sem_seg": labels}
