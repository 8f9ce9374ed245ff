"""Caffe2 / Detectron1 names convert exactly as detectron2's c2_model_loading does."""

from __future__ import annotations

import logging
import pickle
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from det.checkpoint import (
    DetectionCheckpointer,
    align_and_update_state_dicts,
    convert_basic_c2_names,
    convert_c2_detectron_names,
)

# Hand-derived from detectron2 v0.6's rules, one line per rule family.
BASIC = {
    "conv1_w": "stem.conv1.weight",
    "res_conv1_bn_s": "stem.conv1.norm.weight",
    "res_conv1_bn_b": "stem.conv1.norm.bias",
    "res_conv1_bn_rm": "stem.conv1.norm.running_mean",
    "res_conv1_bn_riv": "stem.conv1.norm.running_var",
    "res2_0_branch2a_w": "res2.0.conv1.weight",
    "res2_0_branch2b_bn_s": "res2.0.conv2.norm.weight",
    "res5_2_branch2c_bn_riv": "res5.2.conv3.norm.running_var",
    "res3_0_branch1_w": "res3.0.shortcut.weight",
    "res3_0_branch1_bn_b": "res3.0.shortcut.norm.bias",
    "res4_1_branch2a_gn_s": "res4.1.conv1.norm.weight",
    "res4_1_branch2a_gn_b": "res4.1.conv1.norm.bias",
    "res2_0_branch2a_bn_gamma": "res2.0.conv1.norm.weight",
    "res2_0_branch2a_bn_beta": "res2.0.conv1.norm.bias",
    "res2_0_branch2a_bn_running_mean": "res2.0.conv1.norm.running_mean",
    "res2_0_branch2a_bn_running_var": "res2.0.conv1.norm.running_var",
    "pred_w": "linear.weight",
    "pred_b": "linear.bias",
    "fc1000_w": "fc1000.weight",
}

DETECTRON = {
    "conv_rpn_fpn2_w": "proposal_generator.rpn_head.conv.weight",
    "rpn_cls_logits_fpn2_b": "proposal_generator.rpn_head.objectness_logits.bias",
    "rpn_bbox_pred_fpn2_w": "proposal_generator.rpn_head.anchor_deltas.weight",
    "conv_rpn_w": "proposal_generator.rpn_head.conv.weight",
    "rpn_cls_logits_w": "proposal_generator.rpn_head.objectness_logits.weight",
    "rpn_bbox_pred_b": "proposal_generator.rpn_head.anchor_deltas.bias",
    "fc6_w": "box_head.fc1.weight",
    "fc7_b": "box_head.fc2.bias",
    "head_conv1_w": "box_head.conv1.weight",
    "head_conv1_gn_s": "box_head.conv1.norm.weight",
    "cls_score_w": "cls_score.weight",
    "bbox_pred_b": "bbox_pred.bias",
    "fpn_inner_res5_2_sum_w": "fpn_lateral5.weight",
    "fpn_inner_res4_5_sum_lateral_b": "fpn_lateral4.bias",
    "fpn_res3_3_sum_w": "fpn_output3.weight",
    "fpn_res2_2_sum_gn_s": "fpn_output2.norm.weight",
    "_[mask]_fcn1_w": "mask_head.mask_fcn1.weight",
    "_[mask]_fcn4_b": "mask_head.mask_fcn4.bias",
    "conv5_mask_w": "mask_head.deconv.weight",
    "mask_fcn_logits_b": "mask_head.predictor.bias",
    "conv_fcn1_w": "roi_heads.keypoint_head.conv_fcn1.weight",
    "conv_fcn8_b": "roi_heads.keypoint_head.conv_fcn8.bias",
    "kps_score_lowres_w": "roi_heads.keypoint_head.score_lowres.weight",
    "res4_5_branch2c_w": "res4.5.conv3.weight",
}


def test_convert_basic_c2_names_table():
    assert convert_basic_c2_names(list(BASIC)) == list(BASIC.values())


