"""The shared pieces: windows, relative/absolute positions, fused attention against the formula."""

from __future__ import annotations

import pytest
import torch

from det.backbones.vit import utils
from det.backbones.vit.utils import (
    DropPath,
    add_decomposed_rel_pos,
    attention,
    get_abs_pos,
    get_rel_pos,
    reference_attention,
    use_reference_attention,
    window_partition,
    window_unpartition,
)


def test_window_partition_pads_bottom_right_and_round_trips():
    x = torch.arange(2 * 5 * 7 * 3, dtype=torch.float32).reshape(2, 5, 7, 3)
    windows, (Hp, Wp) = window_partition(x, 3)
    assert (Hp, Wp) == (6, 9)
    assert windows.shape == (2 * 2 * 3, 3, 3, 3)
    # window 0 of image 0 is the top-left 3x3 block; window 5 of image 0 is the bottom-right
    # one: rows 3..5 (5 is padding), columns 6..8 (7, 8 padding)
    assert torch.equal(windows[0], x[0, :3, :3])
    assert torch.equal(windows[5, :2, :1], x[0, 3:5, 6:7])
    assert windows[5, 2].abs().sum() == 0 and windows[5, :, 1:].abs().sum() == 0
    assert torch.equal(window_unpartition(windows, 3, (Hp, Wp), (5, 7)), x)


def test_get_rel_pos_indexes_by_relative_offset(ref_rel_pos):
    table = torch.arange(7, dtype=torch.float32)[:, None].repeat(1, 2)  # row r holds r
    R = get_rel_pos(4, 4, table)
    assert R.shape == (4, 4, 2)
    # offset i - j shifted by k - 1 = 3
    assert R[..., 0].tolist() == [[3, 2, 1, 0], [4, 3, 2, 1], [5, 4, 3, 2], [6, 5, 4, 3]]
    # q pooled to half of k (MViT's stride-2 query): query coordinates scaled by 2
    table = torch.randn(7, 5)
    assert torch.equal(get_rel_pos(2, 4, table), ref_rel_pos(2, 4, table))
    assert get_rel_pos(2, 4, torch.arange(7.0)[:, None])[..., 0].tolist() == [[3, 2, 1, 0], [5, 4, 3, 2]]


def test_get_rel_pos_interpolates_a_table_of_another_length(ref_rel_pos):
    table = torch.randn(27, 8)  # trained for 14 positions, used for 8
    R = get_rel_pos(8, 8, table)
    assert R.shape == (8, 8, 8)
    assert torch.allclose(R, ref_rel_pos(8, 8, table))
    assert not torch.allclose(R, table[:15][torch.arange(8)[:, None] - torch.arange(8)[None] + 7])


