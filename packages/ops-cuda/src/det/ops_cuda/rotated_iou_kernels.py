"""IoU of rotated boxes in Triton: ``box_iou_rotated`` and the per-pair device function NMS reuses.

The intersection of two rectangles is a convex polygon whose vertices are among 24 candidates:
the 16 crossings of an edge of one box with an edge of the other, and the 4 corners of each box
that lie inside the other. This is det.structures' (and detectron2's) algorithm; what changes on a
GPU is the ordering of the polygon: instead of sorting, each valid candidate's rank in angle
around the candidates' mean is counted (32 x 32 comparisons per pair), and the shoelace formula
pairs every vertex with the one of the next rank. Duplicated candidates (a corner that is also a
crossing) become zero-length edges and add nothing.

Each pair is moved to its mid-point and divided by its largest side first (IoU is invariant to
both), so the tolerances mean the same for boxes of size 1e-3 and 1e4. float32 boxes are computed in
float32 (as detectron2's CUDA kernel), float64 boxes in float64 (as det.structures' reference).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from det.ops_cuda._utils import INTERPRETED, check_device, compute_dtype

DEG_TO_RAD = 0.017453292519943295

# (inside/crossing tolerance relative to edge length, |sin| below which two edges are parallel)
TOLERANCES = {torch.float32: (1e-5, 1e-6), torch.float64: (1e-9, 1e-12)}

MIN_AREA = 1e-14
"""A box with a smaller area has IoU 0 with everything (detectron2's kernel)."""


@triton.jit
def _vertex(cx, cy, hw_cos, hw_sin, hh_cos, hh_sin, k):
    """Corner k (0..3, around the box) of a box given by centre and half-axes; see rotated_box_vertices."""
    su = tl.where(k < 2, 1.0, -1.0)
    sv = tl.where((k == 0) | (k == 3), 1.0, -1.0)
    x = cx + su * hw_cos + sv * hh_sin
    y = cy - su * hw_sin + sv * hh_cos
    return x, y


@triton.jit
def _inside(px, py, cx, cy, hw_cos, hw_sin, hh_cos, hh_sin, EPS: tl.constexpr):
    """Whether points lie in the box, projecting on two adjacent edges (tolerance relative to each)."""
    x0, y0 = _vertex(cx, cy, hw_cos, hw_sin, hh_cos, hh_sin, 0)
    x1, y1 = _vertex(cx, cy, hw_cos, hw_sin, hh_cos, hh_sin, 1)
    x3, y3 = _vertex(cx, cy, hw_cos, hw_sin, hh_cos, hh_sin, 3)
    abx = x1 - x0
    aby = y1 - y0
    adx = x3 - x0
    ady = y3 - y0
    apx = px - x0
    apy = py - y0
    ab2 = tl.maximum(abx * abx + aby * aby, 1e-30)
    ad2 = tl.maximum(adx * adx + ady * ady, 1e-30)
    u = (apx * abx + apy * aby) / ab2
    v = (apx * adx + apy * ady) / ad2
    return (u >= -EPS) & (u <= 1 + EPS) & (v >= -EPS) & (v <= 1 + EPS)


@triton.jit
def _pseudo_angle(dx, dy):
    """A number in [0, 4) increasing with atan2(dy, dx) over one turn (no atan2 needed to sort)."""
    s = tl.abs(dx) + tl.abs(dy)
    p = dx / tl.where(s > 0, s, 1.0)
    return tl.where(dy >= 0, 1.0 - p, 3.0 + p)


@triton.jit
def rotated_iou(ax, ay, aw, ah, aa, bx, by, bw, bh, ba, EPS: tl.constexpr, PARALLEL_EPS: tl.constexpr):
    """IoU of pairs of rotated boxes given as (P,) tensors (cx, cy, w, h, angle in degrees)."""
    degenerate = (aw * ah < 1e-14) | (bw * bh < 1e-14)
    mx = (ax + bx) * 0.5
    my = (ay + by) * 0.5
    scale = tl.maximum(tl.maximum(tl.abs(aw), tl.abs(ah)), tl.maximum(tl.abs(bw), tl.abs(bh)))
    scale = tl.where(scale > 0, scale, 1.0)
    ax = (ax - mx) / scale
    ay = (ay - my) / scale
    aw = aw / scale
    ah = ah / scale
    bx = (bx - mx) / scale
    by = (by - my) / scale
    bw = bw / scale
    bh = bh / scale
    ta = aa * 0.017453292519943295
    tb = ba * 0.017453292519943295
    ca = tl.cos(ta)
    sa = tl.sin(ta)
    cb = tl.cos(tb)
    sb = tl.sin(tb)
    # half-axes of each box, as (P, 1) columns over the 32 candidate slots
    a_hwc = (aw * 0.5 * ca)[:, None]
    a_hws = (aw * 0.5 * sa)[:, None]
    a_hhc = (ah * 0.5 * ca)[:, None]
    a_hhs = (ah * 0.5 * sa)[:, None]
    b_hwc = (bw * 0.5 * cb)[:, None]
    b_hws = (bw * 0.5 * sb)[:, None]
    b_hhc = (bh * 0.5 * cb)[:, None]
    b_hhs = (bh * 0.5 * sb)[:, None]
    acx = ax[:, None]
    acy = ay[:, None]
    bcx = bx[:, None]
    bcy = by[:, None]

    # Slots 0..15: edge s // 4 of a against edge s % 4 of b; 16..19: corners of a; 20..23: of b.
    s = tl.arange(0, 32)[None, :]
    ka = tl.where(s < 16, s // 4, s - 16) & 3
    kb = tl.where(s < 16, s % 4, s - 20) & 3
    pax, pay = _vertex(acx, acy, a_hwc, a_hws, a_hhc, a_hhs, ka)
    qax, qay = _vertex(acx, acy, a_hwc, a_hws, a_hhc, a_hhs, (ka + 1) & 3)
    pbx, pby = _vertex(bcx, bcy, b_hwc, b_hws, b_hhc, b_hhs, kb)
    qbx, qby = _vertex(bcx, bcy, b_hwc, b_hws, b_hhc, b_hhs, (kb + 1) & 3)
    dax = qax - pax
    day = qay - pay
    dbx = qbx - pbx
    dby = qby - pby
    # Solve pa + t1 * da = pb + t2 * db; parallel means |sin| of the angle below PARALLEL_EPS.
    det = dbx * day - dby * dax
    lengths = tl.sqrt(dax * dax + day * day) * tl.sqrt(dbx * dbx + dby * dby)
    parallel = tl.abs(det) <= PARALLEL_EPS * lengths
    safe_det = tl.where(parallel, 1.0, det)
    vx = pbx - pax
    vy = pby - pay
    t1 = (dbx * vy - dby * vx) / safe_det
    t2 = (dax * vy - day * vx) / safe_det
    crossing = (~parallel) & (t1 >= -EPS) & (t1 <= 1 + EPS) & (t2 >= -EPS) & (t2 <= 1 + EPS)
    a_in_b = _inside(pax, pay, bcx, bcy, b_hwc, b_hws, b_hhc, b_hhs, EPS)
    b_in_a = _inside(pbx, pby, acx, acy, a_hwc, a_hws, a_hhc, a_hhs, EPS)

    px = tl.where(s < 16, pax + dax * t1, tl.where(s < 20, pax, pbx))
    py = tl.where(s < 16, pay + day * t1, tl.where(s < 20, pay, pby))
    valid = tl.where(s < 16, crossing, tl.where(s < 20, a_in_b, (s < 24) & b_in_a))
    count = tl.sum(valid.to(tl.int32), axis=1)
    weight = valid.to(px.dtype)
    safe_count = tl.maximum(count, 1).to(px.dtype)
    ox = tl.sum(px * weight, axis=1) / safe_count
    oy = tl.sum(py * weight, axis=1) / safe_count
    rx = tl.where(valid, px - ox[:, None], 0.0)
    ry = tl.where(valid, py - oy[:, None], 0.0)
    angle = tl.where(valid, _pseudo_angle(rx, ry), 10.0)

    # Rank of each valid candidate by angle (ties by slot), then its successor on the boundary.
    ai = angle[:, :, None]
    aj = angle[:, None, :]
    si = s[:, :, None]
    sj = s[:, None, :]
    vj = valid[:, None, :]
    before = vj & ((aj < ai) | ((aj == ai) & (sj < si)))
    rank = tl.sum(before.to(tl.int32), axis=2)
    nxt = (rank + 1) % tl.maximum(count, 1)[:, None]
    is_next = vj & (rank[:, None, :] == nxt[:, :, None])
    nx = tl.sum(tl.where(is_next, rx[:, None, :], 0.0), axis=2)
    ny = tl.sum(tl.where(is_next, ry[:, None, :], 0.0), axis=2)
    twice_area = tl.sum(tl.where(valid, rx * ny - ry * nx, 0.0), axis=1)
    inter = tl.where(count >= 3, tl.abs(twice_area) * 0.5, 0.0)

    union = aw * ah + bw * bh - inter
    iou = inter / tl.where(union > 0, union, 1.0)
    iou = tl.where(union > 0, iou, 0.0)
    return tl.where(degenerate, 0.0, iou)


@triton.jit
def rotated_iou_at(a, b, mask, EPS: tl.constexpr, PARALLEL_EPS: tl.constexpr):
    """:func:`rotated_iou` of the boxes stored at ``a`` and ``b`` (pointers to 5 values each:
    cx, cy, w, h, angle), where ``mask`` holds; masked lanes read zeros."""
    return rotated_iou(
        tl.load(a, mask=mask, other=0.0),
        tl.load(a + 1, mask=mask, other=0.0),
        tl.load(a + 2, mask=mask, other=0.0),
        tl.load(a + 3, mask=mask, other=0.0),
        tl.load(a + 4, mask=mask, other=0.0),
        tl.load(b, mask=mask, other=0.0),
        tl.load(b + 1, mask=mask, other=0.0),
        tl.load(b + 2, mask=mask, other=0.0),
        tl.load(b + 3, mask=mask, other=0.0),
        tl.load(b + 4, mask=mask, other=0.0),
        EPS,
        PARALLEL_EPS,
    )


@triton.jit
def _box_iou_rotated_kernel(
    boxes1_ptr, boxes2_ptr, out_ptr, n, m, EPS: tl.constexpr, PARALLEL_EPS: tl.constexpr, BLOCK: tl.constexpr
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    valid = offs < n * m
    i = offs // m
    j = offs % m
    iou = rotated_iou_at(boxes1_ptr + i * 5, boxes2_ptr + j * 5, valid, EPS, PARALLEL_EPS)
    tl.store(out_ptr + offs, iou, mask=valid)


def box_iou_rotated(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU of (N, 5) and (M, 5) rotated boxes (cx, cy, w, h, angle in degrees).

    Same contract as det-core's reference: the result has the dtype of ``boxes1``; half precision
    boxes are computed in float32.
    """
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, torch.Tensor) or b.dim() != 2 or b.shape[1] != 5:
            shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise ValueError(
                f"box_iou_rotated: {name} must be a (N, 5) tensor (cx, cy, w, h, angle), got {shape}"
            )
    device = check_device("box_iou_rotated", boxes1, boxes2)
    dtype = compute_dtype("box_iou_rotated", boxes1)
    n, m = boxes1.shape[0], boxes2.shape[0]
    out = torch.zeros((n, m), dtype=dtype, device=device)
    if n and m:
        eps, parallel_eps = TOLERANCES[dtype]
        # (pairs, 32, 32) tensors: 4 pairs per GPU program keep compilation to seconds
        block = 256 if INTERPRETED else 4
        grid = (triton.cdiv(n * m, block),)
        _box_iou_rotated_kernel[grid](
            boxes1.to(dtype).contiguous(),
            boxes2.to(dtype).contiguous(),
            out,
            n,
            m,
            EPS=eps,
            PARALLEL_EPS=parallel_eps,
            BLOCK=block,
        )
    return out.to(boxes1.dtype)


__all__ = ["box_iou_rotated", "rotated_iou", "rotated_iou_at"]
