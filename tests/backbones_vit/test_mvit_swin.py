"""MViTv2 (pooling attention, residual pooling, hybrid windows) and Swin (shifted windows with a
relative position bias table) as detectron2 builds them."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from det.backbones.vit import MViT, SwinTransformer
from det.backbones.vit.swin import BasicLayer
from det.core.layers import ShapeSpec


def small_mvit(**kwargs) -> MViT:
    args = dict(img_size=64, embed_dim=16, depth=5, num_heads=1, last_block_indexes=(0, 2, 3, 4),
                adaptive_window_size=8, adaptive_kv_stride=2, rel_pos_zero_init=False,
                norm_layer=partial(nn.LayerNorm, eps=1e-6))
    args.update(kwargs)
    torch.manual_seed(0)
    return MViT(**args)


def test_mvit_stages_channels_heads_strides_and_pooling():
    mvit = small_mvit()
    assert mvit.output_shape() == {
        "scale2": ShapeSpec(channels=16, stride=4), "scale3": ShapeSpec(channels=32, stride=8),
        "scale4": ShapeSpec(channels=64, stride=16), "scale5": ShapeSpec(channels=128, stride=32)}
    attn = [blk.attn for blk in mvit.blocks]
    # first block of each later stage pools q by 2 and has a projected, max-pooled shortcut
    assert [a.pool_q.stride for a in attn] == [(1, 1), (2, 2), (1, 1), (2, 2), (2, 2)]
    assert [hasattr(b, "proj") and hasattr(b, "pool_skip") for b in mvit.blocks] == [False, True, False, True, True]
    # kv stride: 2 in stage 2, halved per stage (min 1), doubled on the last blocks of stages 3, 4
    assert [a.pool_k.stride for a in attn] == [(2, 2), (1, 1), (2, 2), (2, 2), (1, 1)]
    assert [a.num_heads for a in attn] == [1, 2, 2, 4, 8]
    # window attention except on the last blocks of stages 3-5; the window (counted on the
    # block's input grid) halves after the first block of a stage, whose q pooling halves it
    assert [a.window_size for a in attn] == [8, 8, 0, 0, 0]
    assert (attn[1].q_win_size, attn[1].kv_win_size) == (4, 8)
    # relative tables: 2 * max(size // stride_q, size // stride_kv) - 1, size = the block's
    # input grid (64 / 4 = 16, halved after each stage's first block)
    assert [tuple(a.rel_pos_h.shape) for a in attn] == [(31, 16), (31, 16), (15, 16), (7, 16), (7, 16)]
    assert [n for n in dict(mvit.named_children()) if n.endswith("_norm")] == [
        "scale2_norm", "scale3_norm", "scale4_norm", "scale5_norm"]


def test_mvit_forward_matches_the_formula(formula_attention):
    mvit = small_mvit(residual_pooling=True).eval()
    x = torch.rand(2, 3, 96, 72)  # 24 x 18 tokens: stage-2 windows of 8 pad to 24 x 24
    with torch.no_grad():
        out = mvit(x)
        with formula_attention():
            expected = mvit(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "scale2": (2, 16, 24, 18), "scale3": (2, 32, 12, 9), "scale4": (2, 64, 6, 5), "scale5": (2, 128, 3, 3)}
    for name in out:
        assert torch.allclose(out[name], expected[name], atol=1e-5), name


def test_mvit_residual_pooling_adds_the_pooled_query():
    with_res, without = small_mvit(residual_pooling=True).eval(), small_mvit(residual_pooling=False).eval()
    without.load_state_dict(with_res.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(with_res(x)["scale5"], without(x)["scale5"])


def test_mvit_out_features_subset_and_errors():
    mvit = small_mvit(out_features=("scale3", "scale5"), use_abs_pos=True)
    assert list(mvit.output_shape()) == ["scale3", "scale5"]
    assert not hasattr(mvit, "scale2_norm")
    assert tuple(mvit.pos_embed.shape) == (1, 1 + 56 * 56, 16)  # pre-training 224 / 4
    assert list(mvit(torch.rand(1, 3, 64, 64))) == ["scale3", "scale5"]
    with pytest.raises(ValueError, match=r"out_features \['res5'\] are not among scale2, scale3, scale4, scale5"):
        small_mvit(out_features=("res5",))
    with pytest.raises(ValueError, match=r"last_block_indexes must name the last block of 4 stages, got \(0, 2\)"):
        small_mvit(last_block_indexes=(0, 2))


def small_swin(**kwargs) -> SwinTransformer:
    args = dict(embed_dim=16, depths=(2, 2, 2, 1), num_heads=(1, 2, 4, 8), window_size=4, drop_path_rate=0.0)
    args.update(kwargs)
    torch.manual_seed(0)
    return SwinTransformer(**args)


def test_swin_relative_position_index():
    attn = small_swin(window_size=3).layers[0].blocks[0].attn
    index = attn.relative_position_index
    assert index.shape == (9, 9) and index.dtype == torch.int64
    for i in range(9):
        for j in range(9):
            dh, dw = i // 3 - j // 3, i % 3 - j % 3
            assert index[i, j] == (dh + 2) * 5 + (dw + 2)
    assert attn.relative_position_bias_table.shape == (25, 1)
    assert "relative_position_index" in attn.state_dict()  # a persistent buffer, as in detectron2


def test_swin_shift_mask_separates_regions():
    layer = BasicLayer(dim=4, depth=2, num_heads=1, window_size=4)
    mask = layer._shift_mask(8, 8, torch.device("cpu"))
    assert mask.shape == (4, 16, 16)
    assert torch.equal(mask[0], torch.zeros(16, 16))  # the top-left window is one region
    # bottom-right window: 4 regions of 2x2 tokens; token 0 (row 0, col 0) and token 3 (row 0,
    # col 3) are in different regions, token 0 and 1 in the same
    assert mask[3, 0, 1] == 0 and mask[3, 0, 3] == -100 and mask[3, 0, 15] == -100
    assert [b.shift_size for b in layer.blocks] == [0, 2]


def test_swin_forward_matches_the_formula_with_odd_sizes(formula_attention):
    swin = small_swin().eval()
    x = torch.rand(1, 3, 70, 50)  # patch embed pads to 72 x 52; windows pad every stage
    with torch.no_grad():
        out = swin(x)
        with formula_attention():
            expected = swin(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p0": (1, 16, 18, 13), "p1": (1, 32, 9, 7), "p2": (1, 64, 5, 4), "p3": (1, 128, 3, 2)}
    for name in out:
        assert torch.allclose(out[name], expected[name], atol=1e-5), name
    assert swin.output_shape()["p2"] == ShapeSpec(channels=64, stride=16)
    assert swin.size_divisibility == 32


def test_swin_training_with_attention_dropout_and_ape():
    swin = small_swin(attn_drop_rate=0.1, drop_rate=0.1, drop_path_rate=0.2, ape=True, out_indices=(1, 3))
    assert list(swin.output_shape()) == ["p1", "p3"] and not hasattr(swin, "norm0")
    out = swin(torch.rand(2, 3, 64, 64))
    sum(v.sum() for v in out.values()).backward()
    assert swin.absolute_pos_embed.grad is not None and swin.layers[0].blocks[0].attn.qkv.weight.grad is not None


def test_swin_frozen_stages():
    swin = small_swin(frozen_stages=2, ape=True)
    frozen = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("layers") else "")
              for n, p in swin.named_parameters() if not p.requires_grad}
    assert frozen == {"patch_embed", "absolute_pos_embed", "layers.0"}


def test_swin_errors():
    with pytest.raises(ValueError, match=r"one num_heads per stage: depths=\(2, 2\), num_heads=\(1,\)"):
        SwinTransformer(depths=(2, 2), num_heads=(1,))
    with pytest.raises(ValueError, match=r"out_indices \[4\] are not stages 0..3"):
        small_swin(out_indices=(0, 4))
