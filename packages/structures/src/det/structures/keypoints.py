"""Keypoint annotations (:class:`Keypoints`) and the heatmap <-> keypoint conversions of Mask R-CNN."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from det.structures.boxes import _check_cat_items

__all__ = ["Keypoints", "heatmaps_to_keypoints"]


class Keypoints:
    """Keypoint annotations of N instances: a float32 (N, K, 3) tensor of (x, y, visibility).

    Invariant: ``tensor`` has shape (N, K, 3). Visibility follows COCO: 0 not labeled (x = y = 0),
    1 labeled but not visible, 2 labeled and visible::

        kpts = Keypoints(torch.tensor([[[10.0, 20.0, 2.0], [0.0, 0.0, 0.0]]]))
        heatmaps, valid = kpts.to_heatmap(torch.tensor([[0.0, 0.0, 56.0, 56.0]]), 56)
        heatmaps                                 # tensor([[1130, 0]]), valid: tensor([[1, 0]])
    """

    def __init__(self, keypoints: torch.Tensor | np.ndarray | list[Any]) -> None:
        device = keypoints.device if isinstance(keypoints, torch.Tensor) else torch.device("cpu")
        if isinstance(keypoints, (list, tuple)) and keypoints and isinstance(keypoints[0], torch.Tensor):
            keypoints = torch.stack(list(keypoints))
        try:
            keypoints = torch.as_tensor(keypoints, dtype=torch.float32, device=device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"Keypoints expects an (N, K, 3) tensor, array or nested list of numbers: {e}"
            ) from None
        if keypoints.dim() != 3 or keypoints.shape[2] != 3:
            raise ValueError(
                f"Keypoints expects shape (N, K, 3) of (x, y, visibility), got {tuple(keypoints.shape)}"
            )
        self.tensor = keypoints

    def __len__(self) -> int:
        return self.tensor.size(0)

    def to(self, *args: Any, **kwargs: Any) -> Keypoints:
        return type(self)(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to_heatmap(self, boxes: torch.Tensor, heatmap_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot training targets: keypoint i of instance n as a flat index into its box's heatmap.

        Args:
            boxes: (N, 4) boxes (x0, y0, x1, y1) to draw the keypoints in.
            heatmap_size: side of the square heatmap.

        Returns:
            heatmaps: (N, K) long, ``y * heatmap_size + x`` for valid keypoints, else 0.
            valid: (N, K) long, 1 where the keypoint is visible (v > 0) and inside its box.
        """
        return _keypoints_to_heatmap(self.tensor, boxes, heatmap_size)

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> Keypoints:
        """``kpts[3]`` (one instance), ``kpts[2:10]``, ``kpts[bool_vector]`` or ``kpts[long_vector]``."""
        if isinstance(item, (int, np.integer)):
            return Keypoints(self.tensor[item].unsqueeze(0))
        return Keypoints(self.tensor[item])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.tensor)})"

    @staticmethod
    def cat(keypoints_list: Sequence[Keypoints]) -> Keypoints:
        """Concatenate Keypoints with the same number of keypoints per instance."""
        _check_cat_items(keypoints_list, Keypoints)
        return type(keypoints_list[0])(torch.cat([k.tensor for k in keypoints_list], dim=0))