@pytest.mark.parametrize(("c2_name", "d2_name"), DETECTRON.items())
def test_convert_c2_detectron_names_table(c2_name, d2_name):
    # One name per call: the FPN and C4 spellings of the RPN map to the same detectron2 name.
    renamed, originals = convert_c2_detectron_names({c2_name: np.zeros((12, 2), np.float32)})
    assert list(renamed) == [d2_name]
    assert originals == {d2_name: c2_name}


def test_convert_c2_detectron_names_handles_background_rows():
    cls_w = torch.arange(4.0).repeat_interleave(3).view(4, 3)  # row i == i: bg is row 0
    bbox_w = torch.arange(12.0).view(12, 1)  # 4 bg rows + 2 classes x 4
    mask_w = torch.arange(3.0).view(3, 1, 1, 1)  # bg + 2 classes
    renamed, originals = convert_c2_detectron_names(
        {"cls_score_w": cls_w, "bbox_pred_w": bbox_w, "mask_fcn_logits_w": mask_w, "fc6_b": torch.ones(2)})
    assert renamed["cls_score.weight"][:, 0].tolist() == [1.0, 2.0, 3.0, 0.0]
    assert renamed["bbox_pred.weight"].flatten().tolist() == list(range(4, 12))
    assert renamed["mask_head.predictor.weight"].flatten().tolist() == [1.0, 2.0]
    assert originals == {"cls_score.weight": "cls_score_w", "bbox_pred.weight": "bbox_pred_w",
                         "mask_head.predictor.weight": "mask_fcn_logits_w", "box_head.fc1.bias": "fc6_b"}


def test_colliding_c2_names_are_refused():
    with pytest.raises(ValueError, match="several weights to one name"):
        convert_c2_detectron_names({"res2_0_branch2a_w": np.zeros(1), "res2.0.branch2a.w": np.zeros(1)})


# --- Reverse mapping: make Caffe2 files out of golden checkpoints --------------------------------

LAST_BLOCK = {2: 2, 3: 3, 4: 5, 5: 2}  # 3, 4, 6, 3 blocks per stage
BN_SUFFIX = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
CONV_BRANCH = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "shortcut": "branch1"}


def to_c2_name(name: str, fpn: bool) -> str | None:
    """detectron2 name -> the Caffe2 name its rules map back to it (None: not a Caffe2 weight)."""
    short = {"weight": "w", "bias": "b"}
    if m := re.fullmatch(r"(?:backbone\.(?:bottom_up\.)?)?stem\.conv1\.(weight|norm\.(\w+))", name):
        return "conv1_w" if m[1] == "weight" else f"res_conv1_bn_{BN_SUFFIX[m[2]]}"
    if m := re.fullmatch(r"(?:backbone\.(?:bottom_up\.)?|roi_heads\.)res(\d)\.(\d+)\.(\w+)\.(weight|norm\.(\w+))", name):
        base = f"res{m[1]}_{m[2]}_{CONV_BRANCH[m[3]]}"
        return f"{base}_w" if m[4] == "weight" else f"{base}_bn_{BN_SUFFIX[m[5]]}"
    if m := re.fullmatch(r"backbone\.fpn_(lateral|output)(\d)\.(weight|bias)", name):
        stage = int(m[2])
        if m[1] == "output":
            return f"fpn_res{stage}_{LAST_BLOCK[stage]}_sum_{short[m[3]]}"
        lateral = "" if stage == 5 else "_lateral"
        return f"fpn_inner_res{stage}_{LAST_BLOCK[stage]}_sum{lateral}_{short[m[3]]}"
    level = "_fpn2" if fpn else ""
    rpn = {"conv": "conv_rpn", "objectness_logits": "rpn_cls_logits", "anchor_deltas": "rpn_bbox_pred"}
    if m := re.fullmatch(r"proposal_generator\.rpn_head\.(\w+)\.(weight|bias)", name):
        return f"{rpn[m[1]]}{level}_{short[m[2]]}"
    heads = {
        r"roi_heads\.box_head\.fc1": "fc6", r"roi_heads\.box_head\.fc2": "fc7",
        r"roi_heads\.box_predictor\.cls_score": "cls_score", r"roi_heads\.box_predictor\.bbox_pred": "bbox_pred",
        r"roi_heads\.mask_head\.mask_fcn(\d)": "_[mask]_fcn{}", r"roi_heads\.mask_head\.deconv": "conv5_mask",
        r"roi_heads\.mask_head\.predictor": "mask_fcn_logits",
        r"roi_heads\.keypoint_head\.conv_fcn(\d)": "conv_fcn{}",
        r"roi_heads\.keypoint_head\.score_lowres": "kps_score_lowres",
    }
    for pattern, c2 in heads.items():
        if m := re.fullmatch(pattern + r"\.(weight|bias)", name):
            return c2.format(*m.groups()[:-1]) + "_" + short[m.groups()[-1]]
    return None


