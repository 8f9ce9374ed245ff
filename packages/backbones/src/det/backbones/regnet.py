"""RegNet and AnyNet (:paper:`dds`, Radosavovic et al. 2020) as detectron2 builds them.

Module, parameter and buffer names are detectron2's (and pycls'): ``stem.conv``, ``stem.bn``,
``s1.b1.proj``, ``s1.b1.bn``, ``s1.b1.f.a``/``a_bn``/``b``/``b_bn``/``c``/``c_bn``,
``s1.b1.f.se.f_ex.0``/``f_ex.2``, so detectron2's RegNet checkpoints load strictly and pycls'
ImageNet ``.pyth`` files load through ``DetectionCheckpointer``. The model-zoo LazyConfigs build it
as ``L(RegNet)(stem_class=SimpleStem, block_class=ResBottleneckBlock, depth=..., w_a=..., ...)``;
detectron2 has no YAML builder for it, so neither has det.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from det.core.layers import CNNBlockBase, get_norm
from det.core.modeling.backbone import Backbone, check_out_features

__all__ = [
    "AnyNet",
    "RegNet",
    "ResBasicBlock",
    "ResBottleneckBlock",
    "ResStem",
    "SimpleStem",
    "VanillaBlock",
    "adjust_block_compatibility",
    "generate_regnet_parameters",
]

Norm = str | Callable[[int], nn.Module] | None
ActivationClass = Callable[[], nn.Module]


def conv2d(w_in: int, w_out: int, k: int, *, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    """A k x k convolution padded to keep the size (at stride 1); odd k only."""
    if k % 2 != 1:
        raise ValueError(f"RegNet convolutions need an odd kernel size (same padding), got {k}")
    return nn.Conv2d(w_in, w_out, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias=bias)


def gap2d() -> nn.Module:
    """Global average pooling to 1 x 1."""
    return nn.AdaptiveAvgPool2d((1, 1))


def pool2d(k: int, *, stride: int = 1) -> nn.Module:
    """A k x k max pooling padded to keep the size (at stride 1); odd k only."""
    if k % 2 != 1:
        raise ValueError(f"RegNet pooling needs an odd kernel size (same padding), got {k}")
    return nn.MaxPool2d(k, stride=stride, padding=(k - 1) // 2)


def init_weights(m: nn.Module) -> None:
    """pycls' initialisation: convs N(0, sqrt(2 / fan_out)), BatchNorm 1/0, Linear N(0, 0.01)."""
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, mean=0.0, std=0.01)
        nn.init.zeros_(m.bias)


def _sequential_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # stems, transforms and the vanilla block are their children applied in registration order
    for layer in module.children():
        x = layer(x)
    return x


class _ConvStem(CNNBlockBase):
    """A stride-2 ``conv`` of ``kernel_size``, its norm ``bn`` and activation ``af``, run in order
    with whatever children a subclass adds after them; ``stride`` is the stem's total stride."""

    def __init__(self, w_in: int, w_out: int, norm: Norm, activation_class: ActivationClass, kernel_size: int,
                 stride: int):
        super().__init__(w_in, w_out, stride)
        self.conv = conv2d(w_in, w_out, kernel_size, stride=2)
        self.bn = get_norm(norm, w_out)
        self.af = activation_class()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _sequential_forward(self, x)


class ResStem(_ConvStem):
    """ResNet's ImageNet stem: 7x7 conv (stride 2), norm, activation, 3x3 max pool (stride 2).

    Invariant: output stride 4; children ``conv``, ``bn``, ``af``, ``pool`` run in that order::

        stem = ResStem(3, 64, "BN", nn.ReLU)
        stem(torch.rand(1, 3, 64, 64)).shape    # (1, 64, 16, 16)
    """

    def __init__(self, w_in: int, w_out: int, norm: Norm, activation_class: ActivationClass):
        super().__init__(w_in, w_out, norm, activation_class, kernel_size=7, stride=4)
        self.pool = pool2d(3, stride=2)


