"""Any torchvision classification network as a det Backbone with named feature levels.

A second, smaller example of a backbone plugin: the network is built by name with
``weights=None`` (nothing is downloaded) and cut into levels by output stride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from det.backbones.fpn import FPN, fpn_from_config
from det.core.layers import FrozenBatchNorm2d, ShapeSpec
from det.core.modeling.backbone import Backbone

__all__ = ["TorchvisionBackbone", "build_torchvision_backbone", "build_torchvision_fpn_backbone"]

_RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")
# Square probe run once at construction to measure every level's stride and channels.
_PROBE_SIZE = 64


class TorchvisionBackbone(Backbone):
    """A torchvision classifier's trunk, returning its feature levels by name.

    Invariant: the torchvision model is kept as ``body`` with its own submodule names (so a
    torchvision state dict loads into ``body`` with ``strict=False``, only the classifier head
    missing); level ``res{k}`` is the output of the last layer with stride ``2**k`` (ResNet-like
    models also have "stem", stride 4); levels after the last requested one are removed.

        backbone = TorchvisionBackbone("resnet18", out_features=["res3", "res4", "res5"])
        feats = backbone(torch.rand(1, 3, 224, 224))   # {"res3": (1,128,28,28), ...}
        backbone.output_shape()["res5"]                 # ShapeSpec(channels=512, stride=32)

    ResNet/ResNeXt/Wide-ResNet (``conv1`` ... ``layer4``), RegNet (``stem``, ``trunk_output``)
    and models with a ``features`` Sequential of channels-first layers (ConvNeXt, MobileNet,
    EfficientNet, VGG, DenseNet, ...) are supported.
    """

    def __init__(
        self,
        name: str | nn.Module,
        out_features: Sequence[str] | None = None,
        *,
        norm: str = "FrozenBN",
        freeze_at: int = 0,
        in_channels: int = 3,
        **model_kwargs,
    ):
        """
        Args:
            name: a torchvision model name (``torchvision.models.list_models()``), built with
                ``weights=None`` and ``model_kwargs``; or an already built torchvision model.
            out_features: levels to return; None returns the last level.
            norm: "FrozenBN" converts every BatchNorm to FrozenBatchNorm2d (the usual choice when
                fine-tuning ImageNet weights); "BN" (or "") keeps the model's BatchNorms.
            freeze_at: freeze the first ``freeze_at`` levels (no grad, BatchNorms frozen).
            in_channels: must be 3, the input channels of torchvision classifiers.
        """
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"torchvision classifiers take 3 input channels, got in_channels={in_channels}")
        if norm not in ("FrozenBN", "BN", ""):
            raise ValueError(f"TorchvisionBackbone norm must be 'FrozenBN', 'BN' or '', got {norm!r}")
        model = _build_model(name, model_kwargs) if isinstance(name, str) else name
        if not isinstance(model, nn.Module):
            raise TypeError(f"TorchvisionBackbone expects a model name or nn.Module, got {type(model).__name__}")
        self.model_name = name if isinstance(name, str) else type(model).__name__
        if norm == "FrozenBN":
            model = FrozenBatchNorm2d.convert_frozen_batchnorm(model)

        paths = _layer_paths(model, self.model_name)
        names, strides, channels = _probe_levels(model, paths, self.model_name)
        levels: dict[str, list[str]] = {}
        pending: list[str] = []
        for path, level in zip(paths, names):
            pending.append(path)
            if level is not None:
                levels[level] = pending
                pending = []
        if out_features is None:
            out_features = [list(levels)[-1]]
        out_features = list(out_features)
        unknown = [f for f in out_features if f not in levels]
        if unknown or not out_features:
            raise ValueError(
                f"{self.model_name} has levels {list(levels)}; out_features {out_features} is not a "
                f"non-empty subset of them"
            )
        # Keep only the levels up to the last one read: the rest (and the classifier) would be
        # parameters without gradients.
        last = max(list(levels).index(f) for f in out_features)
        self._levels = list(levels.items())[: last + 1]
        kept = {path for _, level_paths in self._levels for path in level_paths}
        self.body = _prune(model, kept)

        self._out_features = out_features
        self._out_feature_strides = {level: strides[level] for level in levels}
        self._out_feature_channels = {level: channels[level] for level in levels}
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"TorchvisionBackbone takes an input of shape (N, 3, H, W), got {got}")
        outputs = {}
        for level, paths in self._levels:
            for path in paths:
                x = self.body.get_submodule(path)(x)
            if level in self._out_features:
                outputs[level] = x
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }

    def freeze(self, freeze_at: int = 0) -> TorchvisionBackbone:
        """Freeze the first ``freeze_at`` levels: their parameters stop requiring grad and their
        BatchNorms become FrozenBatchNorm2d. Returns self."""
        for _, paths in self._levels[:freeze_at]:
            for path in paths:
                module = self.body.get_submodule(path)
                for p in module.parameters():
                    p.requires_grad = False
                frozen = FrozenBatchNorm2d.convert_frozen_batchnorm(module)
                if frozen is not module:  # the layer itself was a BatchNorm: swap it in its parent
                    parent, _, child = path.rpartition(".")
                    self.body.get_submodule(parent).add_module(child, frozen)
        return self


def _build_model(name: str, model_kwargs: dict) -> nn.Module:
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise ValueError(
            f"{name!r} is not a torchvision classification model; available: {', '.join(sorted(available))}"
        )
    return torchvision.models.get_model(name, weights=None, **model_kwargs)


def _layer_paths(model: nn.Module, model_name: str) -> list[str]:
    """The trunk's layers, in execution order, as submodule paths of ``model``."""
    children = dict(model.named_children())
    if all(k in children for k in ("conv1", "bn1", "relu", "maxpool", *_RESNET_STAGES)):
        return ["conv1", "bn1", "relu", "maxpool", *_RESNET_STAGES]
    if "stem" in children and isinstance(children.get("trunk_output"), nn.Sequential):
        return ["stem", *(f"trunk_output.{n}" for n, _ in children["trunk_output"].named_children())]
    if isinstance(children.get("features"), nn.Sequential):
        return [f"features.{n}" for n, _ in children["features"].named_children()]
    raise ValueError(
        f"TorchvisionBackbone cannot split {model_name}: it supports ResNet-like (conv1..layer4), "
        f"RegNet (stem, trunk_output) and `features`-Sequential models"
    )


