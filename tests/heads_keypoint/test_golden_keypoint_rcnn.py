"""Keypoint R-CNN R50-FPN reproduces detectron2's golden outputs and training step.

The case is ../shared/golden/keypoint_rcnn_R_50_FPN: detectron2's own config, weights (``.pth``
and model-zoo ``.pkl``), inputs, outputs and one training step. Boxes must agree to 0.05 px,
scores to 2e-3, classes exactly (near-tie swaps allowed by the shared matcher), keypoints to
0.25 px, and the heatmaps' statistics (shape, sums, maxima, the first five maps) to float noise.
"""

from __future__ import annotations

import pytest
import torch

from det.core import EventStorage
from det.structures import Boxes, Instances, Keypoints

GOLDEN_CASE = "keypoint_rcnn_R_50_FPN"  # the `golden`, `pth_model`, `pth_outputs` fixtures (tests/conftest.py)


def _check(outputs, case, assert_matches_golden):
    golden = case.outputs
    assert len(outputs) == len(golden) == 2
    for ours, theirs in zip(outputs, golden):
        instances, theirs = ours["instances"], theirs["instances"]
        assert len(instances) == 100
        assert instances.pred_keypoints.shape == (100, 17, 3)
        assert tuple(instances.pred_keypoint_heatmaps.shape) == tuple(theirs["pred_keypoint_heatmaps_shape"])
        pairs = assert_matches_golden(instances, theirs, box_tol=0.05, score_tol=2e-3, keypoint_tol=0.25)
        assert len(pairs) >= 98
        g = torch.tensor([p[0] for p in pairs])
        o = torch.tensor([p[1] for p in pairs])
        # keypoint scores (the peak's softmax) and heatmap statistics of the matched instances
        torch.testing.assert_close(instances.pred_keypoints[o, :, 2], theirs["pred_keypoints"][g, :, 2],
                                   rtol=1e-4, atol=1e-5)
        heatmaps = instances.pred_keypoint_heatmaps
        torch.testing.assert_close(heatmaps[o].double().sum(dim=(1, 2, 3)), theirs["pred_keypoint_heatmaps_sum"][g],
                                   rtol=1e-4, atol=1e-2)
        torch.testing.assert_close(heatmaps[o].flatten(2).amax(dim=2), theirs["pred_keypoint_heatmaps_max"][g],
                                   rtol=1e-4, atol=1e-4)
        first5 = [(gi, oi) for gi, oi in pairs if gi < 5]
        for gi, oi in first5:
            torch.testing.assert_close(heatmaps[oi], theirs["pred_keypoint_heatmaps_first5"][gi], rtol=1e-4, atol=1e-4)


def test_model_has_detectron2_structure_and_names(pth_model, golden):
    heads = pth_model.roi_heads
    assert heads.keypoint_on and not heads.mask_on
    assert heads.keypoint_in_features == ["p2", "p3", "p4", "p5"]
    head = heads.keypoint_head
    assert type(head).__name__ == "KRCNNConvDeconvUpsampleHead"
    assert [n for n, _ in head.named_children()][-3:] == ["conv_fcn8", "conv_fcn_relu8", "score_lowres"]
    assert head.loss_normalizer == "visible" and head.num_keypoints == 17
    assert heads.keypoint_pooler.output_size == (14, 14)
    assert set(pth_model.state_dict()) == set(torch.load(golden.pth, weights_only=True)["model"])


def test_matches_golden_from_pth(pth_outputs, golden, assert_matches_golden):
    _check(pth_outputs, golden, assert_matches_golden)


def test_matches_golden_from_pkl(golden, assert_matches_golden):
    _check(golden.predict("pkl"), golden, assert_matches_golden)


def test_keypoints_are_rescaled_to_the_requested_size(pth_outputs, golden):
    # image 2 ran at 640x480 and is reported at 427x320: keypoints scale with the boxes
    instances = pth_outputs[1]["instances"]
    assert instances.image_size == (427, 320)
    boxes, kpts = instances.pred_boxes.tensor, instances.pred_keypoints
    assert (kpts[..., 0] >= boxes[:, None, 0] - 1).all() and (kpts[..., 0] <= boxes[:, None, 2] + 1).all()
    assert (kpts[..., 1] >= boxes[:, None, 1] - 1).all() and (kpts[..., 1] <= boxes[:, None, 3] + 1).all()


def test_forward_hook_on_the_keypoint_head_sees_its_input_and_output(pth_model, golden):
    seen = {}
    handle = pth_model.roi_heads.keypoint_head.register_forward_hook(
        lambda module, args, output: seen.update(args=args, output=output)
    )
    try:
        with torch.no_grad():
            pth_model(golden.inputs[:1])
    finally:
        handle.remove()
    features, instances = seen["args"]
    assert features.shape == (100, 16, 14, 14)
    assert seen["output"] is instances and instances[0].pred_keypoint_heatmaps.shape == (100, 17, 56, 56)


@pytest.mark.slow
def test_training_step_gives_detectron2_losses_and_statistics(golden):
    expected = golden.load("train.pt")
    raw = expected["inputs"][0]
    gt = raw["instances"]
    instances = Instances(tuple(gt["image_size"]))
    instances.gt_boxes = Boxes(gt["gt_boxes"])
    instances.gt_classes = gt["gt_classes"]
    instances.gt_keypoints = Keypoints(gt["gt_keypoints"])
    inputs = [{"image": raw["image"], "height": raw["height"], "width": raw["width"], "instances": instances}]

    model = golden.build("pth").train()
    with EventStorage(0) as storage:
        torch.manual_seed(0)
        losses = model(inputs)
        scalars = {k: v[0] for k, v in storage.latest().items()}

    assert sorted(losses) == ["loss_box_reg", "loss_cls", "loss_keypoint", "loss_rpn_cls", "loss_rpn_loc"]
    assert sorted(scalars) == sorted(expected["storage_scalar_names"])
    assert "keypoint_head/num_fg_samples" in scalars
    for name, value in expected["loss_values"].items():
        assert losses[name].item() == pytest.approx(value, rel=1e-5, abs=1e-7), name
    for name, value in expected["storage_scalars"].items():
        assert scalars[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert losses["loss_keypoint"].item() == pytest.approx(8.27205753326416, rel=1e-6)

    sum(losses.values()).backward()
    head = model.roi_heads.keypoint_head
    assert head.conv_fcn1.weight.grad.abs().sum() > 0 and head.score_lowres.weight.grad.abs().sum() > 0
