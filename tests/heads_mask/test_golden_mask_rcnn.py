"""Mask R-CNN R50-FPN reproduces detectron2's golden outputs and training step.

The case is ../shared/golden/mask_rcnn_R_50_FPN: detectron2's own config, weights (``.pth`` and
model-zoo ``.pkl``), inputs, outputs, backbone features and one training step. Boxes must agree
to 0.05 px, scores to 2e-3, classes exactly (near-tie swaps at the cut-off allowed by the shared
matcher) and masks to IoU >= 0.99; training gives detectron2's losses and EventStorage names.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from det.core import EventStorage
from det.structures import BitMasks, Boxes, Instances, PolygonMasks

GOLDEN_CASE = "mask_rcnn_R_50_FPN"  # the `golden`, `pth_model`, `pth_outputs` fixtures (tests/conftest.py)


def _check(outputs, case, assert_matches_golden):
    golden = case.outputs
    assert len(outputs) == len(golden) == 2
    for ours, theirs in zip(outputs, golden):
        instances, theirs = ours["instances"], theirs["instances"]
        assert len(instances) == 100
        assert instances.pred_masks.dtype == torch.bool
        assert tuple(instances.pred_masks.shape) == (100, *theirs["image_size"])
        pairs = assert_matches_golden(instances, theirs, box_tol=0.05, score_tol=2e-3, mask_iou=0.99)
        assert len(pairs) >= 98
        # beyond the IoU bar: over all matched masks, at most 0.1% of the pixels may differ
        g = theirs["pred_masks"][[p[0] for p in pairs]]
        o = instances.pred_masks[[p[1] for p in pairs]]
        assert (g ^ o).sum().item() <= 1e-3 * max(g.sum().item(), 1)


def test_model_has_detectron2_structure_and_names(pth_model, golden):
    heads = pth_model.roi_heads
    assert type(heads).__name__ == "StandardROIHeads"
    assert heads.in_features == heads.mask_in_features == ["p2", "p3", "p4", "p5"]
    assert type(heads.mask_head).__name__ == "MaskRCNNConvUpsampleHead"
    assert [n for n, _ in heads.mask_head.named_children()] == [
        "mask_fcn1", "mask_fcn2", "mask_fcn3", "mask_fcn4", "deconv", "deconv_relu", "predictor"]
    assert heads.mask_head.predictor.out_channels == 80
    assert heads.mask_pooler.output_size == (14, 14)
    assert set(pth_model.state_dict()) == set(torch.load(golden.pth, weights_only=True)["model"])


def test_matches_golden_from_pth(pth_outputs, golden, assert_matches_golden):
    _check(pth_outputs, golden, assert_matches_golden)


def test_matches_golden_from_pkl(golden, assert_matches_golden):
    _check(golden.predict("pkl"), golden, assert_matches_golden)


def test_partial_execution_as_in_detectron2_docs(pth_model, golden):
    model = pth_model
    inputs = golden.inputs
    with torch.no_grad():
        # detectron2's "partially execute a model" example, verbatim
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features)
        instances, _ = model.roi_heads(images, features, proposals)
        mask_features = [features[f] for f in model.roi_heads.in_features]
        mask_features = model.roi_heads.mask_pooler(mask_features, [x.pred_boxes for x in instances])

    assert images.tensor.shape == (2, 3, 640, 640)  # 480x640 and 640x480, padded together
    assert [len(x) for x in instances] == [100, 100]
    assert mask_features.shape == (200, 16, 14, 14)
    # before postprocessing masks are per-box probabilities of the predicted class
    assert instances[0].pred_masks.shape == (100, 1, 28, 28)
    assert instances[0].pred_masks.min() >= 0 and instances[0].pred_masks.max() <= 1


def test_forward_hooks_on_mask_submodules_behave_as_plain_pytorch(pth_model, golden):
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = (module, args, output)

        return hook

    heads = pth_model.roi_heads
    handles = [
        heads.mask_head.register_forward_hook(record("mask_head")),
        heads.mask_pooler.register_forward_hook(record("mask_pooler")),
        # a hook's return value replaces the module's output, as in plain PyTorch
        heads.mask_head.predictor.register_forward_hook(lambda module, args, output: torch.zeros_like(output)),
    ]
    try:
        with torch.no_grad():
            outputs = pth_model(golden.inputs[:1])
    finally:
        for handle in handles:
            handle.remove()

    module, (features, instances), output = seen["mask_head"]
    assert module is heads.mask_head
    assert features.shape == (100, 16, 14, 14)  # pooled region features of the 100 detections
    assert isinstance(instances, list) and len(instances[0]) == 100
    assert output is instances and instances[0].pred_masks.shape == (100, 1, 28, 28)
    assert torch.equal(instances[0].pred_masks, torch.full((100, 1, 28, 28), 0.5))  # sigmoid(0)
    _, (level_features, boxes), pooled = seen["mask_pooler"]
    assert len(level_features) == 4 and boxes[0] is instances[0].pred_boxes and pooled is features
    assert outputs[0]["instances"].pred_masks.shape == (100, 480, 640)
    # without the hooks the model is untouched
    assert not heads.mask_head._forward_hooks and not heads.mask_head.predictor._forward_hooks


def _train_inputs(case, bitmasks: bool = False):
    golden = case.load("train.pt")
    raw = golden["inputs"][0]
    gt = raw["instances"]
    instances = Instances(tuple(gt["image_size"]))
    instances.gt_boxes = Boxes(gt["gt_boxes"])
    instances.gt_classes = gt["gt_classes"]
    polygons = PolygonMasks([[np.asarray(p) for p in obj] for obj in gt["gt_masks"]])
    instances.gt_masks = BitMasks.from_polygon_masks(polygons, *gt["image_size"]) if bitmasks else polygons
    inputs = [{"image": raw["image"], "height": raw["height"], "width": raw["width"], "instances": instances}]
    return golden, inputs


def _train_step(case, inputs):
    model = case.build("pth").train()
    with EventStorage(0) as storage:
        torch.manual_seed(0)
        losses = model(inputs)
        scalars = {k: v[0] for k, v in storage.latest().items()}
    return model, losses, scalars


@pytest.mark.slow
def test_training_step_gives_detectron2_losses_and_statistics(golden):
    expected, inputs = _train_inputs(golden)
    model, losses, scalars = _train_step(golden, inputs)

    assert sorted(losses) == sorted(expected["loss_values"])
    assert sorted(scalars) == sorted(expected["storage_scalar_names"])
    # the same random calls in the same order: equal to float rounding (bit-equal here)
    for name, value in expected["loss_values"].items():
        assert losses[name].item() == pytest.approx(value, rel=1e-5, abs=1e-7), name
    for name, value in expected["storage_scalars"].items():
        assert scalars[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert scalars["mask_rcnn/accuracy"] == pytest.approx(0.5622101113172542, rel=1e-6)

    sum(losses.values()).backward()
    for name in ("mask_fcn1", "deconv", "predictor"):
        assert getattr(model.roi_heads.mask_head, name).weight.grad.abs().sum() > 0, name


@pytest.mark.slow
def test_training_step_with_bitmasks_gives_the_same_names_and_a_close_mask_loss(golden):
    # BitMasks targets come from ROIAlign of the full-image masks instead of rasterizing the
    # polygons in the box: the same regions, slightly different boundary pixels.
    expected, inputs = _train_inputs(golden, bitmasks=True)
    _, losses, scalars = _train_step(golden, inputs)
    assert sorted(losses) == sorted(expected["loss_values"])
    assert sorted(scalars) == sorted(expected["storage_scalar_names"])
    assert losses["loss_mask"].item() == pytest.approx(expected["loss_values"]["loss_mask"], rel=0.05)
    assert losses["loss_cls"].item() == pytest.approx(expected["loss_values"]["loss_cls"], rel=1e-5)
