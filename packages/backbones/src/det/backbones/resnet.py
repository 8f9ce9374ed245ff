"""ResNet and ResNeXt (:paper:`ResNet`, :paper:`ResNeXt`) as detectron2 builds them.

Module, parameter and buffer names are detectron2's (``stem.conv1.norm.running_mean``,
``res2.0.shortcut.weight``, ...), so detectron2 checkpoints load without renaming.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from det.core.layers import CNNBlockBase, Conv2d, ShapeSpec, c2_msra_fill, get_norm
from det.core.modeling.backbone import Backbone, check_out_features

__all__ = [
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "ResNet",
    "ResNetBlockBase",
    "bottleneck_block_kwargs",
    "build_resnet_backbone",
    "check_resnets_cfg",
    "make_stage",
    "resnet_stage_kwargs",
]

logger = logging.getLogger(__name__)

# Blocks per stage (res2, res3, res4, res5) of the standard depths.
_NUM_BLOCKS_PER_STAGE = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}


def _projection_shortcut(in_channels: int, out_channels: int, stride: int, norm) -> Conv2d | None:
    """1x1 projection when the block changes width; identity (None) otherwise."""
    if in_channels == out_channels:
        return None
    return Conv2d(
        in_channels, out_channels, kernel_size=1, stride=stride, bias=False,
        norm=get_norm(norm, out_channels),
    )


def _fuse_relu_into(conv: Conv2d) -> None:
    """Make ``conv`` apply the ReLU its block applies to its output (see :func:`_relu_unless_fused`)."""
    if conv.activation is None:
        conv.activation = F.relu_


def _relu_unless_fused(conv: Conv2d, out: torch.Tensor) -> torch.Tensor:
    """The ReLU a block applies after ``conv``, unless ``fuse_for_inference`` moved it into ``conv``.

    The blocks never give their convolutions an activation themselves (detectron2's layout, so
    checkpoints and forward hooks see what detectron2's do); a ``conv.activation`` is the ReLU that
    ``fuse_for_inference`` moved there for det.core.fast, which fuses it into the convolution.
    """
    return out if conv.activation is not None else F.relu_(out)


class BasicBlock(CNNBlockBase):
    """The residual block of ResNet-18/34: two 3x3 convs plus a shortcut.

    Invariant: output = relu(conv2(relu(conv1(x))) + shortcut(x)), with a 1x1 projection
    shortcut exactly when ``in_channels != out_channels``; only ``conv1`` is strided.

        block = BasicBlock(64, 128, stride=2, norm="BN")
        y = block(torch.rand(1, 64, 32, 32))     # (1, 128, 16, 16)
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, norm="BN"):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _projection_shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = Conv2d(
            in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False,
            norm=get_norm(norm, out_channels),
        )
        self.conv2 = Conv2d(
            out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False,
            norm=get_norm(norm, out_channels),
        )
        for layer in (self.conv1, self.conv2, self.shortcut):
            if layer is not None:
                c2_msra_fill(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _relu_unless_fused(self.conv1, self.conv1(x))
        out = self.conv2(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)

    def fuse_for_inference(self) -> None:
        """det.core.fast's protocol: ``conv1`` applies the ReLU that follows it (fast mode then runs
        the pair as one oneDNN op); the ReLU after the residual sum stays in :meth:`forward`."""
        _fuse_relu_into(self.conv1)


def _bottleneck_input(block: CNNBlockBase, in_channels: int, out_channels: int, bottleneck_channels: int,
                      stride: int, norm, stride_in_1x1: bool) -> int:
    """A bottleneck block's ``shortcut`` and 1x1 ``conv1``; returns the stride left for the 3x3 conv
    (``stride`` sits on conv1 when ``stride_in_1x1``)."""
    block.shortcut = _projection_shortcut(in_channels, out_channels, stride, norm)
    stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
    block.conv1 = Conv2d(
        in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False,
        norm=get_norm(norm, bottleneck_channels),
    )
    return stride_3x3


def _bottleneck_output(block: CNNBlockBase, bottleneck_channels: int, out_channels: int, norm) -> None:
    """A bottleneck block's 1x1 ``conv3``, then MSRA init of its convs (in detectron2's order)."""
    block.conv3 = Conv2d(
        bottleneck_channels, out_channels, kernel_size=1, bias=False,
        norm=get_norm(norm, out_channels),
    )
    for layer in (block.conv1, block.conv2, block.conv3, block.shortcut):
        if layer is not None:
            c2_msra_fill(layer)


class BottleneckBlock(CNNBlockBase):
    """The bottleneck block of ResNet-50/101/152 and ResNeXt: 1x1, 3x3 (grouped), 1x1 convs.

    Invariant: the stride sits on ``conv1`` when ``stride_in_1x1`` (MSRA/Caffe2 weights) and on
    ``conv2`` otherwise (torchvision weights); ``dilation`` and ``num_groups`` only affect ``conv2``.

        block = BottleneckBlock(256, 512, bottleneck_channels=128, stride=2)
        y = block(torch.rand(1, 256, 32, 32))    # (1, 512, 16, 16)
    """

    def __init__(self, in_channels: int, out_channels: int, *, bottleneck_channels: int, stride: int = 1,
                 num_groups: int = 1, norm="BN", stride_in_1x1: bool = False, dilation: int = 1):
        super().__init__(in_channels, out_channels, stride)
        _check_groups(bottleneck_channels, num_groups)
        stride_3x3 = _bottleneck_input(self, in_channels, out_channels, bottleneck_channels, stride, norm,
                                       stride_in_1x1)
        self.conv2 = Conv2d(
            bottleneck_channels, bottleneck_channels, kernel_size=3, stride=stride_3x3,
            padding=dilation, bias=False, groups=num_groups, dilation=dilation,
            norm=get_norm(norm, bottleneck_channels),
        )
        _bottleneck_output(self, bottleneck_channels, out_channels, norm)
        # detectron2 leaves the last norm's gamma at 1 (zero-init hurt GN training from scratch).

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _relu_unless_fused(self.conv1, self.conv1(x))
        out = _relu_unless_fused(self.conv2, self.conv2(out))
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)

    def fuse_for_inference(self) -> None:
        """det.core.fast's protocol: ``conv1`` and ``conv2`` apply the ReLUs that follow them (fast
        mode then runs each pair as one oneDNN op); the ReLU after the residual sum stays in
        :meth:`forward`."""
        _fuse_relu_into(self.conv1)
        _fuse_relu_into(self.conv2)


