"""Panoptic-DeepLab's post-processing: center points from the heatmap (threshold, max-pool NMS,
top-k), each thing pixel grouped to the nearest center after its predicted offset, and the merge
of those class-agnostic instances with the semantic prediction into panoptic ids
``class * label_divisor + instance`` (stuff: ``class * label_divisor``; nothing: ``void_label``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import torch
import torch.nn.functional as F

__all__ = [
    "find_instance_center",
    "get_instance_segmentation",
    "get_panoptic_segmentation",
    "group_pixels",
    "merge_semantic_and_instance",
]


def find_instance_center(center_heatmap: torch.Tensor, threshold: float = 0.1, nms_kernel: int = 3,
                         top_k: int | None = None) -> torch.Tensor:
    """The (K, 2) ``(y, x)`` center points of a (1, H, W) heatmap: scores above ``threshold``
    that are the maximum of their ``nms_kernel`` window; with ``top_k``, only those scoring
    strictly above the ``top_k``-th highest score (and above 0)."""
    if center_heatmap.dim() != 3 or center_heatmap.shape[0] != 1:
        raise ValueError(f"find_instance_center expects a (1, H, W) heatmap, got shape {tuple(center_heatmap.shape)}")
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel (MODEL.PANOPTIC_DEEPLAB.NMS_KERNEL) must be a positive odd number, got {nms_kernel}")
    heat = F.threshold(center_heatmap, threshold, -1)
    pooled = F.max_pool2d(heat, kernel_size=nms_kernel, stride=1, padding=(nms_kernel - 1) // 2)
    heat = torch.where(heat == pooled, heat, torch.full_like(heat, -1))[0]
    if top_k is None:
        return torch.nonzero(heat > 0)
    k = min(int(top_k), heat.numel())
    kth = torch.topk(heat.flatten(), k).values[-1].clamp(min=0)
    return torch.nonzero(heat > kth)


def group_pixels(center_points: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """(1, H, W) instance ids in ``1..K``: each pixel, moved by its (2, H, W) ``(dy, dx)`` offset,
    goes to the nearest of the (K, 2) ``(y, x)`` centers (id 0 is kept for stuff)."""
    height, width = offsets.shape[1:]
    ys = torch.arange(height, dtype=offsets.dtype, device=offsets.device)
    xs = torch.arange(width, dtype=offsets.dtype, device=offsets.device)
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))
    moved = (coord + offsets).flatten(1).T  # (H*W, 2)
    # exact differences (not the matrix-product shortcut): ties must break as the definition says
    distance = torch.cdist(center_points.to(offsets.dtype)[None], moved[None],
                           compute_mode="donot_use_mm_for_euclid_dist")[0]  # (K, H*W)
    return (torch.argmin(distance, dim=0) + 1).reshape(1, height, width)


def get_instance_segmentation(sem_seg: torch.Tensor, center_heatmap: torch.Tensor, offsets: torch.Tensor,
                              thing_seg: torch.Tensor, thing_ids: Collection[int], threshold: float = 0.1,
                              nms_kernel: int = 3, top_k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-agnostic instances: (1, H, W) ids (0 = not a thing pixel or no center) and the
    (1, K, 2) centers."""
    centers = find_instance_center(center_heatmap, threshold=threshold, nms_kernel=nms_kernel, top_k=top_k)
    if centers.shape[0] == 0:
        return torch.zeros_like(sem_seg), centers[None]
    return thing_seg * group_pixels(centers, offsets), centers[None]


def merge_semantic_and_instance(sem_seg: torch.Tensor, ins_seg: torch.Tensor, semantic_thing_seg: torch.Tensor,
                                label_divisor: int, thing_ids: Collection[int], stuff_area: int,
                                void_label: int) -> torch.Tensor:
    """(1, H, W) panoptic ids. Each instance (within the thing mask) takes the majority class
    of its pixels (ties: the smallest class) and the next instance number of that class, in
    instance-id order; each stuff class takes its pixels outside instances when they number at
    least ``stuff_area``; the rest is ``void_label``."""
    thing_ids = {int(t) for t in thing_ids}
    pan_seg = torch.full_like(sem_seg, void_label)
    is_thing = (ins_seg > 0) & (semantic_thing_seg > 0)
    numbers: Counter[int] = Counter()
    for ins_id in torch.unique(ins_seg).tolist():
        if ins_id == 0:
            continue
        mask = (ins_seg == ins_id) & is_thing
        if not bool(mask.any()):
            continue
        class_id = int(torch.mode(sem_seg[mask].flatten()).values)
        numbers[class_id] += 1
        pan_seg[mask] = class_id * label_divisor + numbers[class_id]
    for class_id in torch.unique(sem_seg).tolist():
        if class_id in thing_ids:
            continue
        stuff_mask = (sem_seg == class_id) & (ins_seg == 0)
        if int(stuff_mask.sum()) >= stuff_area:
            pan_seg[stuff_mask] = class_id * label_divisor
    return pan_seg


def get_panoptic_segmentation(sem_seg: torch.Tensor, center_heatmap: torch.Tensor, offsets: torch.Tensor,
                              thing_ids: Collection[int], label_divisor: int, stuff_area: int, void_label: int,
                              threshold: float = 0.1, nms_kernel: int = 7, top_k: int | None = 200,
                              foreground_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Panoptic ids (1, H, W) int64 and the centers (1, K, 2) from the (1, H, W) semantic labels,
    the (1, H, W) center heatmap and the (2, H, W) offsets; the thing mask is ``foreground_mask``
    or the pixels whose class is in ``thing_ids``."""
    if sem_seg.dim() != 3 or sem_seg.shape[0] != 1:
        raise ValueError(f"Semantic prediction with un-supported shape: {tuple(sem_seg.shape)} (expected (1, H, W))")
    if center_heatmap.dim() != 3:
        raise ValueError(f"Center prediction with un-supported dimension: {center_heatmap.dim()} (expected (1, H, W))")
    if offsets.dim() != 3 or offsets.shape[0] != 2:
        raise ValueError(f"Offset prediction with un-supported shape: {tuple(offsets.shape)} (expected (2, H, W))")
    thing_ids = [int(t) for t in thing_ids]
    if foreground_mask is not None:
        if foreground_mask.dim() != 3 or foreground_mask.shape[0] != 1:
            raise ValueError(f"Foreground prediction with un-supported shape: {tuple(foreground_mask.shape)}")
        thing_seg = foreground_mask
    else:
        thing_seg = torch.isin(sem_seg, torch.tensor(thing_ids, dtype=sem_seg.dtype, device=sem_seg.device))
        thing_seg = thing_seg.to(sem_seg.dtype)
    instance, center = get_instance_segmentation(sem_seg, center_heatmap, offsets, thing_seg, thing_ids,
                                                 threshold=threshold, nms_kernel=nms_kernel, top_k=top_k)
    panoptic = merge_semantic_and_instance(sem_seg, instance, thing_seg, label_divisor, thing_ids, stuff_area,
                                           void_label)
    return panoptic, center
