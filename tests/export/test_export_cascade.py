"""Cascade Mask R-CNN exports: each stage's box head and predictor run on the previous stage's
boxes, the scores are averaged over the stages, and the program gives eager det's detections
and masks for two image sizes."""

from __future__ import annotations

import pytest
import torch

from det.export import TracingAdapter, export_torch, load_exported

from ._helpers import SMALL_MASK_IOU, assert_same_as_eager, build_small_model, eager_per_image, small_inputs


@pytest.fixture(scope="module")
def cascade(configs_dir):
    model = build_small_model(configs_dir / "Misc" / "cascade_mask_rcnn_R_50_FPN_1x.yaml")
    inputs = small_inputs()
    return model, inputs, eager_per_image(model, inputs)


def test_adapter_runs_every_stage_and_matches_eager(cascade, assert_matches_golden):
    model, inputs, eager = cascade
    heads = model.roi_heads
    assert type(heads).__name__ == "CascadeROIHeads" and heads.num_cascade_stages == 3
    adapter = TracingAdapter(model)
    assert adapter.architecture == "GeneralizedRCNN"
    assert adapter.outputs_schema == ("pred_boxes", "scores", "pred_classes", "pred_masks")

    calls = []
    hooks = [h.register_forward_hook(lambda m, i, o: calls.append(m)) for h in heads.box_head]
    try:
        with torch.no_grad():
            flat = adapter(*adapter.flatten_inputs(inputs[0]))
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == list(heads.box_head)
    assert len(eager[0]["instances"]) == 100  # TEST.DETECTIONS_PER_IMAGE: the scores are spread
    assert_same_as_eager(
        [adapter.unflatten_outputs(flat, inputs[0])],
        eager[:1],
        assert_matches_golden,
        mask_iou=SMALL_MASK_IOU,
    )


@pytest.mark.slow
def test_exported_program_matches_eager_at_two_sizes(cascade, tmp_path, assert_matches_golden):
    model, inputs, eager = cascade
    path = tmp_path / "cascade.pt2"
    export_torch(model, inputs[0]["image"], path)
    runner = load_exported(path)
    assert runner.metadata["architecture"] == "GeneralizedRCNN"
    with torch.no_grad():
        outputs = runner(inputs)
    assert_same_as_eager(outputs, eager, assert_matches_golden, mask_iou=SMALL_MASK_IOU)
