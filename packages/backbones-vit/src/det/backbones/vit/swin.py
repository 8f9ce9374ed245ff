"""Swin Transformer (:paper:`swin`) as detectron2 builds it for ViTDet's comparison configs
(``detectron2.modeling.backbone.swin``, itself the Swin authors' detection code): shifted-window
attention with a relative position bias table, patch merging between stages, outputs ``p0``..``p3``
at strides 4..32. Module, argument, parameter and buffer names are detectron2's::

    swin = SwinTransformer(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
    swin(torch.rand(1, 3, 224, 224))["p3"].shape   # (1, 768, 7, 7)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from det.backbones.vit.utils import DropPath, Mlp, attention, reference_attention
from det.backbones.vit.utils import window_partition as _padded_window_partition
from det.backbones.vit.utils import window_unpartition as _window_unpartition
from det.backbones.vit.vit import _init_vit_weights
from det.core.modeling.backbone import Backbone

__all__ = [
    "BasicLayer",
    "Mlp",
    "PatchEmbed",
    "PatchMerging",
    "SwinTransformer",
    "SwinTransformerBlock",
    "WindowAttention",
    "window_partition",
    "window_reverse",
]


def _pair(x: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(x, int):
        return (x, x)
    a, b = x
    return (int(a), int(b))


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ``window_size`` -> (B * num_windows, ws, ws, C)."""
    return _padded_window_partition(x, window_size)[0]


