"""Parity with detectron2: faster_rcnn_R_50_C4 built from its config reproduces detectron2's outputs.

Exercises the whole core path (config -> build_model -> GeneralizedRCNN -> preprocess ->
backbone, RPN, Res5ROIHeads -> detector_postprocess) against ../shared/golden.
"""

import pytest
import torch

GOLDEN_CASE = "faster_rcnn_R_50_C4"  # the `golden`, `pth_model`, `pth_outputs` fixtures (tests/conftest.py)


@pytest.mark.slow
def test_faster_rcnn_c4_matches_detectron2_outputs(golden, pth_outputs, assert_matches_golden):
    outputs = pth_outputs
    expected = golden.outputs
    assert len(outputs) == len(expected) == 2
    for ours, theirs in zip(outputs, expected):
        inst = ours["instances"]
        assert inst.image_size == tuple(theirs["instances"]["image_size"])
        pairs = assert_matches_golden(inst, theirs["instances"], box_tol=0.05, score_tol=2e-3)
        assert len(pairs) >= len(theirs["instances"]["scores"]) - 2


@pytest.mark.slow
def test_model_zoo_pkl_gives_the_same_weights(golden, pth_model):
    model, other = pth_model, golden.model("pkl")
    ours, theirs = model.state_dict(), other.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        torch.testing.assert_close(theirs[k], ours[k], rtol=0, atol=0, msg=k)


def test_golden_model_structure_follows_detectron2_names(pth_model):
    model = pth_model
    names = dict(model.named_children())
    assert list(names) == ["backbone", "proposal_generator", "roi_heads"]
    assert type(model).__name__ == "GeneralizedRCNN" and model.input_format == "BGR"
    # anchors and pixel statistics come from the config, never from the checkpoint
    keys = set(model.state_dict())
    assert not any("cell_anchors" in k for k in keys) and "pixel_mean" not in keys
    assert [len(a) for a in model.proposal_generator.anchor_generator.cell_anchors] == [15]
