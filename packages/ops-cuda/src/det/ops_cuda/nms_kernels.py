"""Non-maximum suppression in Triton: ``nms``, ``batched_nms`` and ``nms_rotated``.

As in torchvision's and detectron2's CUDA kernels, NMS runs in two steps over boxes sorted by
decreasing score: a parallel kernel writes, for every box i, a bit mask of the later boxes j > i it
suppresses (one 32-bit word per 32 columns), then a single program walks the boxes in order,
keeping each box not yet suppressed and OR-ing its row into the suppressed set. The masks take
N * N / 8 bytes (12.5 MB for 10 000 boxes), never an N x N float matrix.

``batched_nms`` compares category ids in the mask kernel instead of shifting boxes of different
categories apart, so it needs no coordinate offsets (which cost precision) and keeps exactly the
boxes torchvision's ``batched_nms`` keeps.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from det.ops_cuda._utils import INTERPRETED, check_device, compute_dtype
from det.ops_cuda.rotated_iou_kernels import TOLERANCES, rotated_iou_at

# Rotated IoU holds (pairs, 32, 32) tensors: on a GPU a program takes one row and its 32 columns
# 4 at a time (more pairs at once make the compiler take minutes); the interpreter pays per
# operation instead, so it does better with 8 rows and all 32 columns at once.
INTERPRETER_ROWS = 8
GPU_COLUMNS = 4


@triton.jit
def _nms_mask_kernel(
    boxes_ptr, idxs_ptr, mask_ptr, n, n_words, iou_threshold, HAS_IDXS: tl.constexpr, BLOCK: tl.constexpr
):
    """mask[i, w] bit b = box i suppresses box 32 * w + b (IoU > threshold, later, same category)."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    word = tl.program_id(1)
    bits = tl.arange(0, 32)
    cols = word * 32 + bits
    row_ok = rows < n
    col_ok = cols < n
    rx0 = tl.load(boxes_ptr + rows * 4, mask=row_ok, other=0.0)[:, None]
    ry0 = tl.load(boxes_ptr + rows * 4 + 1, mask=row_ok, other=0.0)[:, None]
    rx1 = tl.load(boxes_ptr + rows * 4 + 2, mask=row_ok, other=0.0)[:, None]
    ry1 = tl.load(boxes_ptr + rows * 4 + 3, mask=row_ok, other=0.0)[:, None]
    cx0 = tl.load(boxes_ptr + cols * 4, mask=col_ok, other=0.0)[None, :]
    cy0 = tl.load(boxes_ptr + cols * 4 + 1, mask=col_ok, other=0.0)[None, :]
    cx1 = tl.load(boxes_ptr + cols * 4 + 2, mask=col_ok, other=0.0)[None, :]
    cy1 = tl.load(boxes_ptr + cols * 4 + 3, mask=col_ok, other=0.0)[None, :]
    # torchvision's arithmetic, in its order, so that ties at the threshold fall the same way
    w = tl.maximum(tl.minimum(rx1, cx1) - tl.maximum(rx0, cx0), 0.0)
    h = tl.maximum(tl.minimum(ry1, cy1) - tl.maximum(ry0, cy0), 0.0)
    inter = w * h
    area_r = (rx1 - rx0) * (ry1 - ry0)
    area_c = (cx1 - cx0) * (cy1 - cy0)
    iou = inter / (area_r + area_c - inter)
    suppress = (iou > iou_threshold) & (cols[None, :] > rows[:, None]) & col_ok[None, :] & row_ok[:, None]
    if HAS_IDXS:
        ri = tl.load(idxs_ptr + rows, mask=row_ok, other=0)[:, None]
        ci = tl.load(idxs_ptr + cols, mask=col_ok, other=0)[None, :]
        suppress = suppress & (ri == ci)
    packed = tl.sum(suppress.to(tl.int32) << bits[None, :], axis=1)
    tl.store(mask_ptr + rows * n_words + word, packed, mask=row_ok)


@triton.jit
def _nms_rotated_mask_kernel(
    boxes_ptr,
    mask_ptr,
    n,
    n_words,
    iou_threshold,
    EPS: tl.constexpr,
    PARALLEL_EPS: tl.constexpr,
    ROWS: tl.constexpr,
    COLUMNS: tl.constexpr,
):
    """mask[i, w] bit b = rotated box i suppresses box 32 * w + b (IoU >= threshold, later).

    A program covers ROWS rows and one 32-column word, COLUMNS columns (ROWS * COLUMNS pairs) at a time.
    """
    first_row = tl.program_id(0) * ROWS
    word = tl.program_id(1)
    pair = tl.arange(0, ROWS * COLUMNS)
    rows = first_row + pair // COLUMNS
    r = boxes_ptr + rows * 5
    packed = tl.zeros([ROWS], dtype=tl.int32)
    # Only columns after a row can be suppressed: words left of the diagonal stay zero.
    if word * 32 + 31 > first_row:
        for start in range(0, 32, COLUMNS):
            bit = start + pair % COLUMNS
            cols = word * 32 + bit
            ok = (cols < n) & (rows < n) & (cols > rows)
            iou = rotated_iou_at(r, boxes_ptr + cols * 5, ok, EPS, PARALLEL_EPS)
            suppress = ((iou >= iou_threshold) & ok).to(tl.int32) << bit
            packed += tl.sum(tl.reshape(suppress, (ROWS, COLUMNS)), axis=1)
    out_rows = first_row + tl.arange(0, ROWS)
    tl.store(mask_ptr + out_rows * n_words + word, packed, mask=out_rows < n)


