"""Pieces shared by ViT, MViT and Swin: windows, position embeddings, patch embedding, MLP,
stochastic depth, and attention through ``torch.nn.functional.scaled_dot_product_attention``.

Names and formulas are detectron2's (``detectron2.modeling.backbone.utils``):
``window_partition`` pads (B, H, W, C) tokens at the bottom/right to a multiple of the window and
cuts them into (B * nWindows, ws, ws, C); ``get_rel_pos`` resizes a relative-position table
linearly to ``2 * max(q, k) - 1`` rows and looks it up at ``q_i * max(k/q, 1) - k_j * max(q/k, 1)
+ (k - 1) * max(q/k, 1)``; ``add_decomposed_rel_pos`` adds MViTv2's decomposed bias
``q . Rh[qh, kh] + q . Rw[qw, kw]`` (unscaled ``q``) to the attention logits.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

__all__ = [
    "DropPath",
    "Mlp",
    "PatchEmbed",
    "abs_pos_embed",
    "add_decomposed_rel_pos",
    "attention",
    "decomposed_rel_pos_bias",
    "embed_patches",
    "get_abs_pos",
    "get_rel_pos",
    "reference_attention",
    "run_block",
    "use_reference_attention",
    "window_partition",
    "window_unpartition",
]

# Largest attention bias (bytes) materialised at once at inference: larger problems run in
# chunks of query rows, so global attention over a 1024 px image (4096 tokens, 12 heads would be
# 805 MB of bias) stays within this budget.
ATTENTION_BIAS_BUDGET = 64 * 2**20


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut (B, H, W, C) tokens into non-overlapping windows, zero-padding bottom and right.

    Returns:
        windows (B * num_windows, window_size, window_size, C) and the padded size (Hp, Wp).
    """
    B, H, W, C = x.shape
    pad_h = (window_size - H % window_size) % window_size
    pad_w = (window_size - W % window_size) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // window_size, window_size, Wp // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C)
    return windows, (Hp, Wp)


def window_unpartition(
    windows: torch.Tensor, window_size: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * num_windows, ws, ws, C) -> (B, H, W, C), the
    padding removed."""
    Hp, Wp = pad_hw
    H, W = hw
    B = windows.shape[0] // ((Hp // window_size) * (Wp // window_size))
    x = windows.view(B, Hp // window_size, Wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, Hp, Wp, -1)
    if Hp > H or Wp > W:
        x = x[:, :H, :W, :].contiguous()
    return x


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative position embeddings (q_size, k_size, C) for one axis, from a table (L, C).

    The table is resized (linear interpolation) to ``2 * max(q_size, k_size) - 1`` rows when its
    length differs; the shorter of q and k has its coordinates scaled to the longer one's.
    """
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != max_rel_dist:
        resized = F.interpolate(
            rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=max_rel_dist, mode="linear"
        )
        rel_pos = resized.reshape(-1, max_rel_dist).permute(1, 0)
    q_scale = max(k_size / q_size, 1.0)
    k_scale = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * q_scale
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * k_scale
    relative_coords = (q_coords - k_coords) + (k_size - 1) * k_scale
    return rel_pos[relative_coords.long()]


