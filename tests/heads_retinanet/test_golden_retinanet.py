"""RetinaNet R50-FPN reproduces detectron2's golden outputs, from the .pth and the model-zoo .pkl.

The golden case is ../shared/golden/retinanet_R_50_FPN: detectron2's own model, weights and
outputs on two images. Boxes must agree to 0.05 px, scores to 2e-3, classes exactly (near-tie
swaps at the top-100 cut-off allowed by the shared matcher).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow  # a zoo-sized model on two images: end-to-end

GOLDEN_CASE = "retinanet_R_50_FPN"  # the `golden`, `pth_model`, `pth_outputs` fixtures (tests/conftest.py)


def _check_outputs(outputs, case, assert_matches_golden):
    golden = case.outputs
    assert len(outputs) == len(golden) == 2
    for ours, theirs in zip(outputs, golden):
        assert set(ours) == {"instances"}
        instances = ours["instances"]
        assert tuple(instances.image_size) == tuple(theirs["instances"]["image_size"])
        assert len(instances) == len(theirs["instances"]["scores"]) == 100
        pairs = assert_matches_golden(instances, theirs["instances"])
        assert len(pairs) >= 98


def test_retinanet_has_detectron2_structure(pth_model, golden):
    from det.heads.retinanet import RetinaNet, RetinaNetHead

    assert type(pth_model) is RetinaNet and type(pth_model.head) is RetinaNetHead
    assert pth_model.head_in_features == ["p3", "p4", "p5", "p6", "p7"]
    assert pth_model.num_classes == 80
    # 3 sizes x 3 aspect ratios per position; FPN width 16 in the golden profile
    assert pth_model.head.cls_score.weight.shape == (9 * 80, 16, 3, 3)
    assert pth_model.head.bbox_pred.weight.shape == (9 * 4, 16, 3, 3)
    assert [type(m).__name__ for m in pth_model.head.cls_subnet] == ["Conv2d", "ReLU"] * 4
    state = torch.load(golden.pth, weights_only=True)["model"]
    assert list(pth_model.state_dict()) == list(state)
    assert "head.cls_subnet.6.weight" in state and "head.bbox_subnet.0.bias" in state
    assert (pth_model.test_score_thresh, pth_model.test_topk_candidates, pth_model.test_nms_thresh) == (0.05, 1000, 0.5)
    assert pth_model.max_detections_per_image == 100


def test_retinanet_matches_golden_from_pth(pth_outputs, golden, assert_matches_golden):
    _check_outputs(pth_outputs, golden, assert_matches_golden)


def test_retinanet_top_scores_agree_to_float_noise(pth_outputs, golden):
    # Stronger than the matcher: the same ops in the same order give (nearly) the same bits.
    for ours, theirs in zip(pth_outputs, golden.outputs):
        ours, theirs = ours["instances"], theirs["instances"]
        torch.testing.assert_close(ours.scores[:20], theirs["scores"][:20], rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.pred_boxes.tensor[:20], theirs["pred_boxes"][:20], rtol=0, atol=1e-3)
        assert torch.equal(ours.pred_classes[:20], theirs["pred_classes"][:20])


def test_retinanet_matches_golden_from_pkl(golden, assert_matches_golden):
    _check_outputs(golden.predict("pkl"), golden, assert_matches_golden)