class DeformBottleneckBlock(CNNBlockBase):
    """A :class:`BottleneckBlock` whose 3x3 conv is deformable (:paper:`deformconv`), optionally
    modulated (DCNv2).

    Invariant: ``conv2_offset`` predicts ``18 * deform_num_groups`` channels (x/y offsets) or
    ``27 * deform_num_groups`` when modulated (offsets + mask logits), and starts at zero, so an
    untrained block equals a plain bottleneck.

        block = DeformBottleneckBlock(64, 64, bottleneck_channels=16, deform_modulated=True)
        y = block(torch.rand(1, 64, 16, 16))     # (1, 64, 16, 16)
    """

    def __init__(self, in_channels: int, out_channels: int, *, bottleneck_channels: int, stride: int = 1,
                 num_groups: int = 1, norm="BN", stride_in_1x1: bool = False, dilation: int = 1,
                 deform_modulated: bool = False, deform_num_groups: int = 1):
        super().__init__(in_channels, out_channels, stride)
        # deformable convs live in core's layers (reference op + plugin kernels)
        from det.core.layers import DeformConv, ModulatedDeformConv

        _check_groups(bottleneck_channels, num_groups)
        if deform_num_groups < 1 or bottleneck_channels % deform_num_groups:
            raise ValueError(
                f"deform_num_groups must be >= 1 and divide bottleneck_channels={bottleneck_channels}, "
                f"got {deform_num_groups}"
            )
        self.deform_modulated = deform_modulated
        stride_3x3 = _bottleneck_input(self, in_channels, out_channels, bottleneck_channels, stride, norm,
                                       stride_in_1x1)
        # per group: 2 coordinates (+1 mask value when modulated) for each of the 3x3 taps
        offset_channels = 27 if deform_modulated else 18
        deform_conv_op = ModulatedDeformConv if deform_modulated else DeformConv
        self.conv2_offset = Conv2d(
            bottleneck_channels, offset_channels * deform_num_groups, kernel_size=3,
            stride=stride_3x3, padding=dilation, dilation=dilation,
        )
        self.conv2 = deform_conv_op(
            bottleneck_channels, bottleneck_channels, kernel_size=3, stride=stride_3x3,
            padding=dilation, bias=False, groups=num_groups, dilation=dilation,
            deformable_groups=deform_num_groups, norm=get_norm(norm, bottleneck_channels),
        )
        _bottleneck_output(self, bottleneck_channels, out_channels, norm)
        nn.init.constant_(self.conv2_offset.weight, 0)
        nn.init.constant_(self.conv2_offset.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _relu_unless_fused(self.conv1, self.conv1(x))
        if self.deform_modulated:
            offset_x, offset_y, mask = torch.chunk(self.conv2_offset(out), 3, dim=1)
            out = self.conv2(out, torch.cat((offset_x, offset_y), dim=1), mask.sigmoid())
        else:
            out = self.conv2(out, self.conv2_offset(out))
        out = F.relu_(out)
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)

    def fuse_for_inference(self) -> None:
        """det.core.fast's protocol: ``conv1`` applies the ReLU that follows it; the deformable
        ``conv2`` is not a det ``Conv2d`` fast mode converts, so its ReLU stays in :meth:`forward`."""
        _fuse_relu_into(self.conv1)


