"""The trident ResNet: detectron2's ResNet whose ``MODEL.TRIDENT.TRIDENT_STAGE`` is made of
:class:`TridentBottleneckBlock` (three branches sharing weights, each at its own dilation).

Module, parameter and buffer names are those of the plain ResNet (``backbone.res4.0.conv2.weight``
...): a trident block owns exactly the parameters of a bottleneck block, so detectron2's TridentNet
checkpoints, and ordinary ResNet / C4 ones, load without renaming.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from det.backbones.resnet import (
    BasicStem,
    BottleneckBlock,
    ResNet,
    bottleneck_block_kwargs,
    check_resnets_cfg,
    resnet_stage_kwargs,
)
from det.core.layers import ShapeSpec, c2_msra_fill, get_norm
from det.projects.tridentnet.trident_conv import TridentConv

__all__ = ["TridentBottleneckBlock", "build_trident_resnet_backbone", "make_trident_stage"]

# blocks per stage (res2..res5) of the bottleneck ResNets TridentNet is defined for
_BLOCKS_PER_STAGE = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
_STAGE_INDEX = {"res2": 2, "res3": 3, "res4": 4, "res5": 5}


class TridentBottleneckBlock(BottleneckBlock):
    """A :class:`BottleneckBlock` (1x1, 3x3, 1x1 convs plus shortcut) run once per branch, whose
    3x3 conv is a :class:`TridentConv`: every branch uses the same weights, branch ``i`` at
    ``dilations[i]``.

    Invariant: the input is a tensor (copied to every branch: the first block of a stage) or a list
    with one tensor per running branch (``num_branch`` in training or with ``test_branch_idx ==
    -1``, else 1); the output is that list, or with ``concat_output`` (the stage's last block) the
    branches concatenated along the batch dimension, branch-major: ``(num_branch * N, C, H, W)``.
    Its parameters are exactly a BottleneckBlock's::

        block = TridentBottleneckBlock(64, 256, bottleneck_channels=64, concat_output=True)
        y = block(torch.rand(2, 64, 16, 16))     # (6, 256, 16, 16): branches 0, 1, 2 of both images
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm="BN",
        stride_in_1x1: bool = False,
        num_branch: int = 3,
        dilations: Sequence[int] = (1, 2, 3),
        concat_output: bool = False,
        test_branch_idx: int = -1,
    ):
        """
        Args:
            num_branch: the number of branches.
            dilations: the dilation (and padding) of each branch's 3x3 conv.
            concat_output: concatenate the branches' outputs (for the last block of the stage).
            test_branch_idx: -1 runs every branch at inference; ``i`` runs branch ``i`` alone.
            others: as :class:`det.backbones.resnet.BottleneckBlock`.
        """
        if num_branch != len(dilations):
            raise ValueError(
                f"TridentBottleneckBlock: num_branch={num_branch} but {len(dilations)} dilations {list(dilations)}")
        super().__init__(
            in_channels, out_channels, bottleneck_channels=bottleneck_channels, stride=stride,
            num_groups=num_groups, norm=norm, stride_in_1x1=stride_in_1x1)
        self.num_branch = num_branch
        self.concat_output = concat_output
        self.test_branch_idx = test_branch_idx
        # the 3x3 conv becomes the shared-weight one (same name, same parameters, same init)
        self.conv2 = TridentConv(  # type: ignore[assignment]
            bottleneck_channels, bottleneck_channels, kernel_size=3, stride=1 if stride_in_1x1 else stride,
            paddings=list(dilations), dilations=list(dilations), groups=num_groups, bias=False,
            num_branch=num_branch, test_branch_idx=test_branch_idx,
            norm=get_norm(norm, bottleneck_channels),
        )
        c2_msra_fill(self.conv2)

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:  # type: ignore[override]
        if not isinstance(x, (list, tuple)):
            running = self.num_branch if self.training or self.test_branch_idx == -1 else 1
            x = [x] * running
        out = [self._relu_unless_fused(self.conv1, self.conv1(b)) for b in x]
        out = [self._relu_unless_fused(self.conv2, b) for b in self.conv2(out)]
        out = [self.conv3(b) for b in out]
        shortcut = x if self.shortcut is None else [self.shortcut(b) for b in x]
        for o, s in zip(out, shortcut):
            o += s
        out = [F.relu_(b) for b in out]
        return torch.cat(out) if self.concat_output else out

    @staticmethod
    def _relu_unless_fused(conv: torch.nn.Module, out: torch.Tensor) -> torch.Tensor:
        """The ReLU after ``conv``, unless :meth:`fuse_for_inference` moved it into ``conv``."""
        return out if getattr(conv, "activation", None) is not None else F.relu_(out)

    def fuse_for_inference(self) -> None:
        """det.core.fast's protocol: ``conv1`` and the trident ``conv2`` apply the ReLUs that follow
        them (fast mode runs ``conv1`` and its ReLU as one oneDNN op; ``conv2`` applies it per
        branch); the ReLU after the residual sum stays in :meth:`forward`."""
        for conv in (self.conv1, self.conv2):
            if conv.activation is None:
                conv.activation = F.relu_