def test_add_decomposed_rel_pos_matches_the_formula(ref_rel_pos):
    torch.manual_seed(0)
    q = torch.randn(2, 3 * 4, 8)
    attn = torch.randn(2, 12, 12)
    rel_h, rel_w = torch.randn(5, 8), torch.randn(7, 8)
    got = add_decomposed_rel_pos(attn, q, rel_h, rel_w, (3, 4), (3, 4))
    Rh, Rw = ref_rel_pos(3, 3, rel_h), ref_rel_pos(4, 4, rel_w)
    expected = attn.clone()
    for b in range(2):
        for i in range(12):
            for j in range(12):
                expected[b, i, j] += q[b, i] @ Rh[i // 4, j // 4] + q[b, i] @ Rw[i % 4, j % 4]
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(("q_size", "k_size"), [((6, 5), (6, 5)), ((3, 3), (6, 6)), ((4, 4), (2, 2))])
def test_fused_attention_equals_the_formula(q_size, k_size, ref_attn):
    torch.manual_seed(0)
    nq, nk = q_size[0] * q_size[1], k_size[0] * k_size[1]
    q, k, v = torch.randn(2, 3, nq, 8), torch.randn(2, 3, nk, 8), torch.randn(2, 3, nk, 8)
    rel_pos = (torch.randn(2 * max(q_size[0], k_size[0]) - 1, 8), torch.randn(9, 8))  # width table resized
    expected = ref_attn(q, k, v, 0.3, rel_pos, q_size, k_size)
    assert torch.allclose(attention(q, k, v, 0.3, rel_pos, q_size, k_size), expected, atol=1e-5)
    assert torch.allclose(reference_attention(q, k, v, 0.3, rel_pos, q_size, k_size), expected, atol=1e-5)
    with use_reference_attention():
        assert torch.allclose(attention(q, k, v, 0.3, rel_pos, q_size, k_size), expected, atol=1e-5)
    bias = torch.randn(3, nq, nk)
    assert torch.allclose(attention(q, k, v, 0.3, bias=bias), ref_attn(q, k, v, 0.3, bias=bias), atol=1e-5)


def test_inference_attention_runs_in_row_chunks_within_the_budget(monkeypatch, ref_attn):
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 36, 4), torch.randn(1, 2, 36, 4), torch.randn(1, 2, 36, 4)
    rel_pos = (torch.randn(11, 4), torch.randn(11, 4))
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, scale=None):
        seen.append(tuple(attn_mask.shape))
        return sdpa(q, k, v, attn_mask=attn_mask, scale=scale)

    monkeypatch.setattr(utils.F, "scaled_dot_product_attention", spy)
    # bias of one query: 2 heads x 36 keys x 4 bytes = 288 bytes; a 4200-byte budget holds 14
    # queries, rounded down to whole rows of the 6x6 grid: chunks of 12
    monkeypatch.setattr(utils, "ATTENTION_BIAS_BUDGET", 4200)
    with torch.no_grad():
        out = attention(q, k, v, 0.5, rel_pos, (6, 6), (6, 6))
    assert seen == [(1, 2, 12, 36)] * 3
    assert torch.allclose(out, ref_attn(q, k, v, 0.5, rel_pos, (6, 6), (6, 6)), atol=1e-5)
    seen.clear()
    q.requires_grad_(True)
    attention(q, k, v, 0.5, rel_pos, (6, 6), (6, 6)).sum().backward()  # with gradients: one call
    assert seen == [(1, 2, 36, 36)] and q.grad is not None


def test_attention_checks_grids():
    q = torch.randn(1, 10, 4)
    with pytest.raises(ValueError, match=r"10 queries and 10 keys do not match grids \(3, 3\) and \(3, 3\)"):
        attention(q, q, q, 1.0, (torch.randn(5, 4), torch.randn(5, 4)), (3, 3), (3, 3))


def test_get_abs_pos_drops_cls_token_and_resizes():
    pos = torch.randn(1, 1 + 4 * 4, 6)
    same = get_abs_pos(pos, True, (4, 4))
    assert torch.equal(same, pos[:, 1:].reshape(1, 4, 4, 6))
    resized = get_abs_pos(pos, True, (8, 6))
    assert resized.shape == (1, 8, 6, 6)
    expected = torch.nn.functional.interpolate(
        pos[:, 1:].reshape(1, 4, 4, 6).permute(0, 3, 1, 2), size=(8, 6), mode="bicubic", align_corners=False)
    assert torch.allclose(resized, expected.permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"17 positions .*not a square grid; check pretrain_img_size"):
        get_abs_pos(pos, False, (4, 4))


def test_drop_path_drops_whole_samples_in_training_only():
    torch.manual_seed(0)
    dp = DropPath(0.5)
    x = torch.ones(1000, 3, 2)
    y = dp(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample.min(1).values == per_sample.max(1).values).all()  # a sample is kept or dropped whole
    assert 400 < int((per_sample[:, 0] == 0).sum()) < 600
    assert torch.equal(dp.eval()(x), x)
    with pytest.raises(ValueError, match=r"drop_prob must be in \[0, 1\), got 1.0"):
        DropPath(1.0)
