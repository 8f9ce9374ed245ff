"""ViTDet (:paper:`vitdet`): a plain Vision Transformer with window and global attention blocks,
and the SimpleFeaturePyramid that turns its single stride-16 map into p2..p6.

Module, argument and parameter names are detectron2's (``detectron2.modeling.backbone.vit``), so
its ViTDet checkpoints load with ``strict=True``::

    net = ViT(embed_dim=768, depth=12, num_heads=12, window_size=14,
              window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10], use_rel_pos=True)
    sfp = SimpleFeaturePyramid(net, "last_feat", 256, (4.0, 2.0, 1.0, 0.5), top_block=LastLevelMaxPool())
    sfp(torch.rand(1, 3, 1024, 1024))   # {"p2": (1, 256, 256, 256), ..., "p6": (1, 256, 16, 16)}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from det.backbones.fpn import _assert_strides_are_log2_contiguous
from det.backbones.vit.utils import (
    DropPath,
    Mlp,
    PatchEmbed,
    abs_pos_embed,
    attention,
    embed_patches,
    run_block,
    window_partition,
    window_unpartition,
)
from det.core.layers import CNNBlockBase, Conv2d, get_norm
from det.core.layers.weight_init import c2_msra_fill
from det.core.modeling.backbone import Backbone

__all__ = ["SimpleFeaturePyramid", "ViT", "get_vit_lr_decay_rate"]


def _init_vit_weights(m: nn.Module) -> None:
    """ViT/MViT/Swin initialisation: truncated-normal (std 0.02) linear weights, zero biases,
    LayerNorm weight 1 and bias 0."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) token grid, with optional decomposed
    relative position embeddings ``rel_pos_h`` (2 * H - 1, head_dim) and ``rel_pos_w``."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, use_rel_pos: bool = False,
                 rel_pos_zero_init: bool = True, input_size: tuple[int, int] | None = None):
        """
        Args:
            dim: input channels.
            num_heads: attention heads (``dim`` must be a multiple).
            qkv_bias: learn a bias for query, key and value.
            use_rel_pos: add relative position embeddings to the attention logits.
            rel_pos_zero_init: start the relative position tables at zero (else trunc-normal).
            input_size: (H, W) of the token grid, sizing the relative position tables.
        """
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim={dim} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None:
                raise ValueError("Attention with use_rel_pos=True needs input_size")
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        # (3, B, heads, H * W, head_dim)
        q, k, v = self.qkv(x).reshape(B, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        rel_pos = (self.rel_pos_h, self.rel_pos_w) if self.use_rel_pos else None
        x = attention(q, k, v, self.scale, rel_pos, (H, W), (H, W))
        x = x.permute(0, 2, 1, 3).reshape(B, H, W, -1)
        return self.proj(x)


class ResBottleneckBlock(CNNBlockBase):
    """1x1 -> 3x3 -> 1x1 convolutions with LayerNorm and a residual, no final activation (ViTDet's
    optional "residual propagation" block between transformer blocks). The last norm starts at
    zero, so the block starts as the identity."""

    def __init__(self, in_channels: int, out_channels: int, bottleneck_channels: int, norm: str = "LN",
                 act_layer: Callable[[], nn.Module] = nn.GELU):
        super().__init__(in_channels, out_channels, 1)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, 1, bias=False)
        self.norm1 = get_norm(norm, bottleneck_channels)
        self.act1 = act_layer()
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, 3, padding=1, bias=False)
        self.norm2 = get_norm(norm, bottleneck_channels)
        self.act2 = act_layer()
        self.conv3 = Conv2d(bottleneck_channels, out_channels, 1, bias=False)
        self.norm3 = get_norm(norm, out_channels)
        for layer in (self.conv1, self.conv2, self.conv3):
            c2_msra_fill(layer)
        for norm_layer in (self.norm1, self.norm2):
            norm_layer.weight.data.fill_(1.0)
            norm_layer.bias.data.zero_()
        self.norm3.weight.data.zero_()
        self.norm3.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.children():
            out = layer(out)
        return x + out


