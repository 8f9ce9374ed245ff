"""StandardROIHeads on FPN reproduces detectron2's golden detections (boxes, scores, classes of
the Mask and Keypoint R-CNN R50-FPN cases). Only the box branch is checked here, so the model is
built without its mask / keypoint head (those heads do not change the boxes; their own tests
check their outputs)."""

from __future__ import annotations

import pytest
import torch

from det.core import build_model

SUB_HEADS = {"mask_rcnn_R_50_FPN": ("MASK_ON", "pred_masks"),
             "keypoint_rcnn_R_50_FPN": ("KEYPOINT_ON", "pred_keypoints")}


@pytest.mark.slow
@pytest.mark.parametrize("case_name", sorted(SUB_HEADS))
def test_fpn_detections_match_golden(golden_case, assert_matches_golden, case_name):
    case = golden_case(case_name)
    flag, field = SUB_HEADS[case_name]
    cfg = case.cfg()
    cfg.MODEL[flag] = False
    model = build_model(cfg).eval()
    assert type(model.roi_heads).__name__ == "StandardROIHeads"
    assert model.roi_heads.in_features == ["p2", "p3", "p4", "p5"]
    incompatible = model.load_state_dict(torch.load(case.pth, weights_only=True)["model"], strict=False)
    assert not incompatible.missing_keys
    assert {k.split(".")[1] for k in incompatible.unexpected_keys} <= {"mask_head", "keypoint_head"}
    with torch.no_grad():
        outputs = model(case.inputs)
    for ours, theirs in zip(outputs, case.outputs):
        golden = {k: v for k, v in theirs["instances"].items() if k != field}
        assert not ours["instances"].has(field)
        pairs = assert_matches_golden(ours["instances"], golden)
        assert len(pairs) >= 98
