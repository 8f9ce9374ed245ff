"""One training step of detectron2's golden Mask/Keypoint R-CNN gives detectron2's losses.

``train.pt`` was made with ``torch.manual_seed(0)`` right before the forward pass; the anchor and
ROI sampling draw from torch's RNG (``torch.randperm``), so equal losses prove that RPN and ROI
heads make the same random calls in the same order. When the mask/keypoint head is not
installed, the model is built without it and the box/RPN part must still match exactly (those
heads draw no random numbers).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from det.core import EventStorage, build_model
from det.core.registry import list_components
from det.structures import Boxes, Instances, Keypoints, PolygonMasks

SUB_HEAD = {"mask_rcnn_R_50_FPN": ("MASK_ON", "ROI_MASK_HEAD", ("loss_mask", "mask_rcnn/")),
            "keypoint_rcnn_R_50_FPN": ("KEYPOINT_ON", "ROI_KEYPOINT_HEAD", ("loss_keypoint", "keypoint_head/"))}


def _installed(kind: str, name: str) -> bool:
    return any(c.name == name for c in list_components(kind))


def _train_step(case):
    cfg = case.cfg()
    flag, kind, _ = SUB_HEAD[case.name]
    head_name = cfg.MODEL[kind].NAME
    with_sub_head = _installed(kind, head_name)
    if not with_sub_head:
        cfg.MODEL[flag] = False
    model = build_model(cfg)
    model.load_state_dict(torch.load(case.pth, weights_only=True)["model"], strict=with_sub_head)

    golden = case.load("train.pt")
    raw = golden["inputs"][0]
    gt = raw["instances"]
    instances = Instances(tuple(gt["image_size"]))
    instances.gt_boxes = Boxes(gt["gt_boxes"])
    instances.gt_classes = gt["gt_classes"]
    if "gt_masks" in gt:
        instances.gt_masks = PolygonMasks([[np.asarray(p) for p in obj] for obj in gt["gt_masks"]])
    if "gt_keypoints" in gt:
        instances.gt_keypoints = Keypoints(gt["gt_keypoints"])
    inputs = [{"image": raw["image"], "height": raw["height"], "width": raw["width"], "instances": instances}]

    model.train()
    with EventStorage(0) as storage:
        torch.manual_seed(0)
        losses = model(inputs)
        scalars = {k: v[0] for k, v in storage.latest().items()}
    return golden, losses, scalars, with_sub_head


@pytest.mark.slow
@pytest.mark.parametrize("case_name", ["mask_rcnn_R_50_FPN", "keypoint_rcnn_R_50_FPN"])
def test_training_step_matches_detectron2(golden_case, case_name):
    case = golden_case(case_name)
    golden, losses, scalars, with_sub_head = _train_step(case)
    _, _, sub_names = SUB_HEAD[case_name]

    expected_losses = dict(golden["loss_values"])
    expected_scalars = dict(golden["storage_scalars"])
    if not with_sub_head:
        expected_losses = {k: v for k, v in expected_losses.items() if not k.startswith(sub_names)}
        expected_scalars = {k: v for k, v in expected_scalars.items() if not k.startswith(sub_names)}

    assert sorted(losses) == sorted(expected_losses)
    for name, value in expected_losses.items():
        ours = losses[name].item()
        assert math.isfinite(ours)
        assert ours == pytest.approx(value, rel=1e-5, abs=1e-7), name

    ours_names = {k for k in scalars if not k.startswith(sub_names) or with_sub_head}
    assert ours_names >= set(expected_scalars)
    for name, value in expected_scalars.items():
        assert scalars[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_golden_statistic_names_are_the_documented_ones(golden_case):
    # The names det's RPN / ROI heads put into the EventStorage are detectron2's.
    golden = golden_case("mask_rcnn_R_50_FPN").load("train.pt")
    ours = {"fast_rcnn/cls_accuracy", "fast_rcnn/false_negative", "fast_rcnn/fg_cls_accuracy",
            "roi_head/num_bg_samples", "roi_head/num_fg_samples", "rpn/num_neg_anchors", "rpn/num_pos_anchors"}
    assert ours <= set(golden["storage_scalar_names"])
    assert {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"} <= set(golden["loss_values"])
