"""MViTv2 (:paper:`mvitv2`): a multiscale ViT with pooling attention (query, key and value
pooled by depthwise convolutions), residual pooling, decomposed relative positions and hybrid
window attention, as detectron2 builds it (``detectron2.modeling.backbone.mvit``; same module,
argument and parameter names)::

    mvit = MViT(embed_dim=96, depth=10, num_heads=1, last_block_indexes=(0, 2, 7, 9))
    mvit(torch.rand(1, 3, 224, 224))["scale5"].shape   # (1, 768, 7, 7)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

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
from det.backbones.vit.vit import _init_vit_weights
from det.core.modeling.backbone import Backbone

__all__ = ["MViT", "MultiScaleAttention", "MultiScaleBlock", "attention_pool"]


def attention_pool(x: torch.Tensor, pool: nn.Module, norm: nn.Module | None = None) -> torch.Tensor:
    """Apply a spatial ``pool`` (a channels-first module) to (B, H, W, C) tokens, then ``norm``."""
    x = pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    if norm is not None:
        x = norm(x)
    return x


class MultiScaleAttention(nn.Module):
    """Pooling attention: q is pooled with stride ``stride_q``, k and v with ``stride_kv``
    (depthwise convs ``pool_q/k/v``, each followed by ``norm_q/k/v``); with
    ``residual_pooling`` the pooled q is added to the attention output."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, qkv_bias: bool = True,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, pool_kernel: Sequence[int] = (3, 3),
                 stride_q: int = 1, stride_kv: int = 1, residual_pooling: bool = True, window_size: int = 0,
                 use_rel_pos: bool = False, rel_pos_zero_init: bool = True,
                 input_size: Sequence[int] | None = None):
        """
        Args:
            dim, dim_out: input and output channels.
            num_heads: attention heads (``dim_out`` must be a multiple).
            qkv_bias: learn a bias for query, key and value.
            norm_layer: norm after each pooling.
            pool_kernel: kernel of the pooling convs.
            stride_q, stride_kv: pooling strides of the query and of key/value.
            residual_pooling: add the pooled query to the output.
            window_size: attend within windows of this size (before pooling); 0 = global.
            use_rel_pos: add decomposed relative position embeddings.
            rel_pos_zero_init: start the relative position tables at zero.
            input_size: (H, W) token grid of the input (square); sizes the tables.
        """
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"MultiScaleAttention: dim_out={dim_out} is not a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        head_dim = dim_out // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim_out * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim_out, dim_out)

        pool_padding = [k // 2 for k in pool_kernel]
        dim_conv = dim_out // num_heads

        def pool(stride: int) -> nn.Conv2d:
            return nn.Conv2d(dim_conv, dim_conv, tuple(pool_kernel), stride=stride, padding=tuple(pool_padding),
                             groups=dim_conv, bias=False)

        self.pool_q = pool(stride_q)
        self.norm_q = norm_layer(dim_conv)
        self.pool_k = pool(stride_kv)
        self.norm_k = norm_layer(dim_conv)
        self.pool_v = pool(stride_kv)
        self.norm_v = norm_layer(dim_conv)

        self.window_size = window_size
        if window_size:
            self.q_win_size = window_size // stride_q
            self.kv_win_size = window_size // stride_kv
        self.residual_pooling = residual_pooling

        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None or input_size[0] != input_size[1]:
                raise ValueError(f"MultiScaleAttention with use_rel_pos needs a square input_size, got {input_size}")
            size = input_size[0]
            rel_dim = 2 * max(size // stride_q, size // stride_kv) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(rel_dim, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(rel_dim, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        # (3, B, heads, H, W, head_dim) -> three (B * heads, H, W, head_dim)
        qkv = self.qkv(x).reshape(B, H, W, 3, self.num_heads, -1).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv.reshape(3, B * self.num_heads, H, W, -1).unbind(0)
        q = attention_pool(q, self.pool_q, self.norm_q)
        k = attention_pool(k, self.pool_k, self.norm_k)
        v = attention_pool(v, self.pool_v, self.norm_v)

        ori_q = q
        if self.window_size:
            q, q_hw_pad = window_partition(q, self.q_win_size)
            k, _ = window_partition(k, self.kv_win_size)
            v, _ = window_partition(v, self.kv_win_size)
            q_hw = (self.q_win_size, self.q_win_size)
            kv_hw = (self.kv_win_size, self.kv_win_size)
        else:
            q_hw = (q.shape[1], q.shape[2])
            kv_hw = (k.shape[1], k.shape[2])
        q = q.reshape(q.shape[0], q_hw[0] * q_hw[1], -1)
        k = k.reshape(k.shape[0], kv_hw[0] * kv_hw[1], -1)
        v = v.reshape(v.shape[0], kv_hw[0] * kv_hw[1], -1)

        rel_pos = (self.rel_pos_h, self.rel_pos_w) if self.use_rel_pos else None
        x = attention(q, k, v, self.scale, rel_pos, q_hw, kv_hw)
        x = x.view(x.shape[0], q_hw[0], q_hw[1], -1)
        if self.window_size:
            x = window_unpartition(x, self.q_win_size, q_hw_pad, (ori_q.shape[1], ori_q.shape[2]))
        if self.residual_pooling:
            x = x + ori_q

        H, W = x.shape[1], x.shape[2]
        x = x.view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


class MultiScaleBlock(nn.Module):
    """An MViTv2 block: pooling attention + MLP (pre-norm); the shortcut is projected (``proj``)
    when the channels change and max-pooled (``pool_skip``) when ``stride_q > 1``."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 act_layer: Callable[[], nn.Module] = nn.GELU, qkv_pool_kernel: Sequence[int] = (3, 3),
                 stride_q: int = 1, stride_kv: int = 1, residual_pooling: bool = True, window_size: int = 0,
                 use_rel_pos: bool = False, rel_pos_zero_init: bool = True,
                 input_size: Sequence[int] | None = None):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = MultiScaleAttention(
            dim, dim_out, num_heads=num_heads, qkv_bias=qkv_bias, norm_layer=norm_layer, pool_kernel=qkv_pool_kernel,
            stride_q=stride_q, stride_kv=stride_kv, residual_pooling=residual_pooling, window_size=window_size,
            use_rel_pos=use_rel_pos, rel_pos_zero_init=rel_pos_zero_init, input_size=input_size,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim_out)
        self.mlp = Mlp(in_features=dim_out, hidden_features=int(dim_out * mlp_ratio), out_features=dim_out,
                       act_layer=act_layer)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)
        if stride_q > 1:
            kernel_skip = stride_q + 1
            self.pool_skip = nn.MaxPool2d(kernel_skip, stride_q, int(kernel_skip // 2), ceil_mode=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        x_block = self.attn(x_norm)
        if hasattr(self, "proj"):
            x = self.proj(x_norm)
        if hasattr(self, "pool_skip"):
            x = attention_pool(x, self.pool_skip)
        x = x + self.drop_path(x_block)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class MViT(Backbone):
    """Multiscale Vision Transformer backbone (MViTv2).

    Invariant: stage ``k`` (2..5) ends at block ``last_block_indexes[k - 2]``; its output
    ``scale{k}`` (normalised by ``scale{k}_norm``) has ``embed_dim * 2**(k - 2)`` channels and stride
    ``patch_stride * 2**(k - 2)``. The first block of a stage pools q with stride 2 and doubles
    channels and heads; key/value strides start at ``adaptive_kv_stride`` and halve per stage
    (down to 1), doubled on the last blocks of stages 3 and 4; stage 2 uses window attention
    (``adaptive_window_size``, halved per stage), the last blocks of stages 3-5 attend globally.

        mvit = MViT(embed_dim=96, depth=10, num_heads=1, last_block_indexes=(0, 2, 7, 9))
    """

    def __init__(self, img_size: int = 224, patch_kernel: Sequence[int] = (7, 7),
                 patch_stride: Sequence[int] = (4, 4), patch_padding: Sequence[int] = (3, 3),
                 in_chans: int = 3, embed_dim: int = 96, depth: int = 16, num_heads: int = 1,
                 last_block_indexes: Sequence[int] = (0, 2, 11, 15), qkv_pool_kernel: Sequence[int] = (3, 3),
                 adaptive_kv_stride: int = 4, adaptive_window_size: int = 56, residual_pooling: bool = True,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 act_layer: Callable[[], nn.Module] = nn.GELU, use_abs_pos: bool = False,
                 use_rel_pos: bool = True, rel_pos_zero_init: bool = True, use_act_checkpoint: bool = False,
                 pretrain_img_size: int = 224, pretrain_use_cls_token: bool = True,
                 out_features: Sequence[str] = ("scale2", "scale3", "scale4", "scale5")):
        """
        Args:
            img_size: input image size (sizes the relative position tables).
            patch_kernel, patch_stride, patch_padding: the patch-embedding convolution.
            in_chans: input image channels.
            embed_dim: channels of stage 2 (doubled per stage).
            depth: number of blocks.
            num_heads: heads of stage 2 (doubled per stage).
            last_block_indexes: index of the last block of each of the 4 stages.
            qkv_pool_kernel: kernel of the q/k/v pooling convs.
            adaptive_kv_stride: key/value pooling stride of stage 2.
            adaptive_window_size: window size of stage 2's window attention.
            residual_pooling: add the pooled query to the attention output.
            mlp_ratio: MLP hidden channels / block channels.
            qkv_bias: learn a bias for query, key and value.
            drop_path_rate: stochastic depth of the last block (linear from 0).
            norm_layer: norm of the blocks and outputs (the configs use LayerNorm with eps 1e-6).
            act_layer: activation of the MLPs.
            use_abs_pos: add absolute position embeddings ``pos_embed``.
            use_rel_pos: add relative position embeddings in every attention.
            rel_pos_zero_init: start the relative position tables at zero.
            use_act_checkpoint: recompute blocks in backward (activation checkpointing).
            pretrain_img_size: image size of pre-training (sizes ``pos_embed``).
            pretrain_use_cls_token: ``pos_embed`` has a class-token entry.
            out_features: which of "scale2".."scale5" to return.
        """
        super().__init__()
        if len(last_block_indexes) != 4:
            raise ValueError(f"MViT last_block_indexes must name the last block of 4 stages, got {tuple(last_block_indexes)}")
        unknown = [f for f in out_features if f not in ("scale2", "scale3", "scale4", "scale5")]
        if unknown:
            raise ValueError(f"MViT out_features {unknown} are not among scale2, scale3, scale4, scale5")
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = PatchEmbed(
            kernel_size=tuple(patch_kernel), stride=tuple(patch_stride), padding=tuple(patch_padding),
            in_chans=in_chans, embed_dim=embed_dim,
        )
        self.pos_embed = abs_pos_embed(use_abs_pos, pretrain_img_size, (patch_stride[0], patch_stride[1]),
                                       pretrain_use_cls_token, embed_dim)

        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # cpu: also under a meta default device
        dim_out = embed_dim
        stride_kv = adaptive_kv_stride
        window_size = adaptive_window_size
        input_size = [img_size // patch_stride[0], img_size // patch_stride[1]]
        stage = 2
        stride = patch_stride[0]
        self._out_feature_strides: dict[str, int] = {}
        self._out_feature_channels: dict[str, int] = {}
        self.blocks = nn.ModuleList()
        for i in range(depth):
            # key/value stride doubles on the last blocks of stages 3 and 4
            block_stride_kv = stride_kv * 2 if i in (last_block_indexes[1], last_block_indexes[2]) else stride_kv
            # hybrid window attention: the last blocks of stages 3-5 attend globally
            block_window = 0 if i in last_block_indexes[1:] else window_size
            self.blocks.append(
                MultiScaleBlock(
                    dim=embed_dim, dim_out=dim_out, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                    drop_path=dpr[i], norm_layer=norm_layer, act_layer=act_layer, qkv_pool_kernel=qkv_pool_kernel,
                    stride_q=2 if i - 1 in last_block_indexes else 1, stride_kv=block_stride_kv,
                    residual_pooling=residual_pooling, window_size=block_window, use_rel_pos=use_rel_pos,
                    rel_pos_zero_init=rel_pos_zero_init, input_size=input_size,
                )
            )
            embed_dim = dim_out
            if i in last_block_indexes:
                name = f"scale{stage}"
                if name in out_features:
                    self._out_feature_channels[name] = dim_out
                    self._out_feature_strides[name] = stride
                    self.add_module(f"{name}_norm", norm_layer(dim_out))
                dim_out *= 2
                num_heads *= 2
                stride_kv = max(stride_kv // 2, 1)
                stride *= 2
                stage += 1
            if i - 1 in last_block_indexes:
                window_size //= 2
                input_size = [s // 2 for s in input_size]

        self._out_features = list(out_features)
        self._last_block_indexes = tuple(last_block_indexes)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_vit_weights)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = embed_patches(x, self.patch_embed, self.pos_embed, self.pretrain_use_cls_token, "MViT")
        outputs = {}
        stage = 2
        for i, blk in enumerate(self.blocks):
            x = run_block(blk, x, self.use_act_checkpoint and self.training)
            if i in self._last_block_indexes:
                name = f"scale{stage}"
                if name in self._out_features:
                    outputs[name] = getattr(self, f"{name}_norm")(x).permute(0, 3, 1, 2)
                stage += 1
        return outputs
