"""Parity with detectron2 for every case of ../shared/golden, whatever cases the folder holds.

Each case is built with `build_model(cfg)` from its `config.yaml`, loaded with
`DetectionCheckpointer` (strict: no missing, unexpected or mis-shaped keys) from the `.pth` and
from the model-zoo `.pkl`, and must reproduce detectron2's outputs: instances (boxes, scores,
classes, masks, keypoints) through the shared tolerant matcher, keypoint heatmap statistics,
proposals, sem_seg statistics and panoptic segments -- every output kind the golden README
documents, whether or not a case of that kind is present here. Cases with `features.pt` compare
backbone features; cases with `train.pt` compare one training step's losses and EventStorage
statistics (names and values). DefaultPredictor is checked on a golden model too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from det.core import DefaultPredictor, EventStorage, get_cfg
from det.structures import Boxes, Instances, Keypoints, PolygonMasks

SHARED = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
GOLDEN = SHARED / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "config.yaml").is_file()) if GOLDEN.is_dir() else []
WEIGHTS = ("pth", "pkl")  # model_final.pth / .pkl; models are built by GoldenCase (tests/conftest.py)


def _cases_with(filename: str) -> list[str]:
    return [c for c in CASES if (GOLDEN / c / filename).is_file()]


def test_golden_cases_are_found():
    assert CASES, f"no golden case (a folder with config.yaml) under {GOLDEN}"


# --- comparisons, one per output kind of the golden README --------------------------------------


def compare_instances(ours: Instances, golden: dict, match) -> None:
    pairs = match(ours, golden)
    assert len(pairs) >= len(golden["scores"]) - 2, f"only {len(pairs)} of {len(golden['scores'])} matched"
    if "pred_keypoint_heatmaps_shape" in golden:
        heatmaps = ours.pred_keypoint_heatmaps
        assert tuple(heatmaps.shape[1:]) == tuple(golden["pred_keypoint_heatmaps_shape"][1:])
        first5 = golden["pred_keypoint_heatmaps_first5"]
        for gi, oi in pairs:
            if gi < len(first5):
                torch.testing.assert_close(heatmaps[oi], first5[gi], atol=1e-3, rtol=1e-3)
        g_idx = torch.tensor([gi for gi, _ in pairs], dtype=torch.long)
        o_idx = torch.tensor([oi for _, oi in pairs], dtype=torch.long)
        paired = heatmaps[o_idx]
        torch.testing.assert_close(paired.double().sum(dim=(1, 2, 3)), golden["pred_keypoint_heatmaps_sum"][g_idx],
                                   atol=1e-2, rtol=1e-4)
        torch.testing.assert_close(paired.flatten(2).amax(dim=2), golden["pred_keypoint_heatmaps_max"][g_idx],
                                   atol=1e-3, rtol=1e-4)


def compare_proposals(ours: Instances, golden: dict, match) -> None:
    """Proposals through the same matcher: objectness logits play the scores, one class."""
    as_instances = Instances(ours.image_size, pred_boxes=ours.proposal_boxes, scores=ours.objectness_logits,
                             pred_classes=torch.zeros(len(ours), dtype=torch.int64))
    as_golden = {"image_size": golden["image_size"], "pred_boxes": golden["proposal_boxes"],
                 "scores": golden["objectness_logits"],
                 "pred_classes": torch.zeros(len(golden["objectness_logits"]), dtype=torch.int64)}
    pairs = match(as_instances, as_golden, score_tol=2e-3)
    assert len(pairs) >= len(as_golden["scores"]) - 2


def compare_sem_seg(ours: torch.Tensor, golden: dict) -> None:
    assert tuple(ours.shape) == tuple(golden["shape"])
    assert str(ours.dtype).removeprefix("torch.") == str(golden["dtype"]).removeprefix("torch.")
    stride = golden["stride"]
    torch.testing.assert_close(ours[:, ::stride, ::stride], golden["strided"], atol=1e-3, rtol=1e-4)
    agree = (ours.argmax(0) == golden["argmax"]).double().mean().item()
    assert agree >= 0.999, f"sem_seg argmax agrees on {agree:.4%} of pixels"
    torch.testing.assert_close(ours.double().flatten(1).sum(1), golden["sum_per_class"], atol=1.0, rtol=1e-4)
    torch.testing.assert_close(ours.double().sum(), torch.as_tensor(golden["sum"], dtype=torch.float64),
                               atol=10.0, rtol=1e-4)


def compare_panoptic(ours, golden: dict) -> None:
    """Segment ids follow score order, which 1-ulp near-ties may swap: segments are paired by
    category and mask overlap, then the id maps must agree almost everywhere."""
    pred, segments = ours
    g_pred, g_segments = golden["pred"], golden["segments_info"]
    assert tuple(pred.shape) == tuple(g_pred.shape) and pred.dtype == g_pred.dtype
    assert abs(len(segments) - len(g_segments)) <= 2, (len(segments), len(g_segments))
    ours_by_id = {s["id"]: s for s in segments}
    mapping = {0: 0}
    for g in g_segments:
        g_mask = g_pred == g["id"]
        best, best_iou = None, 0.0
        for o in segments:
            if o["isthing"] != g["isthing"] or o["category_id"] != g["category_id"] or o["id"] in mapping.values():
                continue
            o_mask = pred == o["id"]
            union = (g_mask | o_mask).sum().item()
            iou = (g_mask & o_mask).sum().item() / union if union else 1.0
            if iou > best_iou:
                best, best_iou = o, iou
        if best is None:
            continue
        mapping[g["id"]] = best["id"]
        if g["isthing"]:
            assert abs(best["score"] - g["score"]) <= 2e-3, (g, best)
        else:
            assert abs(best["area"] - g["area"]) <= max(10, 0.01 * g["area"]), (g, best)
    unmatched = [g for g in g_segments if g["id"] not in mapping]
    assert len(unmatched) <= 2, f"unmatched golden segments: {unmatched[:3]}"
    lut = torch.full((int(g_pred.max()) + 1,), -1, dtype=torch.int64)
    for g_id, o_id in mapping.items():
        lut[g_id] = o_id
    disagree = (lut[g_pred.long()] != pred.long()).double().mean().item()
    assert disagree <= 0.005, f"panoptic ids differ on {disagree:.3%} of pixels"
    assert set(ours_by_id) == set(pred.unique().tolist()) - {0}


def compare_output(ours: dict, golden: dict, match) -> None:
    assert set(ours) == set(golden), f"output keys {sorted(ours)} != detectron2's {sorted(golden)}"
    if "instances" in golden:
        compare_instances(ours["instances"], golden["instances"], match)
    if "proposals" in golden:
        compare_proposals(ours["proposals"], golden["proposals"], match)
    if "sem_seg" in golden:
        compare_sem_seg(ours["sem_seg"], golden["sem_seg"])
    if "panoptic_seg" in golden:
        compare_panoptic(ours["panoptic_seg"], golden["panoptic_seg"])


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_checkpoint_names_are_detectron2s(case, golden_case):
    """Parameter and buffer names (and shapes) equal the checkpoint's, in detectron2's order."""
    model = golden_case(case).build()
    saved = golden_case(case).load("model_final.pth")["model"]
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in saved.items()}
    assert list(ours) == list(saved)


@pytest.mark.slow
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("case", CASES)
def test_outputs_match_detectron2(case, weights, golden_case, assert_matches_golden):
    expected = golden_case(case).outputs
    outputs = golden_case(case).predict(weights)
    assert len(outputs) == len(expected)
    for ours, theirs in zip(outputs, expected):
        compare_output(ours, theirs, assert_matches_golden)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_pkl_and_pth_load_the_same_weights(case, golden_case):
    from_pth, from_pkl = golden_case(case).model("pth"), golden_case(case).model("pkl")
    a, b = from_pth.state_dict(), from_pkl.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases_with("features.pt"))
def test_features_match_detectron2(case, golden_case):
    features = golden_case(case).load("features.pt")
    inputs = golden_case(case).inputs
    model = golden_case(case).model("pth")
    with torch.no_grad():
        images = model.preprocess_image(inputs[:1])
        out = model.backbone(images.tensor)
    torch.testing.assert_close(images.tensor, features["input"], atol=0, rtol=0)
    names = sorted(k for k in features if k != "input")
    assert sorted(out) == names
    for name in names:
        assert out[name].shape == features[name].shape, name
        err = ((out[name] - features[name]).abs().max() / features[name].abs().max()).item()
        assert err <= 1e-4, f"{name}: relative error {err:.2e}"


def _training_inputs(raw: dict) -> list[dict]:
    gt = raw["instances"]
    instances = Instances(tuple(gt["image_size"]), gt_boxes=Boxes(gt["gt_boxes"]), gt_classes=gt["gt_classes"])
    if "gt_masks" in gt:
        instances.gt_masks = PolygonMasks([[np.asarray(p) for p in obj] for obj in gt["gt_masks"]])
    if "gt_keypoints" in gt:
        instances.gt_keypoints = Keypoints(gt["gt_keypoints"])
    return [{"image": raw["image"], "height": raw["height"], "width": raw["width"], "instances": instances}]


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases_with("train.pt"))
def test_training_losses_and_statistics_match_detectron2(case, golden_case):
    golden = golden_case(case).load("train.pt")
    model = golden_case(case).build("pth").train()
    with EventStorage(0) as storage:
        torch.manual_seed(0)  # as detectron2 did: anchor and ROI sampling draw from this stream
        losses = model(_training_inputs(golden["inputs"][0]))
        scalars = {k: v[0] for k, v in storage.latest().items()}
    assert sorted(losses) == sorted(golden["losses"])
    assert sorted(scalars) == list(golden["storage_scalar_names"])
    for name, value in golden["loss_values"].items():
        assert losses[name].dim() == 0
        assert losses[name].item() == pytest.approx(value, rel=1e-4, abs=1e-6), name
    for name, value in golden["storage_scalars"].items():
        assert scalars[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    sum(losses.values()).backward()  # the losses are differentiable end to end


# --- DefaultPredictor on a golden model -------------------------------------------------------------

PREDICTOR_CASE = next((c for c in ("mask_rcnn_R_50_FPN", *CASES) if c in CASES), None)


def _predictor(fmt: str = "BGR", **overrides) -> DefaultPredictor:
    cfg = get_cfg()
    cfg.merge_from_file(str(GOLDEN / PREDICTOR_CASE / "config.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = str(GOLDEN / PREDICTOR_CASE / "model_final.pth")
    cfg.INPUT.FORMAT = fmt
    for key, value in overrides.items():
        setattr(cfg.INPUT, key, value)
    return DefaultPredictor(cfg)


def _golden_bgr_image() -> np.ndarray:
    inputs = torch.load(GOLDEN / PREDICTOR_CASE / "inputs.pt", weights_only=True)
    return inputs[0]["image"].permute(1, 2, 0).contiguous().numpy()  # (480, 640, 3) uint8 BGR


@pytest.mark.slow
def test_default_predictor_returns_instances_at_the_original_size():
    image = _golden_bgr_image()
    predictor = _predictor()  # MIN_SIZE_TEST 800: the image is resized to 800x1067 and back
    out = predictor(image)
    inst = out["instances"]
    assert inst.image_size == (480, 640)
    assert 10 <= len(inst) <= predictor.cfg.TEST.DETECTIONS_PER_IMAGE
    boxes = inst.pred_boxes.tensor
    assert (boxes[:, 0::2] <= 640).all() and (boxes[:, 1::2] <= 480).all() and (boxes >= 0).all()
    # the predictor's input was really resized: its detections differ from the 480x640 run
    same_size = _predictor(MIN_SIZE_TEST=480)(image)["instances"]
    assert same_size.image_size == (480, 640)
    assert not torch.equal(same_size.scores, inst.scores[: len(same_size)])
    if inst.has("pred_masks"):
        assert inst.pred_masks.shape == (len(inst), 480, 640) and inst.pred_masks.dtype == torch.bool


@pytest.mark.slow
def test_default_predictor_honours_rgb_format(assert_matches_golden):
    """An RGB model (mean and first conv in RGB order) fed the same BGR array predicts what the
    BGR model does: the predictor flipped the channels for it."""
    image = _golden_bgr_image()
    bgr = _predictor(MIN_SIZE_TEST=480)(image)["instances"]
    rgb_predictor = _predictor("RGB", MIN_SIZE_TEST=480)
    model = rgb_predictor.model
    first_conv = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels == 3)
    with torch.no_grad():
        first_conv.weight.copy_(first_conv.weight.flip(1))
        model.pixel_mean.copy_(model.pixel_mean.flip(0))
        model.pixel_std.copy_(model.pixel_std.flip(0))
    rgb = rgb_predictor(image)["instances"]
    reference = {"image_size": bgr.image_size, **{k: v for k, v in bgr.get_fields().items()}}
    reference["pred_boxes"] = bgr.pred_boxes.tensor
    pairs = assert_matches_golden(rgb, reference)
    assert len(pairs) >= len(bgr) - 2
    # and without the weight flip the RGB predictor would see other colours: results change
    plain_rgb = _predictor("RGB", MIN_SIZE_TEST=480)(image)["instances"]
    assert not (len(plain_rgb) == len(bgr) and torch.equal(plain_rgb.scores, bgr.scores))


# --- the comparisons for kinds without a case here accept detectron2-like data and reject wrong data


def _sem_seg_golden(logits: torch.Tensor) -> dict:
    """The README's sem_seg record of a (C,H,W) tensor."""
    return {"shape": tuple(logits.shape), "dtype": str(logits.dtype), "stride": 9,
            "strided": logits[:, ::9, ::9].clone(), "argmax": logits.argmax(0),
            "sum_per_class": logits.double().flatten(1).sum(1), "sum": logits.double().sum().item()}


