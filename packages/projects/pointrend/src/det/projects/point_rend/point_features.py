"""Point sampling: features and labels at real-valued points, and PointRend's point selection.

Shapes: N is the batch (regions for instance segmentation, images for semantic segmentation),
R the number of regions over all images, P the number of points. Point coordinates are (x, y)
in [0, 1] x [0, 1] of a map (or of a box, "box-normalised"), unlike ``grid_sample``'s [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from det.core.layers import cat
from det.structures import BitMasks, Boxes, Instances

__all__ = [
    "generate_regular_grid_point_coords",
    "get_point_coords_wrt_image",
    "get_uncertain_point_coords_on_grid",
    "get_uncertain_point_coords_with_randomness",
    "point_sample",
    "point_sample_fine_grained_features",
    "put_point_logits",
    "sample_point_labels",
]


def point_sample(input: Tensor, point_coords: Tensor, **kwargs) -> Tensor:
    """Bilinear features of ``input`` at ``point_coords`` in [0, 1] x [0, 1] (``grid_sample``
    with the coordinates mapped to its [-1, 1]; ``kwargs`` go to ``grid_sample``, e.g.
    ``align_corners=False``, ``mode="nearest"``).

    Args:
        input: (N, C, H, W) maps.
        point_coords: (N, P, 2) points, or (N, Hgrid, Wgrid, 2) grids of points, as (x, y).

    Returns:
        (N, C, P), or (N, C, Hgrid, Wgrid) for grids.

        point_sample(torch.arange(4.).view(1, 1, 2, 2), torch.tensor([[[0.25, 0.75]]]),
                     align_corners=False)     # [[[2.]]]: the centre of the bottom-left pixel
    """
    if not isinstance(input, Tensor) or input.dim() != 4:
        raise ValueError(f"point_sample: input must be an (N, C, H, W) tensor, got {_shape(input)}")
    if not isinstance(point_coords, Tensor) or point_coords.dim() not in (3, 4) or point_coords.shape[-1] != 2:
        raise ValueError(
            f"point_sample: point_coords must be an (N, P, 2) or (N, H, W, 2) tensor, got {_shape(point_coords)}")
    if point_coords.shape[0] != input.shape[0]:
        raise ValueError(f"point_sample: input has {input.shape[0]} maps but point_coords has "
                         f"{point_coords.shape[0]} sets of points; they must match")
    points = point_coords.unsqueeze(2) if point_coords.dim() == 3 else point_coords
    out = F.grid_sample(input, points * 2.0 - 1.0, **kwargs)
    return out.squeeze(3) if point_coords.dim() == 3 else out


def _shape(x: object) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__


def generate_regular_grid_point_coords(R: int, side_size: int, device: torch.device | str) -> Tensor:
    """The centres of a ``side_size`` x ``side_size`` grid of cells on [0, 1] x [0, 1], row by
    row, repeated for ``R`` regions: an (R, side_size**2, 2) tensor (an expanded view)."""
    centres = (torch.arange(side_size, dtype=torch.float32, device=device) + 0.5) / side_size
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return grid.unsqueeze(0).expand(R, -1, -1)


def get_uncertain_point_coords_with_randomness(
    coarse_logits: Tensor,
    uncertainty_func: Callable[[Tensor], Tensor],
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> Tensor:
    """PointRend's training points: ``int(num_points * oversample_ratio)`` uniformly random
    candidates, of which the ``int(importance_sample_ratio * num_points)`` most uncertain are
    kept, the rest of the ``num_points`` being fresh uniform points.

    Uncertainty is computed on the logits *interpolated at each candidate* (a point between a -1
    and a +1 logit is maximally uncertain), not interpolated from per-pixel uncertainties.

    Args:
        coarse_logits: (N, C, H, W) (or (N, 1, H, W) class-agnostic) coarse predictions.
        uncertainty_func: maps (N, C, P) point logits to (N, 1, P) uncertainties (higher = less sure).
        num_points: P.
        oversample_ratio: the paper's k (>= 1).
        importance_sample_ratio: the paper's beta, in [0, 1].

    Returns:
        (N, P, 2) point coordinates in [0, 1] x [0, 1]: the uncertain ones first.
    """
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1 (MODEL.POINT_HEAD.OVERSAMPLE_RATIO), got {oversample_ratio}")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError("importance_sample_ratio must be in [0, 1] (MODEL.POINT_HEAD.IMPORTANCE_SAMPLE_RATIO), "
                         f"got {importance_sample_ratio}")
    n = coarse_logits.shape[0]
    device = coarse_logits.device
    num_candidates = int(num_points * oversample_ratio)
    candidates = torch.rand(n, num_candidates, 2, device=device)
    candidate_logits = point_sample(coarse_logits, candidates, align_corners=False)
    uncertainties = uncertainty_func(candidate_logits)
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    chosen = torch.topk(uncertainties[:, 0, :], k=num_uncertain, dim=1).indices
    coords = torch.gather(candidates, 1, chosen.unsqueeze(-1).expand(-1, -1, 2))
    if num_random > 0:
        coords = cat([coords, torch.rand(n, num_random, 2, device=device)], dim=1)
    return coords


def get_uncertain_point_coords_on_grid(uncertainty_map: Tensor, num_points: int) -> tuple[Tensor, Tensor]:
    """The ``num_points`` most uncertain cells of an H x W grid (all of them if fewer).

    Args:
        uncertainty_map: (N, 1, H, W) uncertainties (higher = less sure).
        num_points: P.

    Returns:
        point_indices: (N, P) flat indices in [0, H*W), most uncertain first.
        point_coords: (N, P, 2) the cells' centres in [0, 1] x [0, 1], as (x, y).
    """
    n, _, h, w = uncertainty_map.shape
    num_points = min(h * w, num_points)
    point_indices = torch.topk(uncertainty_map.reshape(n, h * w), k=num_points, dim=1).indices
    xs = ((point_indices % w).to(torch.float32) + 0.5) / w
    ys = ((point_indices // w).to(torch.float32) + 0.5) / h
    return point_indices, torch.stack([xs, ys], dim=2)


def get_point_coords_wrt_image(boxes_coords: Tensor, point_coords: Tensor) -> Tensor:
    """Box-normalised points to image coordinates (pixels).

    Args:
        boxes_coords: (R, 4) boxes (x0, y0, x1, y1).
        point_coords: (R, P, 2) points in [0, 1] x [0, 1] of each box.

    Returns:
        (R, P, 2) image coordinates (no gradient).
    """
    with torch.no_grad():
        origin = boxes_coords[:, None, 0:2]
        size = boxes_coords[:, None, 2:4] - origin
        return point_coords * size + origin


def point_sample_fine_grained_features(
    features_list: Sequence[Tensor], feature_scales: Sequence[float], boxes: Sequence[Boxes], point_coords: Tensor
) -> tuple[Tensor, Tensor]:
    """Features of every map of ``features_list`` at box-normalised points, concatenated.

    Args:
        features_list: (N_images, C_i, H_i, W_i) maps.
        feature_scales: each map's scale (1 / stride).
        boxes: per image, its R_i boxes (R = sum R_i).
        point_coords: (R, P, 2) points in [0, 1] x [0, 1] of each box.

    Returns:
        point_features: (R, sum C_i, P).
        point_coords_wrt_image: (R, P, 2) the points in image pixels.
    """
    cat_boxes = Boxes.cat(list(boxes))
    num_boxes = [len(b) for b in boxes]
    coords_image = get_point_coords_wrt_image(cat_boxes.tensor, point_coords)
    per_image = []
    for i, coords in enumerate(torch.split(coords_image, num_boxes)):
        sampled = []
        for feature_map, scale in zip(features_list, feature_scales):
            h, w = feature_map.shape[-2:]
            # the image extent this map covers, in pixels: its size times its stride
            extent = torch.tensor([w / scale, h / scale], dtype=coords.dtype, device=feature_map.device)
            normalised = (coords.to(feature_map.device) / extent).unsqueeze(0)  # (1, R_i, P, 2)
            values = point_sample(feature_map[i : i + 1], normalised.to(feature_map.dtype), align_corners=False)
            sampled.append(values[0].transpose(0, 1))  # (C, R_i, P) -> (R_i, C, P)
        per_image.append(cat(sampled, dim=1))
    return cat(per_image, dim=0), coords_image


def sample_point_labels(instances: Sequence[Instances], point_coords: Tensor) -> Tensor:
    """Ground-truth mask values (bilinear, in [0, 1]) at image-pixel points, from ``gt_masks``.

    Args:
        instances: per image, R_i regions with ``gt_masks`` as ``BitMasks``.
        point_coords: (R, P, 2) points in image pixels (x, y).

    Returns:
        (R, P) labels.
    """
    with torch.no_grad():
        labels = []
        splits = torch.split(point_coords, [len(x) for x in instances])
        for i, (instances_per_image, coords) in enumerate(zip(instances, splits)):
            if len(instances_per_image) == 0:
                continue
            gt_masks = instances_per_image.gt_masks
            if not isinstance(gt_masks, BitMasks):
                raise ValueError(
                    f"PointRend samples point labels from bitmasks, but image {i}'s gt_masks are "
                    f"{type(gt_masks).__name__}; set INPUT.MASK_FORMAT to 'bitmask'")
            masks = gt_masks.tensor
            h, w = gt_masks.image_size
            size = torch.tensor([w, h], dtype=torch.float32, device=masks.device)
            labels.append(
                point_sample(masks.to(torch.float32).unsqueeze(1), coords.to(masks.device) / size,
                             align_corners=False).squeeze(1))
    return cat(labels) if labels else point_coords.new_zeros((0, point_coords.shape[1]))


def put_point_logits(logits: Tensor, point_indices: Tensor, point_logits: Tensor) -> Tensor:
    """Write (N, C, P) point predictions into (N, C, H, W) ``logits`` at flat cells (N, P)."""
    n, c, h, w = logits.shape
    index = point_indices.unsqueeze(1).expand(-1, c, -1)
    return logits.reshape(n, c, h * w).scatter(2, index, point_logits.to(logits.dtype)).view(n, c, h, w)
