"""Feature Pyramid Network (:paper:`FPN`) on top of a bottom-up backbone, as in detectron2."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from det.backbones.resnet import build_resnet_backbone
from det.core.layers import Conv2d, ShapeSpec, c2_xavier_fill, get_norm
from det.core.modeling.backbone import Backbone

__all__ = [
    "FPN",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "build_resnet_fpn_backbone",
    "build_retinanet_resnet_fpn_backbone",
    "fpn_from_config",
]


class FPN(Backbone):
    """Top-down pyramid with lateral connections over ``bottom_up``'s ``in_features``.

    Invariant: output ``p{k}`` has stride ``2**k`` and ``out_channels`` channels, for every
    input level plus ``top_block.num_levels`` extra levels; its convs are ``fpn_lateral{k}`` and
    ``fpn_output{k}`` and the bottom-up network is ``bottom_up`` (detectron2's checkpoint names).

        fpn = FPN(bottom_up=resnet, in_features=["res2", "res3", "res4", "res5"],
                  out_channels=256, top_block=LastLevelMaxPool())
        feats = fpn(images)                      # {"p2": ..., ..., "p6": ...}
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str],
        out_channels: int,
        norm="",
        top_block: nn.Module | None = None,
        fuse_type: str = "sum",
        square_pad: int = 0,
    ):
        """
        Args:
            bottom_up: a :class:`Backbone` whose outputs include ``in_features``.
            in_features: a contiguous list of its features, from high to low resolution
                (each stride twice the previous one).
            out_channels: channels of every output level.
            norm: normalization of the lateral and output convs ("" = none, convs get a bias).
            top_block: optional module producing extra coarser levels from
                ``top_block.in_feature`` (a bottom-up feature or an FPN output such as "p5");
                it has attributes ``num_levels`` and ``in_feature``.
            fuse_type: "sum" adds the lateral and top-down maps, "avg" averages them.
            square_pad: if > 0, inputs are padded to this square size (see
                :attr:`padding_constraints`).
        """
        super().__init__()
        if not isinstance(bottom_up, Backbone):
            raise TypeError(f"FPN's bottom_up must be a det Backbone, got {type(bottom_up).__name__}")
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"FPN fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        in_features = list(in_features)
        if not in_features:
            raise ValueError("FPN needs at least one in_feature")
        input_shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in input_shapes]
        if missing:
            raise ValueError(
                f"FPN in_features {missing} are not outputs of the bottom-up network "
                f"(it has {sorted(input_shapes)})"
            )
        strides = [input_shapes[f].stride for f in in_features]
        in_channels_per_feature = [input_shapes[f].channels for f in in_features]
        _assert_strides_are_log2_contiguous(strides)

        lateral_convs = []
        output_convs = []
        use_bias = norm == ""
        for idx, in_channels in enumerate(in_channels_per_feature):
            lateral_conv = Conv2d(
                in_channels, out_channels, kernel_size=1, bias=use_bias, norm=get_norm(norm, out_channels)
            )
            output_conv = Conv2d(
                out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=use_bias,
                norm=get_norm(norm, out_channels),
            )
            c2_xavier_fill(lateral_conv)
            c2_xavier_fill(output_conv)
            stage = int(math.log2(strides[idx]))
            self.add_module(f"fpn_lateral{stage}", lateral_conv)
            self.add_module(f"fpn_output{stage}", output_conv)
            lateral_convs.append(lateral_conv)
            output_convs.append(output_conv)
        # Kept in top-down order (low to high resolution), the order forward() visits them.
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]
        self.top_block = top_block
        self.in_features = tuple(in_features)
        self.bottom_up = bottom_up

        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if self.top_block is not None:
            for s in range(stage, stage + self.top_block.num_levels):
                self._out_feature_strides[f"p{s + 1}"] = 2 ** (s + 1)
            in_feature = self.top_block.in_feature
            if in_feature not in input_shapes and in_feature not in self._out_feature_strides:
                raise ValueError(
                    f"FPN top_block reads {in_feature!r}, which is neither a bottom-up output "
                    f"({sorted(input_shapes)}) nor an FPN level ({list(self._out_feature_strides)})"
                )
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {k: out_channels for k in self._out_features}
        self._size_divisibility = strides[-1]
        self._square_pad = square_pad
        self._fuse_type = fuse_type

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> dict[str, int]:
        return {"square_size": self._square_pad}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            x: (N, C, H, W) images; H and W must be multiples of :attr:`size_divisibility`
                for the levels to line up.

        Returns:
            dict[str, Tensor]: "p2", "p3", ... from high to low resolution.
        """
        if (isinstance(x, torch.Tensor) and x.dim() == 4 and self._size_divisibility > 1
                and not torch.jit.is_tracing()):
            h, w = x.shape[-2:]
            if h % self._size_divisibility or w % self._size_divisibility:
                raise ValueError(
                    f"FPN input height and width must be multiples of {self._size_divisibility} "
                    f"(size_divisibility), got {h}x{w}; pad the batch (ImageList.from_tensors does)"
                )
        bottom_up_features = self.bottom_up(x)
        # Each bottom-up map is dropped once its lateral is computed and the top-down sum is made
        # in place, so that at inference the stride-4 level does not hold four maps of its size at
        # once (~110 MB less peak at 800x1067). Autograd keeps whatever backward needs.
        keep = {getattr(self.top_block, "in_feature", None)}
        results = []
        prev_features = self.lateral_convs[0](bottom_up_features[self.in_features[-1]])
        results.append(self.output_convs[0](prev_features))
        for idx in range(1, len(self.lateral_convs)):
            name = self.in_features[-idx - 1]
            lateral_features = self.lateral_convs[idx](bottom_up_features[name])
            if name not in keep:
                del bottom_up_features[name]
            lateral_features += F.interpolate(prev_features, scale_factor=2.0, mode="nearest")
            prev_features = lateral_features
            if self._fuse_type == "avg":
                prev_features /= 2
            results.insert(0, self.output_convs[idx](prev_features))

        if self.top_block is not None:
            if self.top_block.in_feature in bottom_up_features:
                top_block_in_feature = bottom_up_features[self.top_block.in_feature]
            else:
                top_block_in_feature = results[self._out_features.index(self.top_block.in_feature)]
            results.extend(self.top_block(top_block_in_feature))
        assert len(self._out_features) == len(results)
        return dict(zip(self._out_features, results))

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }


def _assert_strides_are_log2_contiguous(strides: Sequence[int]) -> None:
    """Each stride must be twice the previous one ("contiguous in log2")."""
    for i, stride in enumerate(strides[1:], 1):
        if stride != 2 * strides[i - 1]:
            raise ValueError(
                f"FPN in_features must have log2-contiguous strides (each twice the previous), "
                f"got {list(strides)}"
            )


class LastLevelMaxPool(nn.Module):
    """P6 of the original FPN: a stride-2 subsampling (1x1 max-pool) of P5.

    Invariant: one extra level (``num_levels == 1``) read from ``in_feature == "p5"``; no parameters.

        top = LastLevelMaxPool()
        [p6] = top(p5)                           # p6 is p5[..., ::2, ::2]
    """

    def __init__(self):
        super().__init__()
        self.num_levels = 1
        self.in_feature = "p5"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


class LastLevelP6P7(nn.Module):
    """RetinaNet's extra levels: P6 = conv3x3/2(C5 or P5), P7 = conv3x3/2(relu(P6)).

    Invariant: two extra levels (``num_levels == 2``) read from ``in_feature`` ("res5", the
    default, or "p5"); the convs are ``p6`` and ``p7`` with bias.

        top = LastLevelP6P7(in_channels=2048, out_channels=256)
        p6, p7 = top(c5)
    """

    def __init__(self, in_channels: int, out_channels: int, in_feature: str = "res5"):
        super().__init__()
        self.num_levels = 2
        self.in_feature = in_feature
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for module in (self.p6, self.p7):
            c2_xavier_fill(module)

    def forward(self, c5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(c5)
        p7 = self.p7(F.relu(p6))
        return [p6, p7]


def fpn_from_config(bottom_up: Backbone, cfg, in_features: Sequence[str] | None = None, *,
                    top_block: nn.Module | None = None, square_pad: int = 0) -> FPN:
    """The :class:`FPN` every det ``*_fpn_backbone`` builder makes over its ``bottom_up``, from
    ``MODEL.FPN.OUT_CHANNELS``, ``NORM`` and ``FUSE_TYPE`` (det's helper, not a detectron2 name).

    ``in_features`` defaults to ``MODEL.FPN.IN_FEATURES``, or every output of ``bottom_up`` when
    that is empty; ``top_block`` defaults to :class:`LastLevelMaxPool` (p6 on top).
    """
    if in_features is None:
        in_features = list(cfg.MODEL.FPN.IN_FEATURES) or list(bottom_up.output_shape())
    return FPN(
        bottom_up=bottom_up,
        in_features=in_features,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool() if top_block is None else top_block,
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
        square_pad=square_pad,
    )


def build_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """Build an :class:`FPN` with :class:`LastLevelMaxPool` over ``build_resnet_backbone(cfg)``.

    Returns an FPN producing p2..p6 for the usual ``MODEL.FPN.IN_FEATURES`` res2..res5.
    """
    return fpn_from_config(build_resnet_backbone(cfg, input_shape), cfg, cfg.MODEL.FPN.IN_FEATURES)


def build_retinanet_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """Build RetinaNet's :class:`FPN`: a ResNet, then P3..P5 plus :class:`LastLevelP6P7` on res5.

    Returns an FPN producing p3..p7 for the usual ``MODEL.FPN.IN_FEATURES`` res3..res5.
    """
    bottom_up = build_resnet_backbone(cfg, input_shape)
    shapes = bottom_up.output_shape()
    if "res5" not in shapes:
        raise ValueError(
            f"build_retinanet_resnet_fpn_backbone needs res5 in MODEL.RESNETS.OUT_FEATURES, got {sorted(shapes)}"
        )
    top_block = LastLevelP6P7(shapes["res5"].channels, cfg.MODEL.FPN.OUT_CHANNELS)
    return fpn_from_config(bottom_up, cfg, cfg.MODEL.FPN.IN_FEATURES, top_block=top_block)