class BasicStem(CNNBlockBase):
    """The ResNet stem: 7x7 stride-2 conv + norm + relu, then 3x3 stride-2 max-pool.

    Invariant: output stride 4 and ``out_channels`` channels; the one conv is ``conv1`` with its
    norm at ``conv1.norm``.

        stem = BasicStem(in_channels=3, out_channels=64, norm="FrozenBN")
        y = stem(torch.rand(1, 3, 64, 64))       # (1, 64, 16, 16)
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm="BN"):
        super().__init__(in_channels, out_channels, 4)
        self.conv1 = Conv2d(
            in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False,
            norm=get_norm(norm, out_channels),
        )
        c2_msra_fill(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _relu_unless_fused(self.conv1, self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)

    def fuse_for_inference(self) -> None:
        """det.core.fast's protocol: ``conv1`` applies the ReLU that follows it, so fast mode runs
        the pair as one oneDNN op."""
        _fuse_relu_into(self.conv1)


class ResNet(Backbone):
    """A stem followed by stages ``res2``, ``res3``, ... of residual blocks, with an optional
    linear classifier.

    Invariant: stage ``i`` (0-based) is the child module ``res{i+2}`` (an ``nn.Sequential``);
    stages after the last requested output are not built, so they own no parameters; the first
    ``freeze_at`` stages (1 = the stem) are frozen.

        stages = ResNet.make_default_stages(50, norm="FrozenBN")
        net = ResNet(BasicStem(), stages, out_features=["res4", "res5"], freeze_at=2)
        feats = net(torch.rand(1, 3, 224, 224))  # {"res4": (1,1024,14,14), "res5": (1,2048,7,7)}
    """

    def __init__(
        self,
        stem: CNNBlockBase,
        stages: Sequence[Sequence[CNNBlockBase]],
        num_classes: int | None = None,
        out_features: Sequence[str] | None = None,
        freeze_at: int = 0,
    ):
        """
        Args:
            stem: the stem module, with ``stride`` and ``out_channels`` attributes.
            stages: several (usually 4) stages, each a non-empty list of :class:`CNNBlockBase`.
            num_classes: if given, add ``avgpool`` + ``linear`` producing the output "linear".
            out_features: names to return from forward, among "stem", "res2", ..., "linear".
                None returns the last layer's output.
            freeze_at: number of stages to freeze, see :meth:`freeze`.
        """
        super().__init__()
        self.stem = stem
        self.num_classes = num_classes

        current_stride = stem.stride
        self._out_feature_strides = {"stem": current_stride}
        self._out_feature_channels = {"stem": stem.out_channels}

        stage_names: list[str] = []
        self.stages: list[nn.Sequential] = []
        if out_features is not None:
            # Don't build stages nobody reads: unused parameters waste memory and break DDP.
            # ("linear" reads the last stage, so it keeps them all)
            needed = {"res2": 1, "res3": 2, "res4": 3, "res5": 4, "linear": len(stages)}
            stages = stages[: max([needed.get(f, 0) for f in out_features], default=0)]
        name = "stem"
        for i, blocks in enumerate(stages):
            if len(blocks) == 0:
                raise ValueError(f"ResNet stage {i} (res{i + 2}) has no blocks")
            for block in blocks:
                if not isinstance(block, CNNBlockBase):
                    raise TypeError(f"ResNet stages must contain CNNBlockBase modules, got {type(block).__name__}")
            name = f"res{i + 2}"
            stage = nn.Sequential(*blocks)
            self.add_module(name, stage)
            stage_names.append(name)
            self.stages.append(stage)
            current_stride = int(current_stride * math.prod(block.stride for block in blocks))
            self._out_feature_strides[name] = current_stride
            self._out_feature_channels[name] = blocks[-1].out_channels
        self.stage_names = tuple(stage_names)

        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.linear = nn.Linear(self._out_feature_channels[name], num_classes)
            # "Accurate, Large Minibatch SGD", Sec 5.1: the classifier starts from N(0, 0.01^2).
            nn.init.normal_(self.linear.weight, std=0.01)
            name = "linear"

        self._out_features = check_out_features(self, out_features, last=name)
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            x: (N, C, H, W) images; H and W should be multiples of the output strides.

        Returns:
            dict[str, Tensor]: the requested ``out_features``.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"ResNet takes an input of shape (N, C, H, W), got {got}")
        expected_channels = getattr(self.stem, "in_channels", x.shape[1])
        if x.shape[1] != expected_channels:
            raise ValueError(
                f"ResNet expects {expected_channels} input channels, got input of shape {tuple(x.shape)}"
            )
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x)
            if name in self._out_features:
                outputs[name] = x
        if self.num_classes is not None:
            x = torch.flatten(self.avgpool(x), 1)
            x = self.linear(x)
            if "linear" in self._out_features:
                outputs["linear"] = x
        return outputs

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
            if name != "linear"
        }

    def freeze(self, freeze_at: int = 0) -> ResNet:
        """Freeze the stem and the first stages, as in fine-tuning from ImageNet weights.

        Args:
            freeze_at: 0 freezes nothing, 1 the stem, 2 the stem and res2, and so on. Frozen
                blocks stop requiring grad and their BatchNorms become FrozenBatchNorm2d.

        Returns:
            this ResNet.
        """
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, stage in enumerate(self.stages, start=2):
            if freeze_at >= idx:
                for block in stage.children():
                    block.freeze()  # type: ignore[operator]
        return self

    @staticmethod
    def make_stage(block_class, num_blocks: int, *, in_channels: int, out_channels: int, **kwargs):
        """Create the list of blocks of one stage.

        Args:
            block_class: a :class:`CNNBlockBase` subclass; it may change the resolution only
                through its ``stride``.
            num_blocks: number of blocks.
            in_channels: input channels of the stage (of its first block).
            out_channels: output channels of every block.
            kwargs: passed to every block, except that ``xx_per_block=[...]`` (one value per
                block) passes ``xx=value`` to each block in turn.

        Returns:
            list[CNNBlockBase].

        Example::

            blocks = ResNet.make_stage(BottleneckBlock, 3, in_channels=16, out_channels=64,
                                       bottleneck_channels=16, stride_per_block=[2, 1, 1])
        """
        for k, v in kwargs.items():
            if k.endswith("_per_block"):
                if len(v) != num_blocks:
                    raise ValueError(
                        f"Argument '{k}' of make_stage should have the same length as num_blocks={num_blocks}, "
                        f"got {len(v)}"
                    )
                if k[: -len("_per_block")] in kwargs:
                    raise ValueError(f"Cannot call make_stage with both {k} and {k[: -len('_per_block')]}!")
        blocks = []
        for i in range(num_blocks):
            block_kwargs = {}
            for k, v in kwargs.items():
                if k.endswith("_per_block"):
                    block_kwargs[k[: -len("_per_block")]] = v[i]
                else:
                    block_kwargs[k] = v
            blocks.append(block_class(in_channels=in_channels, out_channels=out_channels, **block_kwargs))
            in_channels = out_channels
        return blocks

    @staticmethod
    def make_default_stages(depth: int, block_class=None, **kwargs):
        """The 4 stages of a standard ResNet of ``depth`` 18, 34, 50, 101 or 152 (ImageNet widths).

        Args:
            depth: the ResNet depth.
            block_class: defaults to :class:`BasicBlock` below depth 50, else
                :class:`BottleneckBlock` (which receives ``bottleneck_channels = out_channels // 4``).
            kwargs: passed to :meth:`make_stage` (e.g. ``norm``); not strides or channels.

        Returns:
            list[list[CNNBlockBase]], for :class:`ResNet`.
        """
        if depth not in _NUM_BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet depth must be one of {sorted(_NUM_BLOCKS_PER_STAGE)}, got {depth}")
        if block_class is None:
            block_class = BasicBlock if depth < 50 else BottleneckBlock
        if depth < 50:
            in_channels, out_channels = [64, 64, 128, 256], [64, 128, 256, 512]
        else:
            in_channels, out_channels = [64, 256, 512, 1024], [256, 512, 1024, 2048]
        stages = []
        for n, s, i, o in zip(_NUM_BLOCKS_PER_STAGE[depth], [1, 2, 2, 2], in_channels, out_channels):
            extra = {"bottleneck_channels": o // 4} if depth >= 50 else {}
            stages.append(
                ResNet.make_stage(
                    block_class=block_class, num_blocks=n, stride_per_block=[s] + [1] * (n - 1),
                    in_channels=i, out_channels=o, **extra, **kwargs,
                )
            )
        return stages


ResNetBlockBase = CNNBlockBase
"""Alias kept for detectron2 compatibility."""


def make_stage(*args, **kwargs):
    """Deprecated alias of :meth:`ResNet.make_stage`, kept for detectron2 compatibility."""
    return ResNet.make_stage(*args, **kwargs)


def _check_groups(bottleneck_channels: int, num_groups: int) -> None:
    if num_groups < 1 or bottleneck_channels % num_groups:
        raise ValueError(
            f"num_groups must be >= 1 and divide bottleneck_channels={bottleneck_channels}, got {num_groups}"
        )


def resnet_stage_kwargs(resnets_cfg, num_blocks_per_stage: Sequence[int],
                        dilation_per_stage: Sequence[int], bottleneck: bool = True) -> list[dict]:
    """The :meth:`ResNet.make_stage` keyword arguments of stages res2, res3, ... (one dict per
    entry of ``num_blocks_per_stage``) from ``cfg.MODEL.RESNETS`` (``resnets_cfg``): ``num_blocks``,
    ``stride_per_block``, ``in_channels``, ``out_channels``, ``norm`` and, for bottleneck stages,
    ``bottleneck_channels``, ``stride_in_1x1`` and ``num_groups``. Channels double from stage to
    stage; each stage's first block has stride 2 except in res2 and in a dilated stage
    (``dilation_per_stage[i] > 1``), which keeps its input's resolution. The block class and the
    dilation are the caller's to add (see :func:`bottleneck_block_kwargs`).

    Shared by every builder of a ``cfg.MODEL.RESNETS`` ResNet (the standard, DeepLab and trident ones).
    """
    r = resnets_cfg
    bottleneck_channels = r.NUM_GROUPS * r.WIDTH_PER_GROUP
    in_channels = r.STEM_OUT_CHANNELS
    out_channels = r.RES2_OUT_CHANNELS
    all_kwargs = []
    for idx, n in enumerate(num_blocks_per_stage):
        first_stride = 1 if idx == 0 or dilation_per_stage[idx] > 1 else 2
        kwargs = {
            "num_blocks": n,
            "stride_per_block": [first_stride] + [1] * (n - 1),
            "in_channels": in_channels,
            "out_channels": out_channels,
            "norm": r.NORM,
        }
        if bottleneck:
            kwargs.update(bottleneck_channels=bottleneck_channels, stride_in_1x1=r.STRIDE_IN_1X1,
                          num_groups=r.NUM_GROUPS)
        all_kwargs.append(kwargs)
        in_channels = out_channels
        out_channels *= 2
        bottleneck_channels *= 2
    return all_kwargs


def bottleneck_block_kwargs(resnets_cfg, deform: bool) -> dict:
    """The block class of a bottleneck stage of ``cfg.MODEL.RESNETS`` (``resnets_cfg``):
    :class:`DeformBottleneckBlock` with ``DEFORM_MODULATED`` and ``DEFORM_NUM_GROUPS`` when
    ``deform`` (that stage's ``DEFORM_ON_PER_STAGE``), else :class:`BottleneckBlock`."""
    if deform:
        return {"block_class": DeformBottleneckBlock, "deform_modulated": resnets_cfg.DEFORM_MODULATED,
                "deform_num_groups": resnets_cfg.DEFORM_NUM_GROUPS}
    return {"block_class": BottleneckBlock}


def check_resnets_cfg(resnets_cfg) -> tuple[int, list, list[str]]:
    """Check the ``cfg.MODEL.RESNETS`` keys (``resnets_cfg``) every builder of a standard-stride
    ResNet reads: ``RES5_DILATION`` 1 or 2, four ``DEFORM_ON_PER_STAGE`` values, ``OUT_FEATURES`` a
    non-empty subset of stem/res2..res5. Raises ValueError naming the key; returns
    ``(RES5_DILATION, DEFORM_ON_PER_STAGE, OUT_FEATURES)`` (the last two as lists)."""
    res5_dilation = resnets_cfg.RES5_DILATION
    deform_on_per_stage = list(resnets_cfg.DEFORM_ON_PER_STAGE)
    out_features = list(resnets_cfg.OUT_FEATURES)
    if res5_dilation not in (1, 2):
        raise ValueError(f"MODEL.RESNETS.RES5_DILATION must be 1 or 2, got {res5_dilation}")
    if len(deform_on_per_stage) != 4:
        raise ValueError(f"MODEL.RESNETS.DEFORM_ON_PER_STAGE needs 4 values (res2..res5), got {deform_on_per_stage}")
    unknown = [f for f in out_features if f not in ("stem", "res2", "res3", "res4", "res5")]
    if unknown or not out_features:
        raise ValueError(f"MODEL.RESNETS.OUT_FEATURES must be a non-empty subset of stem/res2..res5, got {out_features}")
    return res5_dilation, deform_on_per_stage, out_features


def build_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """Build the :class:`ResNet` described by ``cfg.MODEL.RESNETS`` and ``cfg.MODEL.BACKBONE.FREEZE_AT``.

    Returns a ResNet whose outputs are ``MODEL.RESNETS.OUT_FEATURES``, taking
    ``input_shape.channels`` input channels.
    """
    r = cfg.MODEL.RESNETS
    norm = r.NORM
    depth = r.DEPTH
    num_groups = r.NUM_GROUPS
    in_channels = r.STEM_OUT_CHANNELS
    out_channels = r.RES2_OUT_CHANNELS

    if depth not in _NUM_BLOCKS_PER_STAGE:
        raise ValueError(f"MODEL.RESNETS.DEPTH must be one of {sorted(_NUM_BLOCKS_PER_STAGE)}, got {depth}")
    res5_dilation, deform_on_per_stage, out_features = check_resnets_cfg(r)
    if depth in (18, 34):
        if out_channels != 64:
            raise ValueError("Must set MODEL.RESNETS.RES2_OUT_CHANNELS = 64 for R18/R34")
        if any(deform_on_per_stage):
            raise ValueError("MODEL.RESNETS.DEFORM_ON_PER_STAGE unsupported for R18/R34")
        if res5_dilation != 1:
            raise ValueError("Must set MODEL.RESNETS.RES5_DILATION = 1 for R18/R34")
        if num_groups != 1:
            raise ValueError("Must set MODEL.RESNETS.NUM_GROUPS = 1 for R18/R34")

    stem = BasicStem(in_channels=input_shape.channels, out_channels=in_channels, norm=norm)
    # dilating res5 (as in R-FCN and Deformable ConvNets) replaces its stride 2
    dilation_per_stage = [1, 1, 1, res5_dilation]
    basic = depth in (18, 34)
    stages = []
    for idx, stage_kwargs in enumerate(resnet_stage_kwargs(r, _NUM_BLOCKS_PER_STAGE[depth], dilation_per_stage,
                                                           bottleneck=not basic)):
        if basic:
            stage_kwargs["block_class"] = BasicBlock
        else:
            stage_kwargs["dilation"] = dilation_per_stage[idx]
            stage_kwargs.update(bottleneck_block_kwargs(r, deform_on_per_stage[idx]))
        stages.append(ResNet.make_stage(**stage_kwargs))
    return ResNet(stem, stages, out_features=out_features, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)