@torch.no_grad()
def _probe_levels(model: nn.Module, paths: list[str], model_name: str):
    """Run a probe image through ``paths`` to name the level each layer ends (or None).

    Returns (level name per path or None, stride per level, channels per level).
    """
    was_training = model.training
    model.eval()  # a probe must not move BatchNorm statistics
    try:
        x = torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE)
        strides = []
        for path in paths:
            x = model.get_submodule(path)(x)
            if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
                raise ValueError(
                    f"TorchvisionBackbone needs channels-first (N, C, H, W) layers; {model_name}'s "
                    f"{path} gives {tuple(x.shape)} (channels-last models such as Swin are unsupported)"
                )
            stride = _PROBE_SIZE / x.shape[-1]
            if stride != int(stride) or 2 ** round(math.log2(stride)) != stride:
                raise ValueError(f"{model_name}'s {path} has stride {stride}, not a power of 2")
            strides.append((int(stride), x.shape[1]))
    finally:
        model.train(was_training)

    resnet_like = paths[:4] == ["conv1", "bn1", "relu", "maxpool"]
    names: list[str | None] = []
    level_strides: dict[str, int] = {}
    level_channels: dict[str, int] = {}
    for i, (path, (stride, channels)) in enumerate(zip(paths, strides)):
        if resnet_like:
            # detectron2's names: the stem ends at the max-pool, then res2..res5 = layer1..layer4
            name = "stem" if path == "maxpool" else (f"res{_RESNET_STAGES.index(path) + 2}" if path in _RESNET_STAGES else None)
        else:
            ends_level = i + 1 == len(paths) or strides[i + 1][0] != stride
            name = f"res{int(math.log2(stride))}" if ends_level else None
        names.append(name)
        if name is not None:
            level_strides[name] = stride
            level_channels[name] = channels
    return names, level_strides, level_channels


def _prune(model: nn.Module, kept: set[str]) -> nn.Module:
    """Drop every submodule of ``model`` not on a kept path (classifier, unused levels)."""

    def keep(path: str) -> bool:
        return any(k == path or k.startswith(path + ".") or path.startswith(k + ".") for k in kept)

    def visit(module: nn.Module, prefix: str) -> None:
        for child_name, child in list(module.named_children()):
            path = f"{prefix}{child_name}"
            if not keep(path):
                delattr(module, child_name)
            elif path not in kept:
                visit(child, path + ".")

    visit(model, "")
    return model


def build_torchvision_backbone(cfg, input_shape: ShapeSpec) -> TorchvisionBackbone:
    """Build a :class:`TorchvisionBackbone` from ``cfg.MODEL.TORCHVISION_BACKBONE`` (NAME,
    OUT_FEATURES, NORM) and ``cfg.MODEL.BACKBONE.FREEZE_AT``; no weights are downloaded."""
    tv = cfg.MODEL.TORCHVISION_BACKBONE
    return TorchvisionBackbone(
        tv.NAME,
        out_features=list(tv.OUT_FEATURES),
        norm=tv.NORM,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
        in_channels=input_shape.channels,
    )


def build_torchvision_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """Build an :class:`FPN` (``MODEL.FPN.*``, :class:`LastLevelMaxPool` on top) over
    :func:`build_torchvision_backbone`. An empty ``MODEL.FPN.IN_FEATURES`` means all of
    ``MODEL.TORCHVISION_BACKBONE.OUT_FEATURES``."""
    in_features = list(cfg.MODEL.FPN.IN_FEATURES) or list(cfg.MODEL.TORCHVISION_BACKBONE.OUT_FEATURES)
    return fpn_from_config(build_torchvision_backbone(cfg, input_shape), cfg, in_features)