def _keypoints_to_heatmap(
    keypoints: torch.Tensor, rois: torch.Tensor, heatmap_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode (N, K, 3) keypoints into flat heatmap indices inside (N, 4) rois.

    A keypoint at continuous coordinate c of the half-open box [x0, x1) lands in discrete cell
    floor((c - x0) * size / (x1 - x0)) (Heckbert's d = floor(c)); one lying exactly on the far edge
    x1 is kept, in the last cell.
    """
    if rois.numel() == 0:
        return rois.new().long(), rois.new().long()
    offset_x = rois[:, 0][:, None]
    offset_y = rois[:, 1][:, None]
    scale_x = (heatmap_size / (rois[:, 2] - rois[:, 0]))[:, None]
    scale_y = (heatmap_size / (rois[:, 3] - rois[:, 1]))[:, None]

    x = keypoints[..., 0]
    y = keypoints[..., 1]
    x_boundary_inds = x == rois[:, 2][:, None]
    y_boundary_inds = y == rois[:, 3][:, None]

    x = ((x - offset_x) * scale_x).floor().long()
    y = ((y - offset_y) * scale_y).floor().long()
    x[x_boundary_inds] = heatmap_size - 1
    y[y_boundary_inds] = heatmap_size - 1

    valid_loc = (x >= 0) & (y >= 0) & (x < heatmap_size) & (y < heatmap_size)
    vis = keypoints[..., 2] > 0
    valid = (valid_loc & vis).long()

    lin_ind = y * heatmap_size + x
    heatmaps = lin_ind * valid
    return heatmaps, valid


def heatmaps_to_keypoints(maps: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Decode predicted keypoint heatmaps into image coordinates (detectron2's algorithm).

    Args:
        maps: (R, K, H, W) heatmap logits of each ROI and keypoint.
        rois: (R, 4) boxes (x0, y0, x1, y1) of the ROIs.

    Returns:
        (R, K, 4) of (x, y, logit, score). Each map is upsampled bicubically to the ROI's size
        (rounded up, at least 1), the arg-max cell gives x, y (cell centre, c = d + 0.5, scaled back
        by size / ceil(size)); score is that cell's softmax value, normalised over the H x W map so
        that scores of small and large objects are comparable.
    """
    if maps.dim() != 4:
        raise ValueError(f"heatmaps_to_keypoints expects maps of shape (R, K, H, W), got {tuple(maps.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 4 or rois.shape[0] != maps.shape[0]:
        raise ValueError(
            f"heatmaps_to_keypoints expects rois of shape ({maps.shape[0]}, 4), got {tuple(rois.shape)}"
        )
    maps = maps.detach()
    rois = rois.detach()

    offset_x = rois[:, 0]
    offset_y = rois[:, 1]
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths_ceil = widths.ceil()
    heights_ceil = heights.ceil()

    num_rois, num_keypoints = maps.shape[:2]
    xy_preds = maps.new_zeros(rois.shape[0], num_keypoints, 4)
    width_corrections = widths / widths_ceil
    height_corrections = heights / heights_ceil
    keypoints_idx = torch.arange(num_keypoints, device=maps.device)

    # every ROI's output size read in one transfer (on a GPU, each int(tensor) is a host
    # synchronisation); the sizes are whole numbers, so the int64 conversion is exact
    outsizes = torch.stack([heights_ceil, widths_ceil], dim=1).to(torch.int64).tolist()
    for i in range(num_rois):
        outsize = (outsizes[i][0], outsizes[i][1])
        roi_map = F.interpolate(maps[i : i + 1], size=outsize, mode="bicubic", align_corners=False).squeeze(0)

        # Softmax over the upsampled map, normalised by the pooled map's sum.
        max_score, _ = roi_map.view(num_keypoints, -1).max(1)
        max_score = max_score.view(num_keypoints, 1, 1)
        tmp_full_resolution = (roi_map - max_score).exp_()
        tmp_pool_resolution = (maps[i] - max_score).exp_()
        roi_map_scores = tmp_full_resolution / tmp_pool_resolution.sum((1, 2), keepdim=True)

        w = roi_map.shape[2]
        pos = roi_map.view(num_keypoints, -1).argmax(1)
        x_int = pos % w
        y_int = (pos - x_int) // w

        x = (x_int.float() + 0.5) * width_corrections[i]
        y = (y_int.float() + 0.5) * height_corrections[i]
        xy_preds[i, :, 0] = x + offset_x[i]
        xy_preds[i, :, 1] = y + offset_y[i]
        xy_preds[i, :, 2] = roi_map[keypoints_idx, y_int, x_int]
        xy_preds[i, :, 3] = roi_map_scores[keypoints_idx, y_int, x_int]
    return xy_preds
