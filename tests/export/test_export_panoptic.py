"""PanopticFPN exports: the program holds the instance branch (RPN, ROI heads, mask head) and the
semantic branch on one backbone; unflattening rescales both and merges them into the panoptic
segmentation as eager PanopticFPN does, with the model's thresholds stored in the metadata."""

from __future__ import annotations

import pytest
import torch

from det.export import TracingAdapter, export_torch, load_exported

from ._helpers import SMALL_MASK_IOU, assert_same_as_eager, build_small_model, eager_per_image, small_inputs


@pytest.fixture(scope="module")
def panoptic(configs_dir):
    model = build_small_model(configs_dir / "COCO-PanopticSegmentation" / "panoptic_fpn_R_50_1x.yaml")
    inputs = small_inputs()
    return model, inputs, eager_per_image(model, inputs)


def assert_panoptic_same_as_eager(outputs, eager, assert_matches_golden) -> None:
    assert len(outputs) == len(eager)
    for ours, theirs in zip(outputs, eager):
        assert list(ours) == list(theirs) == ["sem_seg", "instances", "panoptic_seg"]
        # logits reach ~20 here: 1e-3 is float32 rounding through the GroupNorm head
        torch.testing.assert_close(ours["sem_seg"], theirs["sem_seg"], rtol=1e-4, atol=1e-3)
        assert_same_as_eager([ours], [theirs], assert_matches_golden, mask_iou=SMALL_MASK_IOU)

        (ids, segments), (eager_ids, eager_segments) = ours["panoptic_seg"], theirs["panoptic_seg"]
        assert ids.shape == eager_ids.shape and ids.dtype == eager_ids.dtype == torch.int32
        # the same segments in the same order; a mask row flipped by rounding (SMALL_MASK_IOU) moves pixels
        assert float((ids == eager_ids).float().mean()) >= 0.995
        assert [(s["id"], s["isthing"], s["category_id"]) for s in segments] == [
            (s["id"], s["isthing"], s["category_id"]) for s in eager_segments
        ]
        for s, e in zip(segments, eager_segments):
            if s["isthing"]:
                assert s["score"] == pytest.approx(e["score"], abs=2e-3)
            else:
                assert s["area"] == pytest.approx(e["area"], abs=10)
        kinds = {s["isthing"] for s in eager_segments}
        assert kinds == {True, False}, "the test images should give things and stuff"


def test_adapter_merges_like_eager(panoptic, assert_matches_golden):
    model, inputs, eager = panoptic
    adapter = TracingAdapter(model)
    assert adapter.architecture == "PanopticFPN"
    assert adapter.outputs_schema == ("pred_boxes", "scores", "pred_classes", "pred_masks", "sem_seg")
    assert adapter.metadata()["panoptic_combine"] == {
        "overlap_threshold": 0.5,
        "stuff_area_thresh": 4096.0,
        "instances_score_thresh": 0.5,
    }
    with torch.no_grad():
        flat = adapter(*adapter.flatten_inputs(inputs[0]))
    assert flat[-1].shape == (4, 160, 224)  # sem_seg logits at the padded input size
    assert_panoptic_same_as_eager(
        [adapter.unflatten_outputs(flat, inputs[0])], eager[:1], assert_matches_golden
    )


@pytest.mark.slow
def test_exported_program_matches_eager_at_two_sizes(panoptic, tmp_path, assert_matches_golden):
    model, inputs, eager = panoptic
    path = tmp_path / "panoptic.pt2"
    export_torch(model, inputs[0]["image"], path)
    runner = load_exported(path)
    assert runner.metadata["architecture"] == "PanopticFPN"
    with torch.no_grad():
        outputs = runner(inputs)
    assert_panoptic_same_as_eager(outputs, eager, assert_matches_golden)
