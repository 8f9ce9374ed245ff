"""Checkpoint converter: torchvision ResNet state dicts to det-backbones (detectron2) names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["convert_torchvision_resnet_checkpoint"]

# torchvision name -> det name, applied per key in order; "layerN" becomes "res{N+1}".
_BLOCK_RULES = [
    (re.compile(r"^layer([1-4])\."), lambda m: f"res{int(m.group(1)) + 1}."),
    (re.compile(r"\.bn([1-3])\."), lambda m: f".conv{m.group(1)}.norm."),
    (re.compile(r"\.downsample\.0\."), lambda m: ".shortcut."),
    (re.compile(r"\.downsample\.1\."), lambda m: ".shortcut.norm."),
]
_STEM = {"conv1.": "stem.conv1.", "bn1.": "stem.conv1.norm.", "fc.": "linear."}


def convert_torchvision_resnet_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """Rename a torchvision ResNet/ResNeXt checkpoint to det-backbones' ResNet names.

    ``conv1`` -> ``stem.conv1``, ``bn1`` -> ``stem.conv1.norm``, ``layer1.0.conv1`` ->
    ``res2.0.conv1``, ``layer1.0.bn1`` -> ``res2.0.conv1.norm``, ``downsample.0``/``.1`` ->
    ``shortcut``/``shortcut.norm``, ``fc`` -> ``linear``.

    Args:
        checkpoint: what ``torch.load`` returned: a flat state dict, or a dict holding one under
            "model" or "state_dict".

    Returns:
        ``{"model": renamed state dict, "__author__": "torchvision", "matching_heuristics": True}``
        (the heuristics map the names onto ``backbone.bottom_up.res2...`` etc.), or None when the
        file is not a torchvision ResNet. The model must use ``MODEL.RESNETS.STRIDE_IN_1X1 =
        False`` (torchvision strides the 3x3 conv) and RGB inputs normalised as torchvision's.
    """
    if not isinstance(checkpoint, Mapping):
        return None
    state = checkpoint
    for key in ("model", "state_dict"):
        if isinstance(checkpoint.get(key), Mapping):
            state = checkpoint[key]
            break
    if not _is_torchvision_resnet(state):
        return None
    # num_batches_tracked only counts BN updates; det's FrozenBN has no such buffer and a trainable
    # BN keeps its own, so carrying it would only add "unused key" noise to every load.
    converted = {_rename(name): value for name, value in state.items() if not name.endswith(".num_batches_tracked")}
    return {"model": converted, "__author__": "torchvision", "matching_heuristics": True}


def _is_torchvision_resnet(state: Mapping[str, Any]) -> bool:
    keys = set(state)
    required = {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer4.0.conv1.weight"}
    if not required <= keys:
        return False
    # every key must be one torchvision's ResNet has; anything else means a different model
    return all(k.split(".")[0] in {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"} for k in keys)


def _rename(name: str) -> str:
    for prefix, new_prefix in _STEM.items():
        if name.startswith(prefix):
            return new_prefix + name[len(prefix):]
    for pattern, repl in _BLOCK_RULES:
        name = pattern.sub(repl, name)
    return name
