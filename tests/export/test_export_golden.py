"""The exported models give eager det's outputs on detectron2's golden inputs.

For each golden case (Faster R-CNN C4, Mask R-CNN, Keypoint R-CNN, RetinaNet) the model is
exported once with ``torch.export`` (dynamic height and width), saved, reloaded, and run on both
golden images (480x640 and 640x480: the same program serves both sizes); the ONNX model made from
the same program runs under onnxruntime on CPU. Each must equal eager det run on that image with
the tolerances of ``assert_matches_golden`` (boxes 0.05 px, scores 2e-3, classes exact, masks
IoU 0.99, keypoints 0.25 px), every instance paired.
"""

from __future__ import annotations

import pytest
import torch

from det.export import TracingAdapter, export_onnx, export_torch, load_exported

from ._helpers import assert_same_as_eager, build_golden_model, eager_per_image

CASES = ("faster_rcnn_R_50_C4", "mask_rcnn_R_50_FPN", "keypoint_rcnn_R_50_FPN", "retinanet_R_50_FPN")

pytestmark = pytest.mark.slow


def _inputs(case) -> list[dict]:
    # pasting 100 masks into a 480x640 image costs seconds on CPU: Mask R-CNN compares on the
    # second image only (640x480 resized to 427x320, so rescaling and pasting are covered)
    return case.inputs[1:] if case.name == "mask_rcnn_R_50_FPN" else case.inputs


@pytest.fixture(scope="module")
def exported(golden_case, tmp_path_factory):
    """Per case, built once: (case, model, adapter, program, eager outputs, .pt2 path)."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            case = golden_case(name)
            model = build_golden_model(case)
            adapter = TracingAdapter(model)
            path = tmp_path_factory.mktemp(name) / "model.pt2"
            program = export_torch(adapter, case.inputs[0]["image"], path)
            cache[name] = (case, model, adapter, program, eager_per_image(model, _inputs(case)), path)
        return cache[name]

    return get


@pytest.mark.parametrize("name", CASES)
def test_torch_export_matches_eager(name, exported, assert_matches_golden):
    case, _, _, _program, eager, path = exported(name)
    # the image size is symbolic: one program for both orientations
    runner = load_exported(path)
    assert runner.metadata["architecture"] == ("RetinaNet" if "retinanet" in name else "GeneralizedRCNN")
    with torch.no_grad():
        outputs = runner(_inputs(case))
    assert_same_as_eager(outputs, eager, assert_matches_golden)
    if name == "keypoint_rcnn_R_50_FPN":
        for ours, theirs in zip(outputs, eager):
            assert ours["instances"].pred_keypoints.shape == theirs["instances"].pred_keypoints.shape


# ONNX for the two families (two-stage with RoiAlign + masks, one-stage): each costs ~1 min in CI
@pytest.mark.parametrize("name", ("mask_rcnn_R_50_FPN", "retinanet_R_50_FPN"))
def test_onnx_under_onnxruntime_matches_eager(name, exported, assert_matches_golden, tmp_path):
    pytest.importorskip("onnxruntime")
    case, _, adapter, program, eager, _ = exported(name)
    path = tmp_path / "model.onnx"
    export_onnx(adapter, case.inputs[0]["image"], path, program=program)
    runner = load_exported(path)
    assert runner.outputs_schema == adapter.outputs_schema
    outputs = runner(_inputs(case))
    assert_same_as_eager(outputs, eager, assert_matches_golden)


def test_exported_program_rejects_sizes_outside_its_range(exported):
    _case, _, _, _, _, path = exported("faster_rcnn_R_50_C4")
    runner = load_exported(path)
    assert runner.metadata["min_image_size"] == 17  # res4 stride 16, plus one
    with pytest.raises(ValueError, match=r"heights and widths in \[17, 4096\]"):
        runner([{"image": torch.zeros(3, 8, 64)}])


@pytest.mark.parametrize("name", ("faster_rcnn_R_50_C4", "retinanet_R_50_FPN"))
def test_one_program_serves_other_image_sizes(name, exported, assert_matches_golden):
    case, model, _, _, _, path = exported(name)
    runner = load_exported(path)
    # a crop of the golden image at a size the export never saw, rescaled to another output size
    image = case.inputs[0]["image"][:, 37:337, 11:463].contiguous()  # (3, 300, 452)
    inputs = [{"image": image, "height": 600, "width": 904}]
    assert_same_as_eager(runner(inputs), eager_per_image(model, inputs), assert_matches_golden)
