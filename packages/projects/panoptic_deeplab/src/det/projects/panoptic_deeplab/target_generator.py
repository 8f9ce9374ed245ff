"""Panoptic-DeepLab's training targets from a panoptic label map (detectron2's
``PanopticDeepLabTargetGenerator``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["PanopticDeepLabTargetGenerator"]


class PanopticDeepLabTargetGenerator:
    """Turns an (H, W) panoptic id map and its ``segments_info`` into the targets
    :class:`PanopticDeepLab` trains on.

    Invariant: every thing segment (category in ``thing_ids``) contributes a Gaussian of
    ``sigma`` at its mass centre to ``center`` (overlaps take the maximum) and, for each of its
    pixels, the offset ``(cy - y, cx - x)`` to that centre; crowd segments and unlabeled pixels
    get weight 0 for the center and offset losses::

        gen = PanopticDeepLabTargetGenerator(ignore_label=255, thing_ids={11, 12}, sigma=8)
        targets = gen(panoptic_ids, segments_info)   # sem_seg, center, offset, *_weights, center_points
    """

    def __init__(
        self,
        ignore_label: int,
        thing_ids: Collection[int],
        sigma: int = 8,
        ignore_stuff_in_offset: bool = False,
        small_instance_area: int = 0,
        small_instance_weight: float = 1,
        ignore_crowd_in_semantic: bool = False,
    ) -> None:
        """
        Args:
            ignore_label: the semantic label of unlabeled pixels.
            thing_ids: the contiguous category ids of thing classes.
            sigma: the Gaussian's standard deviation, in pixels.
            ignore_stuff_in_offset: stuff pixels get offset weight 0.
            small_instance_area, small_instance_weight: things smaller than the area (pixels) get
                that semantic loss weight.
            ignore_crowd_in_semantic: crowd pixels keep ``ignore_label`` (as TensorFlow DeepLab).
        """
        self.ignore_label = ignore_label
        self.thing_ids = {int(t) for t in thing_ids}
        self.ignore_stuff_in_offset = ignore_stuff_in_offset
        self.small_instance_area = small_instance_area
        self.small_instance_weight = small_instance_weight
        self.ignore_crowd_in_semantic = ignore_crowd_in_semantic
        self.sigma = sigma
        # the Gaussian stamped at each center: (6 sigma + 3) pixels wide, peak 1 at its middle
        size = 6 * sigma + 3
        x = np.arange(0, size, 1, float)
        y = x[:, None]
        mid = 3 * sigma + 1
        self.g = np.exp(-((x - mid) ** 2 + (y - mid) ** 2) / (2 * sigma**2))

    def __call__(self, panoptic: np.ndarray, segments_info: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """
        Args:
            panoptic: (H, W) segment ids (an RGB panoptic PNG through ``rgb2id``).
            segments_info: one dict per segment: ``id``, ``category_id`` (contiguous), ``iscrowd``.

        Returns:
            ``sem_seg`` (H, W) int64, ``center`` (H, W) float32, ``center_points`` list of
            (y, x), ``offset`` (2, H, W) float32 as (dy, dx), ``sem_seg_weights`` (H, W),
            ``center_weights`` and ``offset_weights`` (1, H, W) float32 (0 ignores a pixel).
        """
        panoptic = np.asarray(panoptic)
        if panoptic.ndim != 2:
            raise ValueError(f"PanopticDeepLabTargetGenerator expects an (H, W) panoptic id map, got shape "
                             f"{panoptic.shape}; convert an RGB panoptic PNG with rgb2id first")
        height, width = panoptic.shape
        semantic = np.full((height, width), self.ignore_label, dtype=np.int64)
        center = np.zeros((height, width), dtype=np.float32)
        center_points = []
        offset = np.zeros((2, height, width), dtype=np.float32)
        y_coord, x_coord = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32),
                                       indexing="ij")
        semantic_weights = np.ones((height, width), dtype=np.float32)
        center_weights = np.zeros((height, width), dtype=np.float32)
        offset_weights = np.zeros((height, width), dtype=np.float32)
        for i, seg in enumerate(segments_info):
            missing = [k for k in ("id", "category_id") if k not in seg]
            if missing:
                raise ValueError(f"segments_info[{i}] lacks {missing} (has {sorted(seg)})")
            cat_id = int(seg["category_id"])
            crowd = bool(seg.get("iscrowd", 0))
            mask = panoptic == seg["id"]
            if not (self.ignore_crowd_in_semantic and crowd):
                semantic[mask] = cat_id
            if not crowd:
                center_weights[mask] = 1
                if not self.ignore_stuff_in_offset or cat_id in self.thing_ids:
                    offset_weights[mask] = 1
            if cat_id not in self.thing_ids:
                continue
            ys, xs = np.nonzero(mask)
            if len(ys) == 0:
                continue  # cropped away entirely
            if len(ys) < self.small_instance_area:
                semantic_weights[mask] = self.small_instance_weight
            cy, cx = float(np.mean(ys)), float(np.mean(xs))
            center_points.append([cy, cx])
            self._stamp_gaussian(center, round(cy), round(cx))
            offset[0][ys, xs] = cy - y_coord[ys, xs]
            offset[1][ys, xs] = cx - x_coord[ys, xs]
        return {
            "sem_seg": torch.as_tensor(semantic),
            "center": torch.as_tensor(center),
            "center_points": center_points,
            "offset": torch.as_tensor(offset),
            "sem_seg_weights": torch.as_tensor(semantic_weights),
            "center_weights": torch.as_tensor(center_weights[None]),
            "offset_weights": torch.as_tensor(offset_weights[None]),
        }

    def _stamp_gaussian(self, center: np.ndarray, y: int, x: int) -> None:
        """Max the Gaussian, its peak at (y, x), into ``center``, clipped at the borders."""
        height, width = center.shape
        s = self.sigma
        left, top = int(np.round(x - 3 * s - 1)), int(np.round(y - 3 * s - 1))
        right, bottom = int(np.round(x + 3 * s + 2)), int(np.round(y + 3 * s + 2))
        x0, x1 = max(0, left), min(right, width)
        y0, y1 = max(0, top), min(bottom, height)
        if x0 >= x1 or y0 >= y1:
            return
        patch = self.g[y0 - top:y1 - top, x0 - left:x1 - left]
        center[y0:y1, x0:x1] = np.maximum(center[y0:y1, x0:x1], patch)
