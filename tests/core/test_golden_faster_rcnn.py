"""Parity with detectron2: faster_rcnn_R_50_C4 built from its config reproduces detectron2's outputs.

Exercises the whole core path (config -> build_model -> GeneralizedRCNN -> preprocess ->
backbone, RPN, Res5ROIHeads -> detector_postprocess) against ../shared/golden.
"""

import pytest
import torch

CASE = "faster_rcnn_R_50_C4"


@pytest.fixture(scope="module")
def golden(golden_case):
    return golden_case(CASE)


@pytest.fixture(scope="module")
def model(golden):
    from det.checkpoint import DetectionCheckpointer
    from det.core import build_model, get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(golden.config_file))
    torch.manual_seed(1)  # a different init than detectron2's: every weight must come from the file
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(golden.pth))
    return model


@pytest.mark.slow
def test_faster_rcnn_c4_matches_detectron2_outputs(golden, model, assert_matches_golden):
    with torch.no_grad():
        outputs = model(golden.inputs)
    expected = golden.outputs
    assert len(outputs) == len(expected) == 2
    for ours, theirs in zip(outputs, expected):
        inst = ours["instances"]
        assert inst.image_size == tuple(theirs["instances"]["image_size"])
        pairs = assert_matches_golden(inst, theirs["instances"], box_tol=0.05, score_tol=2e-3)
        assert len(pairs) >= len(theirs["instances"]["scores"]) - 2


@pytest.mark.slow
def test_model_zoo_pkl_gives_the_same_weights(golden, model):
    from det.checkpoint import DetectionCheckpointer
    from det.core import build_model, get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(golden.config_file))
    other = build_model(cfg).eval()
    DetectionCheckpointer(other).load(str(golden.pkl))
    ours, theirs = model.state_dict(), other.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        torch.testing.assert_close(theirs[k], ours[k], rtol=0, atol=0, msg=k)


def test_golden_model_structure_follows_detectron2_names(model):
    names = dict(model.named_children())
    assert list(names) == ["backbone", "proposal_generator", "roi_heads"]
    assert type(model).__name__ == "GeneralizedRCNN" and model.input_format == "BGR"
    # anchors and pixel statistics come from the config, never from the checkpoint
    keys = set(model.state_dict())
    assert not any("cell_anchors" in k for k in keys) and "pixel_mean" not in keys
    assert [len(a) for a in model.proposal_generator.anchor_generator.cell_anchors] == [15]