class Block(nn.Module):
    """A transformer block (attention + MLP, pre-norm) with window attention when
    ``window_size > 0`` and an optional :class:`ResBottleneckBlock` after it."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 act_layer: Callable[[], nn.Module] = nn.GELU, use_rel_pos: bool = False,
                 rel_pos_zero_init: bool = True, window_size: int = 0, use_residual_block: bool = False,
                 input_size: tuple[int, int] | None = None):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            use_rel_pos=use_rel_pos,
            rel_pos_zero_init=rel_pos_zero_init,
            input_size=input_size if window_size == 0 else (window_size, window_size),
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer)
        self.window_size = window_size
        self.use_residual_block = use_residual_block
        if use_residual_block:
            self.residual = ResBottleneckBlock(
                in_channels=dim, out_channels=dim, bottleneck_channels=dim // 2, norm="LN", act_layer=act_layer
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
            x = self.attn(x)
            x = window_unpartition(x, self.window_size, pad_hw, (H, W))
        else:
            x = self.attn(x)
        x = shortcut + self.drop_path(x)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        if self.use_residual_block:
            x = self.residual(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x


class ViT(Backbone):
    """The plain ViT backbone of ViTDet: patch embedding, ``depth`` blocks, one output map.

    Invariant: the output ``out_feature`` has ``embed_dim`` channels and stride ``patch_size``;
    blocks in ``window_block_indexes`` attend within ``window_size`` windows (the grid is padded
    to a multiple), the others globally; ``pos_embed`` keeps its pre-training grid
    (``pretrain_img_size // patch_size`` squared, plus a class token) and is resized bicubically
    to the input's grid.

        vit = ViT(img_size=224, embed_dim=192, depth=4, num_heads=3, window_size=7,
                  window_block_indexes=[0, 2], use_rel_pos=True)
        vit(torch.rand(1, 3, 224, 224))["last_feat"].shape   # (1, 192, 14, 14)
    """

    def __init__(self, img_size: int = 1024, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 act_layer: Callable[[], nn.Module] = nn.GELU, use_abs_pos: bool = True,
                 use_rel_pos: bool = False, rel_pos_zero_init: bool = True, window_size: int = 0,
                 window_block_indexes: Sequence[int] = (), residual_block_indexes: Sequence[int] = (),
                 use_act_checkpoint: bool = False, pretrain_img_size: int = 224,
                 pretrain_use_cls_token: bool = True, out_feature: str = "last_feat"):
        """
        Args:
            img_size: input image size; sizes the global blocks' relative position tables.
            patch_size: patch size (the output stride).
            in_chans: input image channels.
            embed_dim: token channels.
            depth: number of blocks.
            num_heads: attention heads of every block.
            mlp_ratio: MLP hidden channels / ``embed_dim``.
            qkv_bias: learn a bias for query, key and value.
            drop_path_rate: stochastic depth of the last block (linear from 0).
            norm_layer: ``channels -> module`` norm of the blocks (ViTDet: LayerNorm, eps 1e-6).
            act_layer: activation of the MLPs.
            use_abs_pos: add absolute position embeddings ``pos_embed``.
            use_rel_pos: add relative position embeddings in every attention.
            rel_pos_zero_init: start the relative position tables at zero.
            window_size: window of the window-attention blocks.
            window_block_indexes: blocks that attend within windows.
            residual_block_indexes: blocks followed by a convolutional residual block.
            use_act_checkpoint: recompute blocks in backward (activation checkpointing) to save memory.
            pretrain_img_size: image size of pre-training (sizes ``pos_embed``).
            pretrain_use_cls_token: ``pos_embed`` has a class-token entry (dropped in use).
            out_feature: name of the output feature.
        """
        super().__init__()
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = PatchEmbed(
            kernel_size=(patch_size, patch_size), stride=(patch_size, patch_size), in_chans=in_chans,
            embed_dim=embed_dim,
        )
        self.pos_embed = abs_pos_embed(use_abs_pos, pretrain_img_size, (patch_size, patch_size),
                                       pretrain_use_cls_token, embed_dim)

        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # cpu: also under a meta default device
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=dpr[i],
                norm_layer=norm_layer,
                act_layer=act_layer,
                use_rel_pos=use_rel_pos,
                rel_pos_zero_init=rel_pos_zero_init,
                window_size=window_size if i in window_block_indexes else 0,
                use_residual_block=i in residual_block_indexes,
                input_size=(img_size // patch_size, img_size // patch_size),
            )
            for i in range(depth)
        )
        self._out_feature_channels = {out_feature: embed_dim}
        self._out_feature_strides = {out_feature: patch_size}
        self._out_features = [out_feature]
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_vit_weights)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = embed_patches(x, self.patch_embed, self.pos_embed, self.pretrain_use_cls_token, "ViT")
        for blk in self.blocks:
            x = run_block(blk, x, self.use_act_checkpoint and self.training)
        return {self._out_features[0]: x.permute(0, 3, 1, 2)}


class SimpleFeaturePyramid(Backbone):
    """ViTDet's simple feature pyramid: one map of ``net`` rescaled by each of
    ``scale_factors`` (4: two stride-2 deconvolutions, 2: one, 1: none, 0.5: max-pool), each
    followed by a 1x1 and a 3x3 convolution with ``norm``; ``top_block`` adds coarser levels.

    Invariant: outputs are ``p{k}`` with stride ``2**k`` (the scale stage modules are
    ``simfp_{k}``), all with ``out_channels`` channels, high to low resolution; the wrapped
    network is ``net``.

        sfp = SimpleFeaturePyramid(vit, "last_feat", 256, (4.0, 2.0, 1.0, 0.5),
                                   top_block=LastLevelMaxPool(), square_pad=1024)
    """

    def __init__(self, net: Backbone, in_feature: str, out_channels: int, scale_factors: Sequence[float],
                 top_block: nn.Module | None = None, norm: str = "LN", square_pad: int = 0):
        """
        Args:
            net: a :class:`Backbone` (usually :class:`ViT`).
            in_feature: the output of ``net`` to build on.
            out_channels: channels of every pyramid level.
            scale_factors: rescaling per level, from 4.0, 2.0, 1.0 and 0.5, giving contiguous
                power-of-two strides.
            top_block: optional extra levels from ``top_block.in_feature`` (e.g. LastLevelMaxPool
                on "p5"); has ``num_levels`` and ``in_feature``.
            norm: norm of the convolutions (see ``det.core.layers.get_norm``; "" = bias, no norm).
            square_pad: if > 0, inputs are padded to this square size.
        """
        super().__init__()
        if not isinstance(net, Backbone):
            raise TypeError(f"SimpleFeaturePyramid's net must be a det Backbone, got {type(net).__name__}")
        input_shapes = net.output_shape()
        if in_feature not in input_shapes:
            raise ValueError(
                f"SimpleFeaturePyramid in_feature {in_feature!r} is not an output of net (it has {sorted(input_shapes)})"
            )
        self.scale_factors = tuple(scale_factors)
        unsupported = [s for s in self.scale_factors if s not in (4.0, 2.0, 1.0, 0.5)]
        if unsupported:
            raise ValueError(
                f"SimpleFeaturePyramid scale_factor={unsupported[0]} is not supported (use 4.0, 2.0, 1.0, 0.5)"
            )
        strides = [int(input_shapes[in_feature].stride / scale) for scale in self.scale_factors]
        _assert_strides_are_log2_contiguous(strides)

        dim = input_shapes[in_feature].channels
        self.stages: list[nn.Sequential] = []
        use_bias = norm == ""
        for idx, scale in enumerate(self.scale_factors):
            out_dim = dim
            layers: list[nn.Module]
            if scale == 4.0:
                layers = [
                    nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
                    # Identity for norm="" keeps the indexes (and checkpoint names) of the next layers
                    get_norm(norm, dim // 2) or nn.Identity(),
                    nn.GELU(),
                    nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
                ]
                out_dim = dim // 4
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)]
                out_dim = dim // 2
            elif scale == 1.0:
                layers = []
            else:  # 0.5
                layers = [nn.MaxPool2d(kernel_size=2, stride=2)]
            layers += [
                Conv2d(out_dim, out_channels, kernel_size=1, bias=use_bias, norm=get_norm(norm, out_channels)),
                Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=use_bias,
                       norm=get_norm(norm, out_channels)),
            ]
            stage_module = nn.Sequential(*layers)
            stage = int(math.log2(strides[idx]))
            self.add_module(f"simfp_{stage}", stage_module)
            self.stages.append(stage_module)

        self.net = net
        self.in_feature = in_feature
        self.top_block = top_block
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if self.top_block is not None:
            top_in = self.top_block.in_feature
            if top_in not in input_shapes and top_in not in self._out_feature_strides:
                raise ValueError(
                    f"SimpleFeaturePyramid top_block reads {top_in!r}, which is neither an output of net "
                    f"({sorted(input_shapes)}) nor a pyramid level ({list(self._out_feature_strides)})"
                )
            for s in range(stage, stage + self.top_block.num_levels):
                self._out_feature_strides[f"p{s + 1}"] = 2 ** (s + 1)
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {k: out_channels for k in self._out_features}
        self._size_divisibility = strides[-1]
        self._square_pad = square_pad

    @property
    def padding_constraints(self) -> dict[str, int]:
        # detectron2 spells the first key "size_divisiblity", so ImageList never reads it and
        # only square_size pads; kept as is, so padding (and outputs) equal detectron2's.
        return {"size_divisiblity": self._size_divisibility, "square_size": self._square_pad}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, C, H, W) images -> {"p2": ..., ..., "p6": ...} from high to low resolution."""
        bottom_up_features = self.net(x)
        features = bottom_up_features[self.in_feature]
        results = [stage(features) for stage in self.stages]
        if self.top_block is not None:
            top_in = self.top_block.in_feature
            if top_in in bottom_up_features:
                top_block_in_feature = bottom_up_features[top_in]
            else:
                top_block_in_feature = results[self._out_features.index(top_in)]
            results.extend(self.top_block(top_block_in_feature))
        return dict(zip(self._out_features, results))


def get_vit_lr_decay_rate(name: str, lr_decay_rate: float = 1.0, num_layers: int = 12) -> float:
    """Layer-wise learning-rate decay of ViTDet: the multiplier of parameter ``name``.

    Parameters of ``backbone``'s patch/position embeddings are layer 0, of block ``i`` layer
    ``i + 1`` (residual conv blocks excepted), everything else layer ``num_layers + 1``; the
    multiplier is ``lr_decay_rate ** (num_layers + 1 - layer)``.

        get_vit_lr_decay_rate("backbone.net.blocks.11.mlp.fc1.weight", 0.7, 12)   # 0.7
    """
    layer_id = num_layers + 1
    if name.startswith("backbone"):
        if ".pos_embed" in name or ".patch_embed" in name:
            layer_id = 0
        elif ".blocks." in name and ".residual." not in name:
            layer_id = int(name[name.find(".blocks.") :].split(".")[2]) + 1
    return lr_decay_rate ** (num_layers + 1 - layer_id)