def make_trident_stage(block_class, num_blocks: int, **kwargs):
    """The blocks of a trident stage: :meth:`ResNet.make_stage` with ``concat_output`` False for
    every block but the last, which concatenates the branches for the stages after it.

    Returns:
        list[CNNBlockBase].
    """
    kwargs["concat_output_per_block"] = [False] * (num_blocks - 1) + [True]
    return ResNet.make_stage(block_class, num_blocks, **kwargs)


def build_trident_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """Build the :class:`ResNet` of ``cfg.MODEL.RESNETS`` whose ``MODEL.TRIDENT.TRIDENT_STAGE``
    is a trident stage (``MODEL.TRIDENT.NUM_BRANCH``, ``BRANCH_DILATIONS``, ``TEST_BRANCH_IDX``).

    Returns a ResNet with outputs ``MODEL.RESNETS.OUT_FEATURES``; features from the trident stage
    on hold the branches along the batch dimension (``num_branch * N`` images, branch-major).
    """
    r, t = cfg.MODEL.RESNETS, cfg.MODEL.TRIDENT
    depth = r.DEPTH
    norm = r.NORM
    in_channels = r.STEM_OUT_CHANNELS
    num_branch = t.NUM_BRANCH
    branch_dilations = list(t.BRANCH_DILATIONS)
    trident_stage = t.TRIDENT_STAGE
    test_branch_idx = t.TEST_BRANCH_IDX

    if depth not in _BLOCKS_PER_STAGE:
        raise ValueError(
            f"MODEL.RESNETS.DEPTH must be one of {sorted(_BLOCKS_PER_STAGE)} for TridentNet (trident blocks "
            f"are bottleneck blocks), got {depth}")
    res5_dilation, deform_on_per_stage, out_features = check_resnets_cfg(r)
    if trident_stage not in _STAGE_INDEX:
        raise ValueError(f"MODEL.TRIDENT.TRIDENT_STAGE must be one of {sorted(_STAGE_INDEX)}, got {trident_stage!r}")
    if num_branch < 1 or len(branch_dilations) != num_branch:
        raise ValueError(
            f"MODEL.TRIDENT.BRANCH_DILATIONS needs one dilation per branch (MODEL.TRIDENT.NUM_BRANCH="
            f"{num_branch}), got {branch_dilations}")
    if not -1 <= test_branch_idx < num_branch:
        raise ValueError(
            f"MODEL.TRIDENT.TEST_BRANCH_IDX must be -1 (every branch) or a branch in [0, {num_branch}), "
            f"got {test_branch_idx}")
    trident_stage_idx = _STAGE_INDEX[trident_stage]
    max_stage_idx = max([_STAGE_INDEX.get(f, 1) for f in out_features])
    if trident_stage_idx > max_stage_idx:
        raise ValueError(
            f"MODEL.TRIDENT.TRIDENT_STAGE is {trident_stage}, but the backbone stops at "
            f"MODEL.RESNETS.OUT_FEATURES={out_features}: the trident stage must be one the backbone builds "
            "(the C4 models' res5 is in the ROI heads and stays a plain stage)")
    if deform_on_per_stage[trident_stage_idx - 2]:
        raise ValueError(
            f"MODEL.RESNETS.DEFORM_ON_PER_STAGE turns on deformable convs in the trident stage {trident_stage}, "
            "which trident blocks do not support")

    image_channels = input_shape.channels if input_shape.channels is not None else len(cfg.MODEL.PIXEL_MEAN)
    stem = BasicStem(in_channels=image_channels, out_channels=in_channels, norm=norm)
    # dilating res5 (as in R-FCN and Deformable ConvNets) replaces its stride 2
    dilation_per_stage = [1, 1, 1, res5_dilation]
    stages = []
    all_kwargs = resnet_stage_kwargs(r, _BLOCKS_PER_STAGE[depth][:max_stage_idx - 1], dilation_per_stage)
    for idx, stage_kwargs in enumerate(all_kwargs):
        if idx + 2 == trident_stage_idx:
            # the branches' dilations replace the stage's own (detectron2 ignores RES5_DILATION here)
            stages.append(make_trident_stage(
                TridentBottleneckBlock, num_branch=num_branch, dilations=branch_dilations,
                test_branch_idx=test_branch_idx, **stage_kwargs))
        else:
            stage_kwargs.update(bottleneck_block_kwargs(r, deform_on_per_stage[idx]))
            stages.append(ResNet.make_stage(dilation=dilation_per_stage[idx], **stage_kwargs))
    return ResNet(stem, stages, out_features=out_features, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)