@triton.jit
def _nms_reduce_kernel(mask_ptr, removed_ptr, keep_ptr, n, n_words, BLOCK_WORDS: tl.constexpr):
    """One program: the greedy pass over boxes in score order, reading the suppression masks."""
    for i in range(0, n):
        word = tl.load(removed_ptr + i // 32)
        if ((word >> (i % 32)) & 1) == 0:
            tl.store(keep_ptr + i, 1)
            # boxes before i are decided already: start at i's own word
            for start in range(i // 32, n_words, BLOCK_WORDS):
                offs = start + tl.arange(0, BLOCK_WORDS)
                ok = offs < n_words
                row = tl.load(mask_ptr + i * n_words + offs, mask=ok, other=0)
                done = tl.load(removed_ptr + offs, mask=ok, other=0)
                tl.store(removed_ptr + offs, done | row, mask=ok)
            # the next iteration reads words other threads of this program just wrote
            tl.debug_barrier()


def _greedy_keep(mask: torch.Tensor, n: int, n_words: int) -> torch.Tensor:
    removed = torch.zeros(n_words, dtype=torch.int32, device=mask.device)
    keep = torch.zeros(n, dtype=torch.int8, device=mask.device)
    block_words = min(triton.next_power_of_2(n_words), 256)
    _nms_reduce_kernel[(1,)](mask, removed, keep, n, n_words, BLOCK_WORDS=block_words)
    return keep.bool()


def _describe(t: object) -> object:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def _check_args(fn: str, boxes: torch.Tensor, scores: torch.Tensor, width: int, idxs=None) -> None:
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != width:
        raise ValueError(f"{fn}: boxes must be an (N, {width}) tensor, got {_describe(boxes)}")
    if not isinstance(scores, torch.Tensor) or scores.shape != (boxes.shape[0],):
        raise ValueError(f"{fn}: scores must have shape ({boxes.shape[0]},), got {_describe(scores)}")
    if idxs is not None and (not isinstance(idxs, torch.Tensor) or idxs.shape != scores.shape):
        raise ValueError(f"{fn}: idxs must have shape ({boxes.shape[0]},), got {_describe(idxs)}")


def _nms_axis_aligned(
    fn: str, boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor | None, iou_threshold: float
) -> torch.Tensor:
    tensors = (boxes, scores) if idxs is None else (boxes, scores, idxs)
    device = check_device(fn, *tensors)
    n = boxes.shape[0]
    if n == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    dtype = compute_dtype(fn, boxes)
    order = scores.argsort(descending=True, stable=True)
    sorted_boxes = boxes[order].to(dtype).contiguous()
    sorted_idxs = idxs[order].to(torch.int64).contiguous() if idxs is not None else sorted_boxes
    n_words = triton.cdiv(n, 32)
    mask = torch.empty((n, n_words), dtype=torch.int32, device=device)
    block = 16
    _nms_mask_kernel[(triton.cdiv(n, block), n_words)](
        sorted_boxes,
        sorted_idxs,
        mask,
        n,
        n_words,
        float(iou_threshold),
        HAS_IDXS=idxs is not None,
        BLOCK=block,
    )
    return order[_greedy_keep(mask, n, n_words)]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of (N, 4) XYXY boxes: int64 indices kept, by decreasing score.

    A box is removed when its IoU with a higher-scoring kept box is > ``iou_threshold``, as
    ``torchvision.ops.nms``.
    """
    _check_args("nms", boxes, scores, 4)
    return _nms_axis_aligned("nms", boxes, scores, None, iou_threshold)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS within each category of ``idxs``: kept indices by decreasing score (torchvision's result)."""
    _check_args("batched_nms", boxes, scores, 4, idxs)
    return _nms_axis_aligned("batched_nms", boxes, scores, idxs, iou_threshold)


def nms_rotated(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of (N, 5) rotated boxes (cx, cy, w, h, angle in degrees), by decreasing score.

    A box is removed when its IoU with a higher-scoring kept box is >= ``iou_threshold``
    (detectron2's rotated kernel).
    """
    _check_args("nms_rotated", boxes, scores, 5)
    device = check_device("nms_rotated", boxes, scores)
    n = boxes.shape[0]
    if n == 0:
        return torch.empty((0,), dtype=torch.int64, device=device)
    dtype = compute_dtype("nms_rotated", boxes)
    eps, parallel_eps = TOLERANCES[dtype]
    order = scores.argsort(descending=True, stable=True)
    sorted_boxes = boxes[order].to(dtype).contiguous()
    n_words = triton.cdiv(n, 32)
    mask = torch.empty((n, n_words), dtype=torch.int32, device=device)
    rows, columns = (INTERPRETER_ROWS, 32) if INTERPRETED else (1, GPU_COLUMNS)
    _nms_rotated_mask_kernel[(triton.cdiv(n, rows), n_words)](
        sorted_boxes,
        mask,
        n,
        n_words,
        float(iou_threshold),
        EPS=eps,
        PARALLEL_EPS=parallel_eps,
        ROWS=rows,
        COLUMNS=columns,
    )
    return order[_greedy_keep(mask, n, n_words)]


__all__ = ["batched_nms", "nms", "nms_rotated"]