def _rel_pos_terms(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, q_size: tuple[int, int],
                   k_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``q`` (..., q_h * q_w, C) -> the height term (..., q_h, q_w, k_h) and the width term
    (..., q_h, q_w, k_w) of the decomposed relative position bias."""
    q_h, q_w = q_size
    k_h, k_w = k_size
    Rh = get_rel_pos(q_h, k_h, rel_pos_h)
    Rw = get_rel_pos(q_w, k_w, rel_pos_w)
    r_q = q.reshape(*q.shape[:-2], q_h, q_w, q.shape[-1])
    rel_h = torch.einsum("...hwc,hkc->...hwk", r_q, Rh)
    rel_w = torch.einsum("...hwc,wkc->...hwk", r_q, Rw)
    return rel_h, rel_w


def add_decomposed_rel_pos(attn: torch.Tensor, q: torch.Tensor, rel_pos_h: torch.Tensor,
                           rel_pos_w: torch.Tensor, q_size: tuple[int, int],
                           k_size: tuple[int, int]) -> torch.Tensor:
    """Add MViTv2's decomposed relative position bias to attention logits.

    Args:
        attn: (B, q_h * q_w, k_h * k_w) logits.
        q: (B, q_h * q_w, C) queries (not scaled).
        rel_pos_h, rel_pos_w: tables (Lh, C) and (Lw, C).
        q_size, k_size: (h, w) of the query and key grids.
    """
    return attn + decomposed_rel_pos_bias(q, rel_pos_h, rel_pos_w, q_size, k_size)


def decomposed_rel_pos_bias(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                            q_size: tuple[int, int], k_size: tuple[int, int]) -> torch.Tensor:
    """The bias ``add_decomposed_rel_pos`` adds: (..., q_h * q_w, k_h * k_w) for ``q`` (..., q_h * q_w, C)."""
    rel_h, rel_w = _rel_pos_terms(q, rel_pos_h, rel_pos_w, q_size, k_size)
    bias = rel_h[..., :, None] + rel_w[..., None, :]
    return bias.reshape(*q.shape[:-1], k_size[0] * k_size[1])


_REFERENCE_ATTENTION = False


@contextlib.contextmanager
def use_reference_attention(enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`attention` runs :func:`reference_attention` (the logits
    materialised, as detectron2 computes them): for comparisons and benchmarks."""
    global _REFERENCE_ATTENTION
    previous, _REFERENCE_ATTENTION = _REFERENCE_ATTENTION, enabled
    try:
        yield
    finally:
        _REFERENCE_ATTENTION = previous


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                        rel_pos: tuple[torch.Tensor, torch.Tensor] | None = None,
                        q_size: tuple[int, int] | None = None, k_size: tuple[int, int] | None = None,
                        bias: torch.Tensor | None = None, dropout: nn.Module | None = None) -> torch.Tensor:
    """:func:`attention` computed step by step: ``(q * scale) @ k^T``, the decomposed relative
    position bias added by :func:`add_decomposed_rel_pos`, ``bias``, softmax, ``dropout``, ``@ v``."""
    attn = (q * scale) @ k.transpose(-2, -1)
    if rel_pos is not None:
        if q_size is None or k_size is None:
            raise ValueError("attention with rel_pos needs q_size and k_size")
        attn = add_decomposed_rel_pos(attn, q, rel_pos[0], rel_pos[1], q_size, k_size)
    if bias is not None:
        attn = attn + bias
    attn = attn.softmax(dim=-1)
    if dropout is not None:
        attn = dropout(attn)
    return attn @ v


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
              rel_pos: tuple[torch.Tensor, torch.Tensor] | None = None, q_size: tuple[int, int] | None = None,
              k_size: tuple[int, int] | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q @ k^T * scale + bias) @ v`` through ``F.scaled_dot_product_attention``.

    Args:
        q, k, v: (..., N, C) (q and k share C; any leading dims, e.g. batch and heads).
        scale: multiplies ``q @ k^T``.
        rel_pos: optional (rel_pos_h, rel_pos_w) tables: adds the decomposed relative position
            bias of :func:`add_decomposed_rel_pos` for grids ``q_size`` and ``k_size``.
        bias: optional additive bias broadcastable to (..., Nq, Nk) (Swin's table and mask).

    Without gradients, a decomposed bias larger than ``ATTENTION_BIAS_BUDGET`` is built and
    used a chunk of query rows at a time, so memory stays bounded for global attention.
    """
    if _REFERENCE_ATTENTION:
        return reference_attention(q, k, v, scale, rel_pos, q_size, k_size, bias)
    if rel_pos is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    if q_size is None or k_size is None:
        raise ValueError("attention with rel_pos needs q_size and k_size")
    rel_pos_h, rel_pos_w = rel_pos
    nq, nk = q.shape[-2], k.shape[-2]
    if nq != q_size[0] * q_size[1] or nk != k_size[0] * k_size[1]:
        raise ValueError(f"attention: {nq} queries and {nk} keys do not match grids {q_size} and {k_size}")
    rows = nq
    if not torch.is_grad_enabled() or not (q.requires_grad or rel_pos_h.requires_grad):
        per_row = math.prod(q.shape[:-2]) * nk * q.element_size()
        rows = max(q_size[1], ATTENTION_BIAS_BUDGET // max(per_row, 1) // q_size[1] * q_size[1])
    if rows >= nq:
        full_bias = decomposed_rel_pos_bias(q, rel_pos_h, rel_pos_w, q_size, k_size)
        if bias is not None:
            full_bias = full_bias + bias
        return F.scaled_dot_product_attention(q, k, v, attn_mask=full_bias, scale=scale)
    # Chunks of whole query rows of the grid (rows is a multiple of q_w).
    rel_h, rel_w = _rel_pos_terms(q, rel_pos_h, rel_pos_w, q_size, k_size)
    rel_h = rel_h.flatten(-3, -2)[..., :, None]  # (..., Nq, k_h, 1)
    rel_w = rel_w.flatten(-3, -2)[..., None, :]  # (..., Nq, 1, k_w)
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    for start in range(0, nq, rows):
        chunk = slice(start, start + rows)
        chunk_bias = (rel_h[..., chunk, :, :] + rel_w[..., chunk, :, :]).flatten(-2)
        if bias is not None:
            chunk_bias = chunk_bias + bias[..., chunk, :]
        out[..., chunk, :] = F.scaled_dot_product_attention(
            q[..., chunk, :], k, v, attn_mask=chunk_bias, scale=scale
        )
    return out


def get_abs_pos(abs_pos: torch.Tensor, has_cls_token: bool, hw: tuple[int, int]) -> torch.Tensor:
    """Absolute position embeddings (1, num_positions, C) -> (1, H, W, C) for an H x W grid:
    the class-token entry is dropped and the square grid resized bicubically when it differs."""
    h, w = hw
    if has_cls_token:
        abs_pos = abs_pos[:, 1:]
    xy_num = abs_pos.shape[1]
    size = math.isqrt(xy_num)
    if size * size != xy_num:
        raise ValueError(
            f"absolute position embedding has {xy_num} positions (class token removed: {has_cls_token}), "
            f"not a square grid; check pretrain_img_size and pretrain_use_cls_token"
        )
    if size != h or size != w:
        resized = F.interpolate(
            abs_pos.reshape(1, size, size, -1).permute(0, 3, 1, 2), size=(h, w), mode="bicubic",
            align_corners=False,
        )
        return resized.permute(0, 2, 3, 1)
    return abs_pos.reshape(1, h, w, -1)


def abs_pos_embed(
    use_abs_pos: bool, pretrain_img_size: int, patch_stride: tuple[int, int], use_cls_token: bool, embed_dim: int
) -> nn.Parameter | None:
    """ViT's and MViT's ``pos_embed``: zeros (1, positions, embed_dim) over the pre-training patch
    grid, plus one entry for the class token; None without ``use_abs_pos``. (The models fill it
    after building their blocks, in detectron2's order of random draws.)"""
    if not use_abs_pos:
        return None
    num_positions = (pretrain_img_size // patch_stride[0]) * (pretrain_img_size // patch_stride[1])
    return nn.Parameter(torch.zeros(1, num_positions + int(use_cls_token), embed_dim))


def embed_patches(
    x: torch.Tensor, patch_embed: nn.Module, pos_embed: torch.Tensor | None, has_cls_token: bool, owner: str
) -> torch.Tensor:
    """(N, C, H, W) images -> (N, H', W', C') tokens plus the (resized) absolute positions."""
    if x.dim() != 4:
        raise ValueError(f"{owner} takes (N, C, H, W) images, got shape {tuple(x.shape)}")
    x = patch_embed(x)
    if pos_embed is not None:
        x = x + get_abs_pos(pos_embed, has_cls_token, (x.shape[1], x.shape[2]))
    return x


def run_block(block: nn.Module, x: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """``block(x)``; recomputed in backward (activation checkpointing) when ``checkpointed`` and
    gradients are being recorded."""
    if checkpointed and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
    return block(x)


class PatchEmbed(nn.Module):
    """Image to patch tokens: a strided convolution ``proj``, output (B, H', W', C) (channels last).

        embed = PatchEmbed(kernel_size=(16, 16), stride=(16, 16), embed_dim=768)
        embed(torch.rand(1, 3, 224, 224)).shape   # (1, 14, 14, 768)
    """

    def __init__(
        self,
        kernel_size: tuple[int, int] = (16, 16),
        stride: tuple[int, int] = (16, 16),
        padding: tuple[int, int] = (0, 0),
        in_chans: int = 3,
        embed_dim: int = 768,
    ):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Mlp(nn.Module):
    """Two linear layers ``fc1`` -> activation -> ``fc2`` (timm's Mlp and Swin's, same names)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        drop: float = 0.0,
    ):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole sample's residual branch with probability
    ``drop_prob`` and scale the kept ones by ``1 / (1 - drop_prob)``; identity in eval."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"DropPath drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
