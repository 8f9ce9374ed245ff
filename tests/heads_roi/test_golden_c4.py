"""Faster R-CNN R50-C4 (Res5ROIHeads) reproduces detectron2's golden outputs.

The golden case is ../shared/golden/faster_rcnn_R_50_C4: detectron2's own model, weights and
outputs on two images. Boxes must agree to 0.05 px, scores to 2e-3, classes exactly (near-tie
swaps at the top-100 cut-off allowed by the shared matcher).
"""

from __future__ import annotations

import pytest
import torch

from det.core import build_model, get_cfg

pytestmark = pytest.mark.slow  # whole zoo-sized models: end-to-end

CASE = "faster_rcnn_R_50_C4"


@pytest.fixture(scope="module")
def c4_case(golden_case):
    return golden_case(CASE)


def _build(case):
    cfg = get_cfg()
    cfg.merge_from_file(str(case.config_file))
    torch.manual_seed(1)  # weights come from the checkpoint: the seed must not matter
    return build_model(cfg).eval()


def _run(model, case):
    with torch.no_grad():
        return model(case.inputs)


@pytest.fixture(scope="module")
def pth_model(c4_case):
    model = _build(c4_case)
    incompatible = model.load_state_dict(torch.load(c4_case.pth, weights_only=True)["model"], strict=False)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    return model


@pytest.fixture(scope="module")
def pth_outputs(pth_model, c4_case):
    return _run(pth_model, c4_case)


def _check_outputs(outputs, case, assert_matches_golden):
    golden = case.outputs
    assert len(outputs) == len(golden) == 2
    for ours, theirs in zip(outputs, golden):
        instances = ours["instances"]
        assert tuple(instances.image_size) == tuple(theirs["instances"]["image_size"])
        assert len(instances) == 100
        pairs = assert_matches_golden(instances, theirs["instances"])
        assert len(pairs) >= 98


def test_c4_model_has_detectron2_structure(pth_model, c4_case):
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
    assert set(pth_model.state_dict()) == set(torch.load(c4_case.pth, weights_only=True)["model"])


def test_c4_matches_golden_from_pth(pth_outputs, c4_case, assert_matches_golden):
    _check_outputs(pth_outputs, c4_case, assert_matches_golden)


def test_c4_golden_top_scores_agree_to_float_noise(pth_outputs, c4_case):
    # Stronger than the matcher's tolerance: the same ops in the same order give nearly the same bits.
    for ours, theirs in zip(pth_outputs, c4_case.outputs):
        ours, theirs = ours["instances"], theirs["instances"]
        torch.testing.assert_close(ours.scores[:10], theirs["scores"][:10], rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.pred_boxes.tensor[:10], theirs["pred_boxes"][:10], rtol=0, atol=1e-3)
        assert torch.equal(ours.pred_classes[:10], theirs["pred_classes"][:10])


def test_c4_matches_golden_from_pkl(c4_case, assert_matches_golden):
    from det import checkpoint

    model = _build(c4_case)
    checkpoint.DetectionCheckpointer(model).load(str(c4_case.pkl))
    _check_outputs(_run(model, c4_case), c4_case, assert_matches_golden)
