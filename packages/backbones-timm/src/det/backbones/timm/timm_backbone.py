"""Any timm model that supports ``features_only`` as a det backbone, by name.

timm builds the network (``timm.create_model(name, features_only=True, ...)``), downloads and
caches its pretrained weights when asked (timm's own hub cache), and reports each feature level's
channels and reduction (``feature_info``); this module names the levels the detectron2 way
(``res{k}`` for stride ``2**k``), converts norms and freezes early levels.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

import timm
import torch
from timm.layers import BatchNormAct2d, GroupNormAct, freeze_batch_norm_2d
from torch import nn

from det.backbones.fpn import FPN, fpn_from_config
from det.core.layers import FrozenBatchNorm2d, ShapeSpec
from det.core.modeling.backbone import Backbone

__all__ = ["TimmBackbone", "build_timm_backbone", "build_timm_fpn_backbone"]

NORMS = ("FrozenBN", "GN", "BN", "")
# Strides an FPN over the usual detectron2 levels res2..res5 reads: the default selection.
DEFAULT_STRIDES = (4, 8, 16, 32)


class TimmBackbone(Backbone):
    """A timm feature extractor, returning its levels by name.

    Invariant: output ``res{k}`` is timm's feature level of reduction ``2**k`` (channels and
    stride from timm's ``feature_info``), in (N, C, H, W) layout even for timm models whose
    features are channels-last (Swin); the timm model is ``body``, with timm's own submodule
    names.

        backbone = TimmBackbone("convnext_tiny")                 # levels at strides 4..32
        backbone.output_shape()["res5"]                          # ShapeSpec(channels=768, stride=32)
        backbone(torch.rand(1, 3, 224, 224))["res3"].shape       # (1, 192, 28, 28)
    """

    def __init__(
        self,
        model_name: str,
        out_indices: Sequence[int] | None = None,
        *,
        pretrained: bool = False,
        pretrained_file: str = "",
        norm: str = "FrozenBN",
        freeze_at: int = 0,
        in_chans: int = 3,
        **model_kwargs: Any,
    ):
        """
        Args:
            model_name: a timm model name (``timm.list_models()``) that supports features_only.
            out_indices: timm feature levels to return (indices into the model's
                ``feature_info``); None = the levels with stride 4, 8, 16 and 32.
            pretrained: load timm's pretrained weights (downloaded once into timm's cache).
            pretrained_file: load pretrained weights from this local file instead (a timm
                checkpoint of the full model); implies ``pretrained``.
            norm: "FrozenBN" turns BatchNorms into frozen ones (det's FrozenBatchNorm2d; timm's
                BatchNorm+activation layers into timm's FrozenBatchNormAct2d), as detectron2
                fine-tunes; "GN" replaces them with GroupNorm (32 groups, fewer when the channels
                are not a multiple of 32); "BN" or "" keeps them.
            freeze_at: freeze (no gradient, frozen BatchNorms) everything computed up to the end
                of the first ``freeze_at`` feature levels of the model (for timm ResNets: 1 = the
                stem, 2 = the stem and layer1, as detectron2's FREEZE_AT).
            in_chans: input channels.
            model_kwargs: more arguments of ``timm.create_model`` (e.g. ``drop_path_rate``).
        """
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"TimmBackbone norm must be one of {NORMS}, got {norm!r}")
        if freeze_at < 0:
            raise ValueError(f"TimmBackbone freeze_at must be >= 0, got {freeze_at}")
        self.model_name = model_name
        body = _create(model_name, out_indices, pretrained or bool(pretrained_file), pretrained_file, in_chans,
                       model_kwargs)
        info = body.feature_info
        # every level of the model (feature_info's accessors default to the selected ones)
        every = list(range(len(info)))
        all_reductions = [int(r) for r in info.reduction(every)]
        all_channels = [int(c) for c in info.channels(every)]
        selected_by_timm = [i % len(info) for i in info.out_indices]
        selected = list(selected_by_timm)
        if out_indices is None:
            selected = [i for i in selected if all_reductions[i] in DEFAULT_STRIDES]
            if not selected:
                raise ValueError(
                    f"timm model {model_name!r} has no feature level at strides {DEFAULT_STRIDES} "
                    f"(its levels: {_describe(info)}); choose OUT_INDICES"
                )
        names = []
        for i in selected:
            stride = all_reductions[i]
            if stride & (stride - 1):
                raise ValueError(f"timm model {model_name!r} level {i} has stride {stride}, not a power of 2")
            names.append(f"res{int(math.log2(stride))}")
        if len(set(names)) != len(names):
            raise ValueError(
                f"timm model {model_name!r}: out_indices {selected} give several levels at one stride "
                f"({_describe(info)}); choose levels with distinct strides"
            )
        if norm == "FrozenBN":
            body = _freeze_norms(body)
        elif norm == "GN":
            body = _group_norms(body)
        self.body = body
        self._levels = dict(zip(names, selected))
        # timm returns the levels of its out_indices in order: each name's position among them
        self._positions = {n: selected_by_timm.index(i) for n, i in self._levels.items()}
        self._channels_last = str(getattr(body, "output_fmt", "NCHW")).endswith("NHWC")
        self._out_features = names
        self._out_feature_channels = {n: all_channels[i] for n, i in self._levels.items()}
        self._out_feature_strides = {n: all_reductions[i] for n, i in self._levels.items()}
        self._feature_modules = [str(name) for name in info.module_name(every)]
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"TimmBackbone takes (N, C, H, W) images, got {got}")
        features = self.body(x)
        outputs = {}
        for name, position in self._positions.items():
            feature = features[position]
            outputs[name] = feature.permute(0, 3, 1, 2) if self._channels_last else feature
        return outputs

    def freeze(self, freeze_at: int = 0) -> TimmBackbone:
        """Freeze the parameters computed up to the end of the first ``freeze_at`` feature
        levels (registration order, which is execution order for timm's feature models) and
        make their BatchNorms frozen. Returns self."""
        if freeze_at <= 0:
            return self
        if freeze_at > len(self._feature_modules):
            raise ValueError(
                f"freeze_at={freeze_at} but timm model {self.model_name!r} has {len(self._feature_modules)} feature levels"
            )
        modules = dict(self.body.named_modules())
        target = self._feature_modules[freeze_at - 1]
        target = target if target in modules else target.replace(".", "_")
        if target not in modules:
            raise ValueError(f"cannot find {self.model_name!r}'s feature module {target!r} to freeze")
        names = [name for name, _ in self.body.named_parameters()]
        last = max((i for i, n in enumerate(names) if n.startswith(target + ".")), default=-1)
        frozen_modules = set()
        for name, param in list(self.body.named_parameters())[: last + 1]:
            param.requires_grad = False
            frozen_modules.add(name.rpartition(".")[0])
        for path in sorted(frozen_modules, key=len, reverse=True):
            module = self.body.get_submodule(path) if path else self.body
            if isinstance(module, nn.BatchNorm2d):
                _replace(self.body, path, _frozen(module))
        return self

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }


def _describe(info: Any) -> str:
    every = list(range(len(info)))
    return ", ".join(f"{i}: stride {r}, {c} channels"
                     for i, (r, c) in enumerate(zip(info.reduction(every), info.channels(every))))


def _create(name: str, out_indices: Sequence[int] | None, pretrained: bool, pretrained_file: str, in_chans: int,
            model_kwargs: dict[str, Any]) -> nn.Module:
    # a name may carry a pretrained tag ("convnext_tiny.fb_in1k"): the architecture is before the dot
    if not isinstance(name, str) or name.partition(".")[0] not in timm.list_models():
        known = timm.list_models()
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (timm.list_models() lists them)"
        raise ValueError(f"{name!r} is not a timm model name{hint}")
    kwargs: dict[str, Any] = dict(model_kwargs, features_only=True, in_chans=in_chans)
    if out_indices is not None:
        kwargs["out_indices"] = tuple(int(i) for i in out_indices)
    if pretrained_file:
        kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained_file)}
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (RuntimeError, TypeError, ValueError, IndexError, AssertionError) as e:
        raise ValueError(f"timm could not build {name!r} as a feature extractor ({type(e).__name__}: {e})") from e


def _frozen(bn: nn.Module) -> nn.Module:
    if isinstance(bn, BatchNormAct2d):
        return freeze_batch_norm_2d(bn)  # keeps the activation and drop of timm's fused layer
    return FrozenBatchNorm2d.convert_frozen_batchnorm(bn)


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def _batchnorms(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d | nn.SyncBatchNorm) and n]


def _freeze_norms(model: nn.Module) -> nn.Module:
    for path, bn in _batchnorms(model):
        _replace(model, path, _frozen(bn))
    return model


def _group_norms(model: nn.Module) -> nn.Module:
    for path, bn in _batchnorms(model):
        channels = bn.num_features
        groups = math.gcd(32, channels)
        if isinstance(bn, BatchNormAct2d):
            gn: nn.Module = GroupNormAct(channels, num_groups=groups, eps=bn.eps)
            gn.act, gn.drop = bn.act, bn.drop  # the fused activation (and dropout) carry over
        else:
            gn = nn.GroupNorm(groups, channels, eps=bn.eps)
        _replace(model, path, gn)
    return model


def build_timm_backbone(cfg, input_shape: ShapeSpec) -> TimmBackbone:
    """:class:`TimmBackbone` from ``cfg.MODEL.TIMM`` (NAME, OUT_INDICES, PRETRAINED,
    PRETRAINED_FILE, NORM) and ``cfg.MODEL.BACKBONE.FREEZE_AT``."""
    c = cfg.MODEL.TIMM
    return TimmBackbone(
        c.NAME,
        out_indices=list(c.OUT_INDICES) or None,
        pretrained=c.PRETRAINED,
        pretrained_file=c.PRETRAINED_FILE,
        norm=c.NORM,
        freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
        in_chans=input_shape.channels,
    )


def build_timm_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:class:`FPN` (``MODEL.FPN.*``, :class:`LastLevelMaxPool` on top) over
    :func:`build_timm_backbone`; an empty ``MODEL.FPN.IN_FEATURES`` means every level of the
    timm backbone (res2..res5 by default, so p2..p6 come out)."""
    return fpn_from_config(build_timm_backbone(cfg, input_shape), cfg)
