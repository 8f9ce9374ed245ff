"""Faster R-CNN R50-C4 (Res5ROIHeads) reproduces detectron2's golden outputs.

The golden case is ../shared/golden/faster_rcnn_R_50_C4: detectron2's own model, weights and
outputs on two images. Boxes must agree to 0.05 px, scores to 2e-3, classes exactly (near-tie
swaps at the top-100 cut-off allowed by the shared matcher).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow  # whole zoo-sized models: end-to-end

GOLDEN_CASE = "faster_rcnn_R_50_C4"  # the `golden`, `pth_model`, `pth_outputs` fixtures (tests/conftest.py)


def _check_outputs(outputs, case, assert_matches_golden):
    golden = case.outputs
    assert len(outputs) == len(golden) == 2
    for ours, theirs in zip(outputs, golden):
        instances = ours["instances"]
        assert tuple(instances.image_size) == tuple(theirs["instances"]["image_size"])
        assert len(instances) == 100
        pairs = assert_matches_golden(instances, theirs["instances"])
        assert len(pairs) >= 98


def test_c4_model_has_detectron2_structure(pth_model, golden):
    heads = pth_model.roi_heads
    assert type(heads).__name__ == "Res5ROIHeads"
    assert heads.in_features == ["res4"]
    assert [type(b).__name__ for b in heads.res5] == ["BottleneckBlock"] * 3
    assert heads.box_predictor.cls_score.out_features == 81
    assert heads.box_predictor.bbox_pred.out_features == 320
    # res5 is 8x res2 (16 channels here) and reads res4 (64 channels)
    assert heads.res5[0].conv1.weight.shape[1] == 64
    assert heads.box_predictor.cls_score.in_features == 128
    assert type(pth_model.proposal_generator).__name__ == "RPN"
    assert pth_model.proposal_generator.in_features == ["res4"]
    assert set(pth_model.state_dict()) == set(torch.load(golden.pth, weights_only=True)["model"])


def test_c4_matches_golden_from_pth(pth_outputs, golden, assert_matches_golden):
    _check_outputs(pth_outputs, golden, assert_matches_golden)


def test_c4_golden_top_scores_agree_to_float_noise(pth_outputs, golden):
    # Stronger than the matcher's tolerance: the same ops in the same order give nearly the same bits.
    for ours, theirs in zip(pth_outputs, golden.outputs):
        ours, theirs = ours["instances"], theirs["instances"]
        torch.testing.assert_close(ours.scores[:10], theirs["scores"][:10], rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.pred_boxes.tensor[:10], theirs["pred_boxes"][:10], rtol=0, atol=1e-3)
        assert torch.equal(ours.pred_classes[:10], theirs["pred_classes"][:10])


def test_c4_matches_golden_from_pkl(golden, assert_matches_golden):
    _check_outputs(golden.predict("pkl"), golden, assert_matches_golden)
