"""ProposalNetwork (RPN only) exports: the program gives eager det's proposals (boxes and
objectness logits) rescaled to each input's height/width, for two image sizes."""

from __future__ import annotations

import pytest
import torch

from det.export import TracingAdapter, export_torch, load_exported

from ._helpers import assert_proposals_same_as_eager, build_small_model, eager_per_image, small_inputs


@pytest.fixture(scope="module")
def rpn_only(configs_dir):
    model = build_small_model(configs_dir / "COCO-Detection" / "rpn_R_50_FPN_1x.yaml")
    inputs = small_inputs()
    return model, inputs, eager_per_image(model, inputs)


def test_flat_proposals_are_at_the_input_size_and_match_eager(rpn_only, assert_matches_golden):
    model, inputs, eager = rpn_only
    adapter = TracingAdapter(model)
    assert adapter.architecture == "ProposalNetwork"
    assert adapter.outputs_schema == ("proposal_boxes", "objectness_logits")
    with torch.no_grad():
        boxes, logits = adapter(*adapter.flatten_inputs(inputs[0]))
    assert boxes.shape == (logits.shape[0], 4) and logits.shape[0] > 1000  # more than one level's top-k
    assert bool((logits[:-1] >= logits[1:]).all())  # by decreasing logit, as eager
    # within the (160, 224) image; unflatten rescales them to height/width = (120, 168)
    assert float(boxes[:, 2].max()) <= 224 and float(boxes[:, 3].max()) <= 160
    outputs = adapter.unflatten_outputs((boxes, logits), inputs[0])
    assert outputs["proposals"].image_size == (120, 168)
    assert_proposals_same_as_eager([outputs], eager[:1], assert_matches_golden)


@pytest.mark.slow
def test_exported_program_matches_eager_at_two_sizes(rpn_only, tmp_path, assert_matches_golden):
    model, inputs, eager = rpn_only
    path = tmp_path / "rpn.pt2"
    export_torch(model, inputs[0]["image"], path)
    runner = load_exported(path)
    assert runner.metadata["architecture"] == "ProposalNetwork"
    with torch.no_grad():
        outputs = runner(inputs)
    assert_proposals_same_as_eager(outputs, eager, assert_matches_golden)