def to_c2_value(c2_name: str, value: torch.Tensor, gen: torch.Generator) -> np.ndarray:
    """Put back the background rows Detectron1 had."""
    if c2_name.startswith("cls_score_"):
        value = torch.cat([value[-1:], value[:-1]])
    elif c2_name.startswith("bbox_pred_"):
        value = torch.cat([torch.randn((4, *value.shape[1:]), generator=gen), value])
    elif c2_name.startswith("mask_fcn_logits_"):
        value = torch.cat([torch.randn((1, *value.shape[1:]), generator=gen), value])
    return value.numpy().copy()


def write_pickle(path, obj, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def test_msra_r50_style_backbone_file(tmp_path, golden_state, helpers, caplog):
    """An ImageNet R-50.pkl: bare dict of C2 backbone names, *_momentum blobs, no running stats."""
    expected = golden_state("faster_rcnn_R_50_C4")
    blobs = {}
    for name, value in expected.items():
        if "running" in name or name.startswith(("proposal_generator.", "roi_heads.box_predictor.")):
            continue
        c2 = to_c2_name(name, fpn=False)
        assert c2 is not None, name
        blobs[c2] = value.numpy().copy()
        blobs[c2 + "_momentum"] = np.full(value.shape, 7.0, np.float32)  # SGD state: must be dropped
    blobs["fc1000_w"] = np.zeros((1000, 32), np.float32)  # classifier: not in the detector
    blobs["fc1000_b"] = np.zeros(1000, np.float32)
    path = tmp_path / "R-50.pkl"
    write_pickle(path, blobs)

    model = helpers.module_from_state_dict(expected)
    before = helpers.snapshot(model)
    caplog.set_level(logging.INFO, logger="det.checkpoint")
    extra = DetectionCheckpointer(model).load(str(path))
    assert extra == {"__author__": "Caffe2", "matching_heuristics": True}

    state = model.state_dict()
    loaded = {k for k in state if not torch.equal(state[k], before[k])}
    backbone = {k for k in expected if "running" not in k and not k.startswith(("proposal_generator.", "roi_heads.box_predictor."))}
    assert loaded == backbone
    for k in backbone:
        assert torch.equal(state[k], expected[k]), k
    # Reported, grouped by module: the heads and running stats are missing, fc1000 is unused.
    assert "  fc1000.{bias, weight}" in caplog.text
    assert "  roi_heads.box_predictor.cls_score.{weight, bias}" in caplog.text
    assert "  backbone.stem.conv1.norm.{running_mean, running_var}" in caplog.text
    assert "momentum" not in caplog.text


@pytest.mark.parametrize("case", ["mask_rcnn_R_50_FPN", "keypoint_rcnn_R_50_FPN", "faster_rcnn_R_50_C4"])
def test_detectron1_style_trained_model(case, tmp_path, golden_state, helpers):
    """A Detectron1 model_final.pkl: {"blobs": C2 names with bg rows, "cfg": yaml text}."""
    expected = golden_state(case)
    fpn = "FPN" in case
    gen = torch.Generator().manual_seed(0)
    blobs = {}
    for name, value in expected.items():
        c2 = to_c2_name(name, fpn=fpn)
        assert c2 is not None, name
        blobs[c2] = to_c2_value(c2, value, gen)
        if not name.endswith(("running_mean", "running_var")):
            blobs[c2 + "_momentum"] = np.zeros(blobs[c2].shape, np.float32)
    assert len(blobs) > len(expected)
    path = tmp_path / "model_final.pkl"
    write_pickle(path, {"blobs": blobs, "cfg": "MODEL:\n  TYPE: generalized_rcnn\n"})

    c2_weights = {k: torch.as_tensor(v) for k, v in blobs.items() if not k.endswith("_momentum")}
    aligned = align_and_update_state_dicts(expected, c2_weights, c2_conversion=True)
    assert sorted(aligned) == sorted(expected)

    model = helpers.module_from_state_dict(expected)
    extra = DetectionCheckpointer(model).load(str(path), strict=True)
    assert extra == {"__author__": "Caffe2", "matching_heuristics": True}
    helpers.assert_same_state(model, expected)


def test_ambiguous_suffix_match_raises():
    model = {"a.conv.weight": torch.zeros(2), "b.conv.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"Ambiguity found for 'conv\.weight'"):
        align_and_update_state_dicts(model, {"conv.weight": torch.ones(2)}, c2_conversion=False)


def test_longest_suffix_wins_and_partial_component_does_not_match():
    model = {"backbone.body.conv1.weight": torch.zeros(1), "backbone.body.res2.conv1.weight": torch.zeros(2),
             "roi_heads.mesh_head.whatever_conv1.weight": torch.zeros(3)}
    ckpt = {"conv1.weight": torch.ones(1), "res2.conv1.weight": torch.ones(2), "unused.bias": torch.ones(1)}
    result = align_and_update_state_dicts(model, ckpt, c2_conversion=False)
    assert sorted(result) == ["backbone.body.conv1.weight", "backbone.body.res2.conv1.weight", "unused.bias"]
    assert result["backbone.body.res2.conv1.weight"].shape == (2,)


def test_shape_mismatch_is_skipped_with_one_grouped_warning(caplog):
    model = {"x.cls.weight": torch.zeros(3, 2), "x.cls.bias": torch.zeros(3), "x.box.weight": torch.zeros(4)}
    ckpt = {"cls.weight": torch.ones(5, 2), "cls.bias": torch.ones(5), "box.weight": torch.ones(4)}
    with caplog.at_level(logging.WARNING, logger="det.checkpoint"):
        result = align_and_update_state_dicts(model, ckpt, c2_conversion=False)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Skipped 2 checkpoint weights" in warnings[0].getMessage()
    assert "x.cls.weight <- cls.weight: checkpoint (5, 2) vs model (3, 2)" in warnings[0].getMessage()
    assert sorted(result) == ["cls.bias", "cls.weight", "x.box.weight"]


# --- The suffix search equals detectron2's all-pairs definition ---------------------------------

_part = st.sampled_from(["a", "b", "conv1", "res2", "0", "1", "weight", "bias", "x_conv1"])
_name = st.lists(_part, min_size=1, max_size=4).map(".".join)


def brute_force_best(model_key, ckpt_keys):
    """detectron2's definition: b matches a iff a == b or a.endswith("." + b); longest b wins."""
    matches = [b for b in ckpt_keys if model_key == b or model_key.endswith("." + b)]
    return max(matches, key=len) if matches else None


@settings(max_examples=200, deadline=None)
@given(st.sets(_name, max_size=8), st.sets(_name, max_size=8))
def test_suffix_matching_equals_the_all_pairs_definition(model_keys, ckpt_keys):
    model = {k: torch.zeros(1) for k in model_keys}
    ckpt = {k: torch.ones(1) for k in ckpt_keys}
    best = {m: brute_force_best(m, ckpt_keys) for m in model_keys}
    chosen = [b for b in best.values() if b is not None]
    if len(chosen) != len(set(chosen)):
        with pytest.raises(ValueError, match="Ambiguity"):
            align_and_update_state_dicts(model, ckpt, c2_conversion=False)
        return
    result = align_and_update_state_dicts(model, ckpt, c2_conversion=False)
    expected = {m for m, b in best.items() if b is not None} | (set(ckpt_keys) - set(chosen))
    assert set(result) == expected
