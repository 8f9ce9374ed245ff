"""DeepLab's ResNet: the three-conv ``DeepLabStem`` and ``build_resnet_deeplab_backbone``
(output stride 16 or 8 by dilating res4/res5, multi-grid dilations in res5)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from det.backbones.resnet import BasicStem, ResNet, bottleneck_block_kwargs, resnet_stage_kwargs
from det.core.layers import CNNBlockBase, Conv2d, ShapeSpec, c2_msra_fill, get_norm

__all__ = ["DeepLabStem", "build_resnet_deeplab_backbone"]

_NUM_BLOCKS_PER_STAGE = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
_STAGE_INDEX = {"res2": 2, "res3": 3, "res4": 4, "res5": 5}


class DeepLabStem(CNNBlockBase):
    """The DeepLab ResNet stem: three 3x3 convs (stride 2, 1, 1; ``out_channels // 2``,
    ``out_channels // 2``, ``out_channels`` channels), each with norm and ReLU, then a 3x3
    stride-2 max-pool.

    Invariant: output stride 4; the convs are ``conv1``, ``conv2``, ``conv3`` with their norms
    at ``convN.norm`` (detectron2's names, so its R-52/R-103 checkpoints load)::

        stem = DeepLabStem(in_channels=3, out_channels=128, norm="BN")
        y = stem(torch.rand(1, 3, 64, 64))       # (1, 128, 16, 16)
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 128, norm: Any = "BN") -> None:
        super().__init__(in_channels, out_channels, 4)
        if out_channels % 2:
            raise ValueError(f"DeepLabStem: out_channels must be even (its first convs have half), got {out_channels}")
        half = out_channels // 2
        self.conv1 = Conv2d(in_channels, half, kernel_size=3, stride=2, padding=1, bias=False, norm=get_norm(norm, half))
        self.conv2 = Conv2d(half, half, kernel_size=3, stride=1, padding=1, bias=False, norm=get_norm(norm, half))
        self.conv3 = Conv2d(half, out_channels, kernel_size=3, stride=1, padding=1, bias=False,
                            norm=get_norm(norm, out_channels))
        for conv in (self.conv1, self.conv2, self.conv3):
            c2_msra_fill(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        x = F.relu_(self.conv2(x))
        x = F.relu_(self.conv3(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def build_resnet_deeplab_backbone(cfg: Any, input_shape: ShapeSpec) -> ResNet:
    """The ResNet of ``cfg.MODEL.RESNETS`` with DeepLab's additions: ``STEM_TYPE`` ("basic" or
    "deeplab"), ``RES4_DILATION`` (1 or 2; 2 needs ``RES5_DILATION`` 4: output stride 8),
    ``RES5_DILATION`` (1, 2 or 4) and ``RES5_MULTI_GRID`` (res5 block ``i`` is dilated by
    ``RES5_DILATION * RES5_MULTI_GRID[i]``). A dilated stage keeps its input's resolution.

    Returns a ResNet whose outputs are ``MODEL.RESNETS.OUT_FEATURES``; stages after the last
    output are not built; the first ``MODEL.BACKBONE.FREEZE_AT`` stages are frozen.
    """
    r = cfg.MODEL.RESNETS
    norm = r.NORM
    if r.STEM_TYPE == "basic":
        stem: CNNBlockBase = BasicStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=norm)
    elif r.STEM_TYPE == "deeplab":
        stem = DeepLabStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=norm)
    else:
        raise ValueError(f"Unknown stem type: MODEL.RESNETS.STEM_TYPE={r.STEM_TYPE!r} (expected 'basic' or 'deeplab')")

    depth = r.DEPTH
    if depth not in _NUM_BLOCKS_PER_STAGE:
        raise ValueError(f"MODEL.RESNETS.DEPTH must be one of {sorted(_NUM_BLOCKS_PER_STAGE)} for "
                         f"build_resnet_deeplab_backbone, got {depth}")
    res4_dilation, res5_dilation = r.RES4_DILATION, r.RES5_DILATION
    if res4_dilation not in (1, 2):
        raise ValueError(f"MODEL.RESNETS.RES4_DILATION must be 1 or 2, got {res4_dilation}")
    if res5_dilation not in (1, 2, 4):
        raise ValueError(f"MODEL.RESNETS.RES5_DILATION must be 1, 2 or 4, got {res5_dilation}")
    if res4_dilation == 2 and res5_dilation != 4:
        raise ValueError(f"MODEL.RESNETS.RES4_DILATION=2 needs RES5_DILATION=4 (res5 is dilated twice as much "
                         f"as res4), got {res5_dilation}")
    out_features = list(r.OUT_FEATURES)
    unknown = [f for f in out_features if f not in _STAGE_INDEX]
    if unknown or not out_features:
        raise ValueError(f"MODEL.RESNETS.OUT_FEATURES must be a non-empty subset of res2..res5 for "
                         f"build_resnet_deeplab_backbone, got {out_features}")
    deform_on_per_stage = list(r.DEFORM_ON_PER_STAGE)
    if len(deform_on_per_stage) != 4:
        raise ValueError(f"MODEL.RESNETS.DEFORM_ON_PER_STAGE needs 4 values (res2..res5), got {deform_on_per_stage}")
    num_blocks_per_stage = _NUM_BLOCKS_PER_STAGE[depth]
    multi_grid = list(r.RES5_MULTI_GRID)
    if len(multi_grid) != num_blocks_per_stage[3]:
        raise ValueError(f"MODEL.RESNETS.RES5_MULTI_GRID needs one value per res5 block "
                         f"({num_blocks_per_stage[3]}), got {multi_grid}")

    # build no stage after the last output: unused parameters waste memory and break DDP
    num_stages = max(_STAGE_INDEX[f] for f in out_features) - 1
    dilation_per_stage = [1, 1, res4_dilation, res5_dilation]
    stages = []
    for idx, stage_kwargs in enumerate(resnet_stage_kwargs(r, num_blocks_per_stage[:num_stages], dilation_per_stage)):
        if idx == 3:  # res5
            stage_kwargs["dilation_per_block"] = [res5_dilation * grid for grid in multi_grid]
        else:
            stage_kwargs["dilation"] = dilation_per_stage[idx]
        stage_kwargs.update(bottleneck_block_kwargs(r, deform_on_per_stage[idx]))
        stages.append(ResNet.make_stage(**stage_kwargs))
    return ResNet(stem, stages, out_features=out_features, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)
