"""Caffe2/Detectron1 weight names -> detectron2 names, and suffix-based name matching.

Both follow detectron2 (``detectron2/checkpoint/c2_model_loading.py``, v0.6) rule for rule, so a
Caffe2 ``.pkl`` (MSRA ImageNet backbones, Detectron1 trained models) lands on the same parameters
as in detectron2:

- :func:`convert_basic_c2_names`: backbone names, ``res2_0_branch2a_w`` -> ``res2.0.conv1.weight``,
  ``res_conv1_bn_s`` -> ``stem.conv1.norm.weight``.
- :func:`convert_c2_detectron_names`: adds RPN, box/mask/keypoint heads and FPN names, and drops or
  moves the background-class rows that Detectron1 stored first.
- :func:`align_and_update_state_dicts`: each model key takes the longest checkpoint key that is a
  whole-component suffix of it (``backbone.bottom_up.res2.0.conv1.weight`` <- ``res2.0.conv1.weight``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["align_and_update_state_dicts", "convert_basic_c2_names", "convert_c2_detectron_names"]

logger = logging.getLogger(__name__)

# Each rule is (is_regex, pattern, replacement), applied to every name in this order; the order is
# part of the contract (e.g. "_" -> "." must come before the ".b$" -> ".bias" rule).
_Rule = tuple[bool, str, str]

_BASIC_RULES: list[_Rule] = [
    (False, "_", "."),
    (True, r"\.b$", ".bias"),
    (True, r"\.w$", ".weight"),
    # BN and GN parameters both become "norm".
    (True, r"bn\.s$", "norm.weight"),
    (True, r"bn\.bias$", "norm.bias"),
    (True, r"bn\.rm", "norm.running_mean"),
    (True, r"bn\.running.mean$", "norm.running_mean"),
    (True, r"bn\.riv$", "norm.running_var"),
    (True, r"bn\.running.var$", "norm.running_var"),
    (True, r"bn\.gamma$", "norm.weight"),
    (True, r"bn\.beta$", "norm.bias"),
    (True, r"gn\.s$", "norm.weight"),
    (True, r"gn\.bias$", "norm.bias"),
    # Stem. "stem." is prepended so that the bare "conv1" cannot match convs of the heads.
    (True, r"^res\.conv1\.norm\.", "conv1.norm."),
    (True, r"^conv1\.", "stem.conv1."),
    # Residual blocks keep C2's res2..res5 stage names.
    (False, ".branch1.", ".shortcut."),
    (False, ".branch2a.", ".conv1."),
    (False, ".branch2b.", ".conv2."),
    (False, ".branch2c.", ".conv3."),
    # DensePose heads.
    (True, r"^body.conv.fcn", "body_conv_fcn"),
    (False, "AnnIndex.lowres", "ann_index_lowres"),
    (False, "Index.UV.lowres", "index_uv_lowres"),
    (False, "U.lowres", "u_lowres"),
    (False, "V.lowres", "v_lowres"),
]

_DETECTRON_RULES: list[_Rule] = [
    # RPN: FPN models define the RPN head at level 2 ("fpn2") and share it across levels.
    (False, "conv.rpn.fpn2", "proposal_generator.rpn_head.conv"),
    (False, "conv.rpn", "proposal_generator.rpn_head.conv"),
    (False, "rpn.bbox.pred.fpn2", "proposal_generator.rpn_head.anchor_deltas"),
    (False, "rpn.cls.logits.fpn2", "proposal_generator.rpn_head.objectness_logits"),
    (False, "rpn.bbox.pred", "proposal_generator.rpn_head.anchor_deltas"),
    (False, "rpn.cls.logits", "proposal_generator.rpn_head.objectness_logits"),
    # Fast R-CNN box head.
    (True, r"^bbox\.pred", "bbox_pred"),
    (True, r"^cls\.score", "cls_score"),
    (True, r"^fc6\.", "box_head.fc1."),
    (True, r"^fc7\.", "box_head.fc2."),
    (True, r"^head\.conv", "box_head.conv"),
]

_HEAD_RULES: list[_Rule] = [
    # Mask head (StandardROIHeads, then Res5ROIHeads' deconv).
    (False, ".[mask].fcn", "mask_head.mask_fcn"),
    (True, r"^\.mask\.fcn", "mask_head.mask_fcn"),
    (False, "mask.fcn.logits", "mask_head.predictor"),
    (False, "conv5.mask", "mask_head.deconv"),
    # Keypoint head: its convs are plainly called "conv_fcnX" in Detectron1.
    (False, "conv.fcn", "roi_heads.keypoint_head.conv_fcn"),
    (False, "kps.score.lowres", "roi_heads.keypoint_head.score_lowres"),
    (False, "kps.score.", "roi_heads.keypoint_head.score."),
]


def _apply_rules(names: list[str], rules: list[_Rule]) -> list[str]:
    for is_regex, pattern, replacement in rules:
        if is_regex:
            compiled = re.compile(pattern)
            names = [compiled.sub(replacement, n) for n in names]
        else:
            names = [n.replace(pattern, replacement) for n in names]
    return names


def convert_basic_c2_names(original_keys: list[str]) -> list[str]:
    """Rename typical Caffe2 backbone blobs to detectron2 names, one output per input, same order.

    >>> convert_basic_c2_names(["res2_0_branch2a_w", "res_conv1_bn_s", "conv1_w"])
    ['res2.0.conv1.weight', 'stem.conv1.norm.weight', 'stem.conv1.weight']
    """
    names = [{"pred_b": "linear_b", "pred_w": "linear_w"}.get(k, k) for k in original_keys]
    return _apply_rules(names, _BASIC_RULES)


def _fpn_map(name: str) -> str:
    # "fpn.inner.res4.5.sum.lateral.weight" is the lateral conv of stage 4 (the top stage has no
    # ".lateral"); "fpn.res4.5.sum.weight" is its output conv.
    parts = name.split(".")
    norm = ".norm" if "norm" in parts else ""
    if name.startswith("fpn.inner."):
        return f"fpn_lateral{int(parts[2][len('res'):])}{norm}.{parts[-1]}"
    if name.startswith("fpn.res"):
        return f"fpn_output{int(parts[1][len('res'):])}{norm}.{parts[-1]}"
    return name


def convert_c2_detectron_names(weights: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Map Caffe2 Detectron weight names to detectron2 names.

    Returns ``(new_weights, new_to_original)``. Detectron1 counted background as class 0, so
    ``bbox_pred`` loses its first 4 rows, ``mask_head.predictor`` its first row, and ``cls_score``'s
    first row moves to the end (detectron2 puts background last).
    """
    original_keys = sorted(weights.keys())
    layer_keys = convert_basic_c2_names(original_keys)
    layer_keys = _apply_rules(layer_keys, _DETECTRON_RULES)
    layer_keys = [_fpn_map(k) for k in layer_keys]
    layer_keys = _apply_rules(layer_keys, _HEAD_RULES)

    if len(set(layer_keys)) != len(layer_keys):
        seen: dict[str, str] = {}
        clashes = []
        for orig, new in zip(original_keys, layer_keys):
            if new in seen:
                clashes.append(f"{seen[new]} and {orig} -> {new}")
            seen[new] = orig
        raise ValueError(f"Caffe2 name conversion maps several weights to one name: {'; '.join(clashes[:5])}")

    new_weights: dict[str, Any] = {}
    new_to_original: dict[str, str] = {}
    for orig, renamed in zip(original_keys, layer_keys):
        new_to_original[renamed] = orig
        value = weights[orig]
        if renamed.startswith(("bbox_pred.", "mask_head.predictor.")):
            start = 4 if renamed.startswith("bbox_pred.") else 1
            new_weights[renamed] = value[start:]
            logger.info("Remove prediction weight for background class in %s. The shape changes from %s to %s.",
                        renamed, tuple(value.shape), tuple(new_weights[renamed].shape))
        elif renamed.startswith("cls_score."):
            logger.info("Move classification weights for background class in %s from index 0 to index %d.",
                        renamed, value.shape[0] - 1)
            new_weights[renamed] = torch.cat([torch.as_tensor(value[1:]), torch.as_tensor(value[:1])])
        else:
            new_weights[renamed] = value
    return new_weights, new_to_original


