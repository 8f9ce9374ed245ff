"""An independent statement of detectron2's attention formulas, for parity tests.

Written from the formulas (MViTv2's decomposed relative positions, ViTDet's windows), index by
index with Python loops, so a slip in det's vectorised code does not repeat here.
"""

from __future__ import annotations

import contextlib

import pytest
import torch


def ref_rel_pos_table(q_size: int, k_size: int, table: torch.Tensor) -> torch.Tensor:
    """R[i, j] = table'[i * max(k/q, 1) - j * max(q/k, 1) + (k - 1) * max(q/k, 1)], table' being
    the table linearly resized to 2 * max(q, k) - 1 rows when its length differs."""
    length = 2 * max(q_size, k_size) - 1
    if table.shape[0] != length:
        table = torch.nn.functional.interpolate(table.T[None], size=length, mode="linear")[0].T
    q_scale, k_scale = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
    rows = []
    for i in range(q_size):
        rows.append(torch.stack([table[int(i * q_scale - j * k_scale + (k_size - 1) * k_scale)] for j in range(k_size)]))
    return torch.stack(rows)


def ref_attention(q, k, v, scale, rel_pos=None, q_size=None, k_size=None, bias=None):
    """softmax(q k^T * scale + q . Rh[qh, kh] + q . Rw[qw, kw] + bias) v, with explicit indices."""
    logits = (q @ k.transpose(-2, -1)) * scale
    if rel_pos is not None:
        (qh, qw), (kh, kw) = q_size, k_size
        Rh = ref_rel_pos_table(qh, kh, rel_pos[0])  # (qh, kh, C)
        Rw = ref_rel_pos_table(qw, kw, rel_pos[1])  # (qw, kw, C)
        q_rows = torch.arange(qh * qw) // qw
        q_cols = torch.arange(qh * qw) % qw
        k_rows = torch.arange(kh * kw) // kw
        k_cols = torch.arange(kh * kw) % kw
        Rh_full = Rh[q_rows][:, k_rows]  # (Nq, Nk, C): Rh[row(i), row(j)]
        Rw_full = Rw[q_cols][:, k_cols]
        logits = logits + torch.einsum("...ic,ijc->...ij", q, Rh_full + Rw_full)
    if bias is not None:
        logits = logits + bias
    return logits.softmax(-1) @ v


@pytest.fixture
def formula_attention():
    """A context manager: inside it, ViT, MViT and Swin call :func:`ref_attention` instead of
    det's fused attention."""

    @contextlib.contextmanager
    def use():
        with pytest.MonkeyPatch.context() as patch:
            for module in ("det.backbones.vit.vit", "det.backbones.vit.mvit", "det.backbones.vit.swin"):
                patch.setattr(f"{module}.attention", ref_attention)
            yield

    return use


@pytest.fixture
def ref_rel_pos():
    return ref_rel_pos_table


@pytest.fixture
def ref_attn():
    return ref_attention