def test_sem_seg_comparison():
    logits = torch.randn(54, 40, 30, generator=torch.Generator().manual_seed(0))
    golden = _sem_seg_golden(logits)
    compare_sem_seg(logits + 1e-6, golden)
    with pytest.raises(AssertionError):
        compare_sem_seg(logits[:, :, :29], golden)
    shifted = logits.clone()
    shifted[3, ::9, ::9] += 0.1
    with pytest.raises(AssertionError):
        compare_sem_seg(shifted, golden)


def _panoptic() -> tuple[torch.Tensor, list[dict]]:
    pred = torch.zeros(20, 30, dtype=torch.int32)
    pred[0:10, 0:10], pred[5:15, 12:25], pred[15:, :] = 1, 2, 3
    segments = [{"id": 1, "isthing": True, "score": 0.9, "category_id": 4, "instance_id": 0},
                {"id": 2, "isthing": True, "score": 0.8, "category_id": 7, "instance_id": 1},
                {"id": 3, "isthing": False, "category_id": 50, "area": 150}]
    return pred, segments


def test_panoptic_comparison_allows_renumbered_segments():
    g_pred, g_segments = _panoptic()
    golden = {"pred": g_pred, "segments_info": g_segments}
    # a near-tie swapped the two things' order: ids 1 and 2 are exchanged
    swapped = g_pred.clone()
    swapped[g_pred == 1], swapped[g_pred == 2] = 2, 1
    renumbered = [dict(g_segments[1], id=1, instance_id=0), dict(g_segments[0], id=2, instance_id=1), g_segments[2]]
    compare_panoptic((swapped, renumbered), golden)
    wrong_class = [dict(s) for s in g_segments]
    wrong_class[2]["category_id"] = 51
    with pytest.raises(AssertionError):
        compare_panoptic((g_pred, wrong_class), golden)
    moved = g_pred.clone()
    moved[0:10, 0:10] = 0
    with pytest.raises(AssertionError):
        compare_panoptic((moved, g_segments), golden)


def test_proposal_comparison_ignores_order_of_near_ties(assert_matches_golden):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 20.0, 30.0], [1.0, 2.0, 3.0, 4.0]])
    logits = torch.tensor([3.0, 2.0, 2.0 - 1e-7])
    golden = {"image_size": (40, 40), "proposal_boxes": boxes, "objectness_logits": logits}
    order = torch.tensor([0, 2, 1])
    ours = Instances((40, 40), proposal_boxes=Boxes(boxes[order]), objectness_logits=logits[order])
    compare_proposals(ours, golden, assert_matches_golden)
    far = Instances((40, 40), proposal_boxes=Boxes(boxes + 1.0), objectness_logits=logits)
    with pytest.raises(AssertionError):
        compare_proposals(far, golden, assert_matches_golden)