def window_reverse(windows: torch.Tensor, window_size: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * num_windows, ws, ws, C) -> (B, H, W, C)."""
    return _window_unpartition(windows, window_size, (H, W), (H, W))


class WindowAttention(nn.Module):
    """Multi-head self-attention within a window, plus a learned bias per relative offset
    (``relative_position_bias_table`` ((2Wh-1)(2Ww-1), heads), looked up through the buffer
    ``relative_position_index`` (Wh*Ww, Wh*Ww)) and an optional shifted-window mask."""

    def __init__(self, dim: int, window_size: tuple[int, int], num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim**-0.5
        Wh, Ww = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * Wh - 1) * (2 * Ww - 1), num_heads))
        # index of token j's offset from token i: (dh + Wh - 1) * (2Ww - 1) + (dw + Ww - 1)
        coords = torch.stack(torch.meshgrid(torch.arange(Wh), torch.arange(Ww), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        relative_position_index = (relative[..., 0] + Wh - 1) * (2 * Ww - 1) + (relative[..., 1] + Ww - 1)
        self.register_buffer("relative_position_index", relative_position_index)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.softmax = nn.Softmax(dim=-1)  # kept for detectron2's module tree; attention fuses it

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            x: (num_windows * B, N, C) tokens of the windows, N = Wh * Ww.
            mask: (num_windows, N, N) additive mask (0 or -100) or None.
        """
        B_, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(N, N, -1).permute(2, 0, 1)  # (heads, N, N)
        if mask is not None:
            nW = mask.shape[0]
            bias = bias[None, None] + mask[None, :, None].to(bias.dtype)  # (1, nW, heads, N, N)
            q, k, v = (t.reshape(B_ // nW, nW, self.num_heads, N, -1) for t in (q, k, v))
        if self.training and self.attn_drop.p > 0:
            out = reference_attention(q, k, v, self.scale, bias=bias, dropout=self.attn_drop)
        else:
            out = attention(q, k, v, self.scale, bias=bias)
        x = out.reshape(B_, self.num_heads, N, -1).transpose(1, 2).reshape(B_, N, C)
        return self.proj_drop(self.proj(x))


class SwinTransformerBlock(nn.Module):
    """A Swin block: (shifted) window attention + MLP, pre-norm. ``H`` and ``W`` (the token
    grid) are set by :class:`BasicLayer` before each call."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 act_layer: Callable[[], nn.Module] = nn.GELU,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm):
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"SwinTransformerBlock shift_size={shift_size} must be in [0, window_size={window_size})")
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.mlp_ratio = mlp_ratio
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(
            dim, window_size=_pair(window_size), num_heads=num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
            attn_drop=attn_drop, proj_drop=drop,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.H: int | None = None
        self.W: int | None = None

    def forward(self, x: torch.Tensor, mask_matrix: torch.Tensor | None) -> torch.Tensor:
        B, L, C = x.shape
        H, W = self.H, self.W
        if H is None or W is None or L != H * W:
            raise ValueError(f"SwinTransformerBlock got {L} tokens for a {H}x{W} grid (set H and W first)")
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        ws = self.window_size
        pad_r = (ws - W % ws) % ws
        pad_b = (ws - H % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        Hp, Wp = x.shape[1], x.shape[2]
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            attn_mask = mask_matrix
        else:
            attn_mask = None
        windows = window_partition(x, ws).view(-1, ws * ws, C)
        windows = self.attn(windows, mask=attn_mask).view(-1, ws, ws, C)
        x = window_reverse(windows, ws, Hp, Wp)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        if pad_r > 0 or pad_b > 0:
            x = x[:, :H, :W, :].contiguous()
        x = shortcut + self.drop_path(x.view(B, H * W, C))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (4C channels), normalise (``norm``) and project to 2C
    (``reduction``, no bias): halves the grid, odd sizes padded."""

    def __init__(self, dim: int, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm):
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = norm_layer(4 * dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, L, C = x.shape
        if L != H * W:
            raise ValueError(f"PatchMerging got {L} tokens for a {H}x{W} grid")
        x = x.view(B, H, W, C)
        if H % 2 == 1 or W % 2 == 1:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    """One Swin stage: ``depth`` blocks alternating plain and shifted windows (shift
    ``window_size // 2``), then an optional ``downsample`` (PatchMerging)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int = 7, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float | Sequence[float] = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 downsample: Callable[..., nn.Module] | None = None, use_checkpoint: bool = False):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.depth = depth
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim=dim,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop,
                attn_drop=attn_drop,
                drop_path=drop_path[i] if isinstance(drop_path, Sequence) else drop_path,
                norm_layer=norm_layer,
            )
            for i in range(depth)
        )
        self.downsample = downsample(dim=dim, norm_layer=norm_layer) if downsample is not None else None

    def _shift_mask(self, H: int, W: int, device: torch.device) -> torch.Tensor:
        """(num_windows, ws*ws, ws*ws): -100 between tokens from different regions of the
        cyclically shifted grid, 0 within a region."""
        ws, shift = self.window_size, self.shift_size
        Hp = -(-H // ws) * ws
        Wp = -(-W // ws) * ws
        img_mask = torch.zeros((1, Hp, Wp, 1), device=device)
        cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
        region = 0
        for h in cuts:
            for w in cuts:
                img_mask[:, h, w, :] = region
                region += 1
        mask_windows = window_partition(img_mask, ws).view(-1, ws * ws)
        attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
        return attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)

    def forward(self, x: torch.Tensor, H: int, W: int):
        """(B, H*W, C) -> (x, H, W, x_down, Wh, Ww): the stage output and the downsampled one."""
        attn_mask = self._shift_mask(H, W, x.device)
        for blk in self.blocks:
            blk.H, blk.W = H, W
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(blk, x, attn_mask, use_reentrant=False)
            else:
                x = blk(x, attn_mask)
        if self.downsample is not None:
            return x, H, W, self.downsample(x, H, W), (H + 1) // 2, (W + 1) // 2
        return x, H, W, x, H, W


class PatchEmbed(nn.Module):
    """Swin's patch embedding: pads the image to a multiple of ``patch_size``, a strided conv
    ``proj``, and an optional ``norm``; output (B, C, H', W')."""

    def __init__(self, patch_size: int | Sequence[int] = 4, in_chans: int = 3, embed_dim: int = 96,
                 norm_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.patch_size = _pair(patch_size)
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, H, W = x.shape
        ph, pw = self.patch_size
        if W % pw:
            x = F.pad(x, (0, pw - W % pw))
        if H % ph:
            x = F.pad(x, (0, 0, 0, ph - H % ph))
        x = self.proj(x)
        if self.norm is not None:
            Wh, Ww = x.shape[2], x.shape[3]
            x = self.norm(x.flatten(2).transpose(1, 2))
            x = x.transpose(1, 2).reshape(-1, self.embed_dim, Wh, Ww)
        return x


class SwinTransformer(Backbone):
    """Swin Transformer backbone.

    Invariant: stage ``i`` (``layers[i]``) has ``embed_dim * 2**i`` channels and stride
    ``4 * 2**i`` (with the default ``patch_size`` 4); for each ``i`` in ``out_indices`` the
    output ``p{i}`` is that stage normalised by ``norm{i}``. ``frozen_stages`` >= 0 freezes the
    patch embedding, >= 1 also the absolute position embedding, >= 2 also the first
    ``frozen_stages - 1`` stages.

        swin = SwinTransformer(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
        swin.output_shape()["p1"]   # ShapeSpec(channels=256, stride=8)
    """

    def __init__(self, pretrain_img_size: int | Sequence[int] = 224, patch_size: int | Sequence[int] = 4,
                 in_chans: int = 3, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 7, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.2,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, ape: bool = False,
                 patch_norm: bool = True, out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 use_checkpoint: bool = False):
        """
        Args:
            pretrain_img_size: image size of pre-training (sizes ``absolute_pos_embed``).
            patch_size: patch size.
            in_chans: input image channels.
            embed_dim: channels of the first stage (doubled per stage).
            depths: blocks per stage.
            num_heads: attention heads per stage.
            window_size: attention window.
            mlp_ratio: MLP hidden channels / block channels.
            qkv_bias: learn a bias for query, key and value.
            qk_scale: attention scale instead of ``head_dim ** -0.5``.
            drop_rate: dropout after the embedding, in MLPs and after attention projections.
            attn_drop_rate: dropout of attention weights.
            drop_path_rate: stochastic depth of the last block (linear from 0).
            norm_layer: norm of blocks, merging and outputs.
            ape: learn an absolute position embedding (interpolated to the input).
            patch_norm: normalise the patch embedding.
            out_indices: stages to output, as ``p{i}``.
            frozen_stages: -1 trains everything; see the class invariant.
            use_checkpoint: recompute blocks in backward (activation checkpointing).
        """
        super().__init__()
        if len(num_heads) != len(depths):
            raise ValueError(f"SwinTransformer needs one num_heads per stage: depths={tuple(depths)}, num_heads={tuple(num_heads)}")
        bad = [i for i in out_indices if not 0 <= i < len(depths)]
        if bad:
            raise ValueError(f"SwinTransformer out_indices {bad} are not stages 0..{len(depths) - 1}")
        self.pretrain_img_size = pretrain_img_size
        self.num_layers = len(depths)
        self.embed_dim = embed_dim
        self.ape = ape
        self.patch_norm = patch_norm
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.patch_embed = PatchEmbed(
            patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, norm_layer=norm_layer if patch_norm else None
        )
        if ape:
            img = _pair(pretrain_img_size)
            patch = _pair(patch_size)
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, img[0] // patch[0], img[1] // patch[1]))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(p=drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList(
            BasicLayer(
                dim=int(embed_dim * 2**i), depth=depths[i], num_heads=num_heads[i], window_size=window_size,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate,
                drop_path=dpr[sum(depths[:i]) : sum(depths[: i + 1])], norm_layer=norm_layer,
                downsample=PatchMerging if i < self.num_layers - 1 else None, use_checkpoint=use_checkpoint,
            )
            for i in range(self.num_layers)
        )
        self.num_features = [int(embed_dim * 2**i) for i in range(self.num_layers)]
        for i in self.out_indices:
            self.add_module(f"norm{i}", norm_layer(self.num_features[i]))

        self._freeze_stages()
        stride0 = _pair(patch_size)[0]
        self._out_features = [f"p{i}" for i in self.out_indices]
        self._out_feature_channels = {f"p{i}": self.embed_dim * 2**i for i in self.out_indices}
        self._out_feature_strides = {f"p{i}": stride0 * 2**i for i in self.out_indices}
        self._size_divisibility = stride0 * 2 ** (self.num_layers - 1)
        self.apply(_init_vit_weights)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.patch_embed.eval()
            for param in self.patch_embed.parameters():
                param.requires_grad = False
        if self.frozen_stages >= 1 and self.ape:
            self.absolute_pos_embed.requires_grad = False
        if self.frozen_stages >= 2:
            self.pos_drop.eval()
            for i in range(self.frozen_stages - 1):
                layer = self.layers[i]
                layer.eval()
                for param in layer.parameters():
                    param.requires_grad = False

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"SwinTransformer takes (N, C, H, W) images, got shape {tuple(x.shape)}")
        x = self.patch_embed(x)
        Wh, Ww = x.shape[2], x.shape[3]
        if self.ape:
            pos = F.interpolate(self.absolute_pos_embed, size=(Wh, Ww), mode="bicubic")
            x = x + pos
        x = self.pos_drop(x.flatten(2).transpose(1, 2))
        outs = {}
        for i, layer in enumerate(self.layers):
            x_out, H, W, x, Wh, Ww = layer(x, Wh, Ww)
            if i in self.out_indices:
                x_out = getattr(self, f"norm{i}")(x_out)
                outs[f"p{i}"] = x_out.view(-1, H, W, self.num_features[i]).permute(0, 3, 1, 2).contiguous()
        return outs
