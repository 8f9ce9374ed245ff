"""TracingAdapter without exporting: the flat export-friendly path equals eager det, the schema
names detectron2's fields, and bad models or inputs get clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from det.export import (
    TracingAdapter,
    UnsupportedModelError,
    flatten_inputs,
    supported_architectures,
    unflatten_outputs,
)

from ._helpers import assert_same_as_eager, build_golden_model, eager_per_image


@pytest.fixture(scope="module")
def mask_case(golden_case):
    return golden_case("mask_rcnn_R_50_FPN")


@pytest.fixture(scope="module")
def mask_model(mask_case):
    return build_golden_model(mask_case)


def test_schema_of_each_golden_model(golden_case):
    expected = {
        "mask_rcnn_R_50_FPN": ("pred_boxes", "scores", "pred_classes", "pred_masks"),
        "keypoint_rcnn_R_50_FPN": ("pred_boxes", "scores", "pred_classes", "pred_keypoint_heatmaps"),
        "faster_rcnn_R_50_C4": ("pred_boxes", "scores", "pred_classes"),
        "retinanet_R_50_FPN": ("pred_boxes", "scores", "pred_classes"),
    }
    for name, schema in expected.items():
        adapter = TracingAdapter(build_golden_model(golden_case(name)))
        assert adapter.outputs_schema == schema
        assert adapter.metadata()["outputs_schema"] == list(schema)
    assert adapter.architecture == "RetinaNet"


def test_flat_outputs_shapes_and_round_trip_equal_eager(mask_model, mask_case, assert_matches_golden):
    adapter = TracingAdapter(mask_model)
    inputs = mask_case.inputs
    with torch.no_grad():
        flat = adapter(*adapter.flatten_inputs(inputs[1]))
    boxes, scores, classes, masks = flat
    n = boxes.shape[0]
    assert boxes.shape == (n, 4) and scores.shape == (n,) and classes.dtype == torch.int64
    assert masks.shape == (n, 1, 28, 28) and masks.min() >= 0 and masks.max() <= 1
    assert n == 100  # TEST.DETECTIONS_PER_IMAGE
    # boxes are in the (640, 480) input image; unflatten rescales to height/width = 427 x 320
    out = adapter.unflatten_outputs(flat, inputs[1])["instances"]
    assert out.image_size == (427, 320)
    assert out.pred_masks.shape == (100, 427, 320) and out.pred_masks.dtype == torch.bool
    assert_same_as_eager(
        [adapter.unflatten_outputs(flat, inputs[1])],
        eager_per_image(mask_model, inputs[1:]),
        assert_matches_golden,
    )


def test_training_mode_is_refused(mask_model, mask_case):
    adapter = TracingAdapter(mask_model)
    mask_model.train()
    try:
        with pytest.raises(RuntimeError, match="eval"):
            adapter(mask_case.inputs[0]["image"].float())
    finally:
        mask_model.eval()


def test_unsupported_models_name_the_part(mask_model):
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        TracingAdapter("model")
    with pytest.raises(UnsupportedModelError, match="META_ARCHITECTURE Linear"):
        TracingAdapter(nn.Linear(2, 2))

    class ProposalNetwork(nn.Module):
        def __init__(self, proposal_generator=None):
            super().__init__()
            self.proposal_generator = proposal_generator

    with pytest.raises(UnsupportedModelError, match="ProposalNetwork without a proposal generator"):
        TracingAdapter(ProposalNetwork())

    def refused(part: str, name: str, message: str) -> None:
        original = getattr(mask_model, part)
        try:
            setattr(mask_model, part, type(name, (nn.Module,), {})())
            with pytest.raises(UnsupportedModelError, match=message):
                TracingAdapter(mask_model)
        finally:
            setattr(mask_model, part, original)

    refused("roi_heads", "MyROIHeads", "ROI_HEADS MyROIHeads: supported are .*CascadeROIHeads")
    refused("proposal_generator", "PrecomputedProposals", "PROPOSAL_GENERATOR PrecomputedProposals: only RPN")
    # rotated boxes have no torchvision op to export, whatever the meta-architecture
    refused("roi_heads", "RROIHeads", "ROI_HEADS RROIHeads: rotated-box models")
    refused("proposal_generator", "RRPN", "PROPOSAL_GENERATOR RRPN: rotated-box models")
    with pytest.raises(UnsupportedModelError, match="PROPOSAL_GENERATOR RRPN: rotated-box models"):
        TracingAdapter(ProposalNetwork(type("RRPN", (nn.Module,), {})()))

    rpn = mask_model.proposal_generator
    try:
        mask_model.proposal_generator = None
        with pytest.raises(UnsupportedModelError, match="without a proposal generator"):
            TracingAdapter(mask_model)
    finally:
        mask_model.proposal_generator = rpn


def test_supported_architectures():
    assert supported_architectures() == (
        "GeneralizedRCNN",
        "PanopticFPN",
        "ProposalNetwork",
        "RetinaNet",
        "SemanticSegmentor",
    )


def test_flatten_inputs_errors():
    image = torch.zeros(3, 8, 8)
    assert flatten_inputs({"image": image})[0] is image
    with pytest.raises(TypeError, match="one input dict"):
        flatten_inputs([{"image": image}])
    with pytest.raises(ValueError, match="no 'image'"):
        flatten_inputs({"height": 8})
    with pytest.raises(ValueError, match=r"\(C, H, W\) tensor, got \(8, 8\)"):
        flatten_inputs({"image": torch.zeros(8, 8)})
    with pytest.raises(ValueError, match="3 outputs for the schema"):
        unflatten_outputs((torch.zeros(0, 4), torch.zeros(0), torch.zeros(0)), {"image": image}, ("sem_seg",))


def test_unflatten_empty_detections():
    out = unflatten_outputs(
        (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64)),
        {"image": torch.zeros(3, 200, 300), "height": 100, "width": 150},
        ("pred_boxes", "scores", "pred_classes"),
    )["instances"]
    assert len(out) == 0 and out.image_size == (100, 150)