def _longest_suffix_match(model_key: str, ckpt_keys: set[str]) -> str | None:
    # detectron2's rule: b matches a iff a == b or a ends with "." + b; the longest b wins.
    # Checking a's own dot-suffixes, longest first, finds the same b without an N x M scan.
    if model_key in ckpt_keys:
        return model_key
    pos = model_key.find(".")
    while pos >= 0:
        suffix = model_key[pos + 1 :]
        if suffix in ckpt_keys:
            return suffix
        pos = model_key.find(".", pos + 1)
    return None


def _align(model_state_dict: Mapping[str, Any], ckpt_state_dict: Mapping[str, Any], c2_conversion: bool
           ) -> tuple[dict[str, Any], list[tuple[str, str, tuple[int, ...], tuple[int, ...]]]]:
    """:func:`align_and_update_state_dicts`, also returning the skipped shape mismatches as
    ``(model key, original checkpoint key, checkpoint shape, model shape)``."""
    if c2_conversion:
        ckpt_state_dict, original_keys = convert_c2_detectron_names(ckpt_state_dict)
    else:
        original_keys = {k: k for k in ckpt_state_dict}
    ckpt_keys = set(ckpt_state_dict)

    matched: dict[str, str] = {}  # checkpoint key -> model key
    result: dict[str, Any] = {}
    mismatched: list[tuple[str, str, tuple[int, ...], tuple[int, ...]]] = []
    for key_model in sorted(model_state_dict):
        key_ckpt = _longest_suffix_match(key_model, ckpt_keys)
        if key_ckpt is None:
            continue
        value = ckpt_state_dict[key_ckpt]
        shape_model = tuple(model_state_dict[key_model].shape)
        if tuple(value.shape) != shape_model:
            mismatched.append((key_model, original_keys[key_ckpt], tuple(value.shape), shape_model))
            continue
        if key_ckpt in matched:
            raise ValueError(
                f"Ambiguity found for {original_keys[key_ckpt]!r} in checkpoint: it is the best match for "
                f"at least two keys in the model ({matched[key_ckpt]!r} and {key_model!r}). Cannot match "
                "one checkpoint key to multiple keys in the model.")
        matched[key_ckpt] = key_model
        result[key_model] = value

    if matched:
        logger.info("Matched %d of %d checkpoint keys to the model by name suffix", len(matched), len(ckpt_keys))
    if mismatched:
        lines = "\n".join(f"  {m} <- {c}: checkpoint {tuple(sc)} vs model {tuple(sm)}" for m, c, sc, sm in mismatched)
        logger.warning("Skipped %d checkpoint weights whose shape does not fit the model:\n%s",
                       len(mismatched), lines)
    # Unmatched checkpoint keys stay under their (converted) names, so the loader reports them as
    # unexpected.
    for key_ckpt in sorted(ckpt_keys):
        if key_ckpt not in matched:
            result[key_ckpt] = ckpt_state_dict[key_ckpt]
    return result, mismatched


def align_and_update_state_dicts(model_state_dict: Mapping[str, Any], ckpt_state_dict: Mapping[str, Any],
                                 c2_conversion: bool = True) -> dict[str, Any]:
    """Rename ``ckpt_state_dict``'s keys to the ``model_state_dict`` keys they suffix-match.

    Each model key takes the longest checkpoint key ``b`` with ``key == b`` or
    ``key.endswith("." + b)``. A matched pair whose shapes differ is skipped (one grouped warning);
    a checkpoint key that is the best match of two model keys is ambiguous and raises ValueError.
    Unmatched checkpoint keys are kept under their own names. With ``c2_conversion`` the checkpoint
    is first renamed by :func:`convert_c2_detectron_names`. The matching is not symmetric: model
    names are assumed to be the longer ones. Returns the new checkpoint state dict.
    """
    return _align(model_state_dict, ckpt_state_dict, c2_conversion)[0]