class SimpleStem(_ConvStem):
    """RegNet's ImageNet stem: 3x3 conv (stride 2), norm, activation.

    Invariant: output stride 2; children ``conv``, ``bn``, ``af``::

        stem = SimpleStem(3, 32, "BN", nn.ReLU)
        stem(torch.rand(1, 3, 64, 64)).shape    # (1, 32, 32, 32)
    """

    def __init__(self, w_in: int, w_out: int, norm: Norm, activation_class: ActivationClass):
        super().__init__(w_in, w_out, norm, activation_class, kernel_size=3, stride=2)


class SE(nn.Module):
    """Squeeze-and-Excitation: x * sigmoid(1x1 conv(act(1x1 conv(global average pool(x))))).

    Invariant: the output has the input's shape; ``f_ex`` is ``Sequential(conv w_in->w_se,
    activation, conv w_se->w_in, Sigmoid)``, both convs with bias (pycls' names ``f_ex.0``/``f_ex.2``).
    """

    def __init__(self, w_in: int, w_se: int, activation_class: ActivationClass):
        super().__init__()
        self.avg_pool = gap2d()
        self.f_ex = nn.Sequential(
            conv2d(w_in, w_se, 1, bias=True),
            activation_class(),
            conv2d(w_se, w_in, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f_ex(self.avg_pool(x))


class VanillaBlock(CNNBlockBase):
    """Two [3x3 conv, norm, activation] without a shortcut (AnyNet's plain block).

    Children ``a``, ``a_bn``, ``a_af``, ``b``, ``b_bn``, ``b_af``; only ``a`` is strided.
    ``_params`` (the per-stage dict AnyNet passes every block) is unused.
    """

    def __init__(self, w_in: int, w_out: int, stride: int, norm: Norm, activation_class: ActivationClass,
                 _params: dict[str, Any]):
        super().__init__(w_in, w_out, stride)
        self.a = conv2d(w_in, w_out, 3, stride=stride)
        self.a_bn = get_norm(norm, w_out)
        self.a_af = activation_class()
        self.b = conv2d(w_out, w_out, 3)
        self.b_bn = get_norm(norm, w_out)
        self.b_af = activation_class()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _sequential_forward(self, x)


class BasicTransform(nn.Module):
    """The residual branch of :class:`ResBasicBlock`: 3x3 conv, norm, activation, 3x3 conv, norm.

    Its last norm carries ``final_bn = True`` (pycls marks the norm that may start at zero).
    """

    def __init__(self, w_in: int, w_out: int, stride: int, norm: Norm, activation_class: ActivationClass,
                 _params: dict[str, Any]):
        super().__init__()
        self.a = conv2d(w_in, w_out, 3, stride=stride)
        self.a_bn = get_norm(norm, w_out)
        self.a_af = activation_class()
        self.b = conv2d(w_out, w_out, 3)
        self.b_bn = get_norm(norm, w_out)
        self.b_bn.final_bn = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _sequential_forward(self, x)


class BottleneckTransform(nn.Module):
    """The residual branch of :class:`ResBottleneckBlock`: 1x1, grouped 3x3 (strided), [SE], 1x1.

    With ``params = {"bot_mul": b, "group_w": g, "se_r": r}``: the bottleneck width is
    ``round(w_out * b)``, the 3x3 conv has ``bottleneck // g`` groups, and an SE module of width
    ``round(w_in * r)`` (of the *block input* width, as pycls) sits after the 3x3 when that is > 0.
    """

    def __init__(self, w_in: int, w_out: int, stride: int, norm: Norm, activation_class: ActivationClass,
                 params: dict[str, Any]):
        super().__init__()
        w_b = int(round(w_out * params["bot_mul"]))
        w_se = int(round(w_in * params["se_r"]))
        if w_b % params["group_w"] != 0:
            raise ValueError(
                f"RegNet bottleneck width {w_b} (w_out {w_out} x bottleneck ratio {params['bot_mul']}) is not a "
                f"multiple of the group width {params['group_w']}; adjust_block_compatibility makes them agree"
            )
        groups = w_b // params["group_w"]
        self.a = conv2d(w_in, w_b, 1)
        self.a_bn = get_norm(norm, w_b)
        self.a_af = activation_class()
        self.b = conv2d(w_b, w_b, 3, stride=stride, groups=groups)
        self.b_bn = get_norm(norm, w_b)
        self.b_af = activation_class()
        self.se = SE(w_b, w_se, activation_class) if w_se else None
        self.c = conv2d(w_b, w_out, 1)
        self.c_bn = get_norm(norm, w_out)
        self.c_bn.final_bn = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():  # `se` is skipped when None: children() omits it
            x = layer(x)
        return x


class _ResidualBlock(CNNBlockBase):
    """x -> af(proj_bn(proj(x)) + f(x)) with a 1x1 projection when the width or stride changes."""

    transform_class: type[nn.Module]

    def __init__(self, w_in: int, w_out: int, stride: int, norm: Norm, activation_class: ActivationClass,
                 params: dict[str, Any]):
        super().__init__(w_in, w_out, stride)
        self.proj: nn.Module | None = None
        self.bn: nn.Module | None = None
        if w_in != w_out or stride != 1:
            self.proj = conv2d(w_in, w_out, 1, stride=stride)
            self.bn = get_norm(norm, w_out)
        self.f = self.transform_class(w_in, w_out, stride, norm, activation_class, params)
        self.af = activation_class()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.bn(self.proj(x))
        return self.af(shortcut + self.f(x))


class ResBasicBlock(_ResidualBlock):
    """Residual basic block: af(x + :class:`BasicTransform`(x)); children ``proj``, ``bn``
    (only when the width or stride changes), ``f``, ``af``."""

    transform_class = BasicTransform


class ResBottleneckBlock(_ResidualBlock):
    """Residual bottleneck block (RegNetX; RegNetY with SE): af(x + :class:`BottleneckTransform`(x));
    children ``proj``, ``bn`` (only when the width or stride changes), ``f``, ``af``::

        block = ResBottleneckBlock(32, 64, 2, "BN", nn.ReLU, {"bot_mul": 1.0, "group_w": 16, "se_r": 0.25})
        block(torch.rand(1, 32, 16, 16)).shape   # (1, 64, 8, 8)
    """

    transform_class = BottleneckTransform


class AnyStage(nn.Module):
    """``d`` blocks of one width: ``b1`` takes the stage's input width and stride, ``b2..bd``
    keep width and resolution."""

    def __init__(self, w_in: int, w_out: int, stride: int, d: int, block_class, norm: Norm,
                 activation_class: ActivationClass, params: dict[str, Any]):
        super().__init__()
        for i in range(d):
            self.add_module(f"b{i + 1}", block_class(w_in, w_out, stride, norm, activation_class, params))
            stride, w_in = 1, w_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _sequential_forward(self, x)


class AnyNet(Backbone):
    """A stem and stages ``s1..sN`` of blocks, each stage with its own depth, width, stride,
    group width and bottleneck ratio (:paper:`dds`).

    Invariant: features are named "stem", "s1", "s2", ...; stage i's stride is the stem's times
    the product of its and the earlier stages' block strides; ``output_shape()`` has exactly
    ``out_features``::

        net = AnyNet(stem_class=SimpleStem, stem_width=16, block_class=ResBottleneckBlock,
                     depths=[1, 2], widths=[32, 64], group_widths=[8, 8], strides=[2, 2],
                     bottleneck_ratios=[1.0, 1.0], se_ratio=0.0, activation_class=nn.ReLU,
                     out_features=["s1", "s2"])
        net(torch.rand(1, 3, 64, 64))["s2"].shape   # (1, 64, 8, 8)
    """

    def __init__(
        self,
        *,
        stem_class,
        stem_width: int,
        block_class,
        depths: Sequence[int],
        widths: Sequence[int],
        group_widths: Sequence[int],
        strides: Sequence[int],
        bottleneck_ratios: Sequence[float],
        se_ratio: float,
        activation_class: ActivationClass,
        freeze_at: int = 0,
        norm: Norm = "BN",
        out_features: Sequence[str] | None = None,
    ):
        """
        Args:
            stem_class: called as ``stem_class(3, stem_width, norm, activation_class)``; returns a
                module with ``out_channels`` and ``stride`` (a CNNBlockBase).
            stem_width: the stem's output channels.
            block_class: called as ``block_class(w_in, w_out, stride, norm, activation_class,
                params)`` with ``params = {"bot_mul", "group_w", "se_r"}``.
            depths: blocks per stage.
            widths: output channels of every block of each stage.
            group_widths: channels per group of each stage's grouped convolution.
            strides: each stage's stride (applied by its first block).
            bottleneck_ratios: bottleneck width / block width, per stage.
            se_ratio: SE width / block input width (0: no SE).
            activation_class: called with no argument, returns an activation module.
            freeze_at: stages to freeze (1 = the stem, 2 = the stem and s1, ...); see :meth:`freeze`.
            norm: normalisation of every conv (a ``get_norm`` name or callable).
            out_features: names of the outputs ("stem", "s1", ...); default: the last stage.
        """
        super().__init__()
        lengths = {len(v) for v in (depths, widths, group_widths, strides, bottleneck_ratios)}
        if len(lengths) != 1:
            raise ValueError(
                "AnyNet: depths, widths, group_widths, strides and bottleneck_ratios need one entry per stage; "
                f"got lengths {[len(v) for v in (depths, widths, group_widths, strides, bottleneck_ratios)]}"
            )
        self.stem = stem_class(3, stem_width, norm, activation_class)

        current_stride = self.stem.stride
        self._out_feature_strides = {"stem": current_stride}
        self._out_feature_channels = {"stem": self.stem.out_channels}
        self.stages_and_names: list[tuple[AnyStage, str]] = []
        prev_w = stem_width
        name = "stem"
        for i, (d, w, s, b, g) in enumerate(zip(depths, widths, strides, bottleneck_ratios, group_widths)):
            params = {"bot_mul": b, "group_w": g, "se_r": se_ratio}
            stage = AnyStage(prev_w, w, s, d, block_class, norm, activation_class, params)
            name = f"s{i + 1}"
            self.add_module(name, stage)
            self.stages_and_names.append((stage, name))
            blocks = list(stage.children())
            current_stride = int(current_stride * np.prod([block.stride for block in blocks]))
            self._out_feature_strides[name] = current_stride
            self._out_feature_channels[name] = blocks[-1].out_channels
            prev_w = w

        self.apply(init_weights)

        self._out_features = check_out_features(self, out_features, last=name)
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            x: (N, C, H, W) images.

        Returns:
            dict[str, Tensor]: the ``out_features`` maps.
        """
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} takes an input of shape (N, C, H, W), got {tuple(x.shape)}")
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for stage, name in self.stages_and_names:
            x = stage(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def freeze(self, freeze_at: int = 0) -> AnyNet:
        """Freeze the first ``freeze_at`` stages: 1 = the stem, 2 = the stem and ``s1``, ...

        Frozen blocks get no gradient and their BatchNorms become FrozenBatchNorm2d. Returns self.
        """
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, (stage, _) in enumerate(self.stages_and_names, start=2):
            if freeze_at >= idx:
                for block in stage.children():
                    block.freeze()
        return self


def adjust_block_compatibility(
    ws: Sequence[float], bs: Sequence[float], gs: Sequence[int]
) -> tuple[list[int], list[float], list[int]]:
    """Make each stage's width, bottleneck ratio and group width agree: the group width is at most
    the bottleneck width, and the bottleneck width is a multiple of the group width (of
    lcm(group width, ratio) for integer ratios > 1), rounding the bottleneck width to the nearest
    such multiple. Returns the adjusted (widths, ratios, group widths)."""
    if not len(ws) == len(bs) == len(gs):
        raise ValueError(f"adjust_block_compatibility: lengths differ: {len(ws)} widths, {len(bs)} ratios, {len(gs)} groups")
    if not all(w > 0 and b > 0 and g > 0 for w, b, g in zip(ws, bs, gs)):
        raise ValueError(f"RegNet widths, bottleneck ratios and group widths must be positive: {ws}, {bs}, {gs}")
    vs = [int(max(1, w * b)) for w, b in zip(ws, bs)]
    gs = [int(min(g, v)) for g, v in zip(gs, vs)]
    ms = [int(np.lcm(g, int(b))) if b > 1 else g for g, b in zip(gs, bs)]
    vs = [max(m, int(round(v / m) * m)) for v, m in zip(vs, ms)]
    ws = [int(v / b) for v, b in zip(vs, bs)]
    return ws, list(bs), gs


def generate_regnet_parameters(w_a: float, w_0: int, w_m: float, d: int, q: int = 8):
    """Per-stage widths and depths of a RegNet (:paper:`dds` section 3.3).

    Block j gets the continuous width ``w_0 + w_a * j``, quantised to ``w_0 * w_m ** k`` (k the
    rounded log base ``w_m``) and to a multiple of ``q``; consecutive blocks of equal width form a
    stage.

    Returns:
        (widths, depths, num_stages, total_stages, per-block widths, per-block continuous widths).
    """
    if not (w_a >= 0 and w_0 > 0 and w_m > 1 and w_0 % q == 0):
        raise ValueError(
            f"RegNet parameters need w_a >= 0, w_0 > 0 and a multiple of {q}, w_m > 1; got w_a={w_a}, w_0={w_0}, w_m={w_m}"
        )
    ws_cont = np.arange(d) * w_a + w_0
    ks = np.round(np.log(ws_cont / w_0) / np.log(w_m))
    ws_all = np.round(np.divide(w_0 * np.power(w_m, ks), q)).astype(int) * q
    # the quantised widths never decrease along the blocks, so unique() keeps stage order
    ws, ds = np.unique(ws_all, return_counts=True)
    num_stages, total_stages = len(ws), ks.max() + 1
    return ws.tolist(), ds.tolist(), num_stages, total_stages, ws_all.tolist(), ws_cont.tolist()


def _relu_inplace() -> nn.Module:
    return nn.ReLU(inplace=True)


class RegNet(AnyNet):
    """An :class:`AnyNet` whose stages come from the RegNet parameters (``depth``, ``w_a``,
    ``w_0``, ``w_m``), with one stride, bottleneck ratio and group width for every stage.

    Invariant: the parameters fully determine the stages; RegNetX-4GF (``depth=23, w_a=38.65,
    w_0=96, w_m=2.43, group_width=40``) has widths 80/240/560/1360 and depths 2/5/14/2::

        model.backbone.bottom_up = L(RegNet)(stem_class=SimpleStem, stem_width=32,
            block_class=ResBottleneckBlock, depth=23, w_a=38.65, w_0=96, w_m=2.43,
            group_width=40, freeze_at=2, norm="FrozenBN", out_features=["s1", "s2", "s3", "s4"])
    """

    def __init__(
        self,
        *,
        stem_class,
        stem_width: int,
        block_class,
        depth: int,
        w_a: float,
        w_0: int,
        w_m: float,
        group_width: int,
        stride: int = 2,
        bottleneck_ratio: float = 1.0,
        se_ratio: float = 0.0,
        activation_class: ActivationClass | None = None,
        freeze_at: int = 0,
        norm: Norm = "BN",
        out_features: Sequence[str] | None = None,
    ):
        """
        Args (the others are :class:`AnyNet`'s):
            depth: total number of blocks.
            w_a: width slope (per block, before quantisation).
            w_0: initial width (a multiple of 8).
            w_m: quantisation factor between stage widths.
            group_width: channels per group of the grouped 3x3 convs.
            stride: every stage's stride.
            bottleneck_ratio: bottleneck width / block width.
            activation_class: default ``ReLU(inplace=True)``.
        """
        ws, ds = generate_regnet_parameters(w_a, w_0, w_m, depth)[0:2]
        ss = [stride for _ in ws]
        bs = [bottleneck_ratio for _ in ws]
        gs = [group_width for _ in ws]
        ws, bs, gs = adjust_block_compatibility(ws, bs, gs)
        super().__init__(
            stem_class=stem_class,
            stem_width=stem_width,
            block_class=block_class,
            depths=ds,
            widths=ws,
            strides=ss,
            group_widths=gs,
            bottleneck_ratios=bs,
            se_ratio=se_ratio,
            activation_class=_relu_inplace if activation_class is None else activation_class,
            freeze_at=freeze_at,
            norm=norm,
            out_features=out_features,
        )
