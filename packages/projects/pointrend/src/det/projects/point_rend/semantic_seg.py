"""PointRend for semantic segmentation (``SEM_SEG_HEADS`` component ``PointRendSemSegHead``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from det.core.layers import ShapeSpec, cat
from det.core.registry import get_component
from det.projects.point_rend.point_features import (
    get_uncertain_point_coords_on_grid,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    put_point_logits,
)
from det.projects.point_rend.point_head import build_point_head

__all__ = ["PointRendSemSegHead", "calculate_uncertainty"]


def calculate_uncertainty(sem_seg_logits: Tensor) -> Tensor:
    """Uncertainty of semantic logits: the second-best minus the best class logit (at most 0;
    the closer to 0, the less sure).

    Args:
        sem_seg_logits: (N, C, ...) logits, C >= 2.

    Returns:
        (N, 1, ...) uncertainties.
    """
    top2 = torch.topk(sem_seg_logits, k=2, dim=1).values
    return (top2[:, 1] - top2[:, 0]).unsqueeze(1)


class PointRendSemSegHead(nn.Module):
    """A coarse semantic head (``MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME``, a ``SEM_SEG_HEADS``
    component with ``layers`` and ``losses``, e.g. ``SemSegFPNHead``) refined by a point head
    (``MODEL.POINT_HEAD.NAME``) at uncertain points.

    Training: the coarse head's losses plus ``loss_sem_seg_point`` (cross-entropy at
    ``TRAIN_NUM_POINTS`` points chosen by uncertainty). Inference: ``SUBDIVISION_STEPS`` rounds of
    2x upsampling, each recomputing the ``SUBDIVISION_NUM_POINTS`` most uncertain pixels.
    Parameters: ``coarse_sem_seg_head.*`` and ``point_head.*``.
    """

    def __init__(self, cfg, input_shape: dict[str, ShapeSpec]):
        super().__init__()
        self.ignore_value = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
        coarse = get_component("SEM_SEG_HEADS", cfg.MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME)
        if isinstance(coarse, type) and issubclass(coarse, PointRendSemSegHead):
            raise ValueError(f"MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME is {cfg.MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME!r}, "
                             "a PointRend head itself; name the coarse head it refines, e.g. SemSegFPNHead")
        self.coarse_sem_seg_head = coarse(cfg, input_shape)
        for method in ("layers", "losses"):
            if not callable(getattr(self.coarse_sem_seg_head, method, None)):
                raise ValueError(f"MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME {cfg.MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME!r} "
                                 f"has no {method}() method; PointRendSemSegHead needs a head like SemSegFPNHead")
        self._init_point_head(cfg, input_shape)

    def _init_point_head(self, cfg, input_shape: dict[str, ShapeSpec]) -> None:
        if cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES != cfg.MODEL.POINT_HEAD.NUM_CLASSES:
            raise ValueError(f"MODEL.POINT_HEAD.NUM_CLASSES ({cfg.MODEL.POINT_HEAD.NUM_CLASSES}) must equal "
                             f"MODEL.SEM_SEG_HEAD.NUM_CLASSES ({cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES})")
        self.in_features = list(cfg.MODEL.POINT_HEAD.IN_FEATURES)
        missing = [f for f in self.in_features if f not in input_shape]
        if missing:
            raise ValueError(f"MODEL.POINT_HEAD.IN_FEATURES names {missing}, which the backbone does not produce; "
                             f"available: {sorted(input_shape)}")
        self.train_num_points = cfg.MODEL.POINT_HEAD.TRAIN_NUM_POINTS
        self.oversample_ratio = cfg.MODEL.POINT_HEAD.OVERSAMPLE_RATIO
        self.importance_sample_ratio = cfg.MODEL.POINT_HEAD.IMPORTANCE_SAMPLE_RATIO
        self.subdivision_steps = cfg.MODEL.POINT_HEAD.SUBDIVISION_STEPS
        self.subdivision_num_points = cfg.MODEL.POINT_HEAD.SUBDIVISION_NUM_POINTS
        in_channels = sum(input_shape[f].channels for f in self.in_features)
        self.point_head = build_point_head(cfg, ShapeSpec(channels=in_channels, width=1, height=1))

    def _fine_grained(self, features: dict[str, Tensor], point_coords: Tensor) -> Tensor:
        return cat([point_sample(features[f], point_coords, align_corners=False) for f in self.in_features], dim=1)

    def forward(self, features: dict[str, Tensor], targets: Tensor | None = None):
        """
        Args:
            features: the backbone's maps.
            targets: training only, (N, H, W) int64 labels at the padded input resolution.

        Returns:
            training: ``(None, losses)``; inference: ``((N, C, H', W') logits, {})``, H' = the
            coarse resolution times 2**SUBDIVISION_STEPS.
        """
        coarse_logits = self.coarse_sem_seg_head.layers(features)
        if self.training:
            if targets is None:
                raise ValueError("PointRendSemSegHead in training mode needs targets: (N, H, W) int64 class ids")
            losses = self.coarse_sem_seg_head.losses(coarse_logits, targets)
            with torch.no_grad():
                point_coords = get_uncertain_point_coords_with_randomness(
                    coarse_logits, calculate_uncertainty, self.train_num_points, self.oversample_ratio,
                    self.importance_sample_ratio)
            coarse_features = point_sample(coarse_logits, point_coords, align_corners=False)
            point_logits = self.point_head(self._fine_grained(features, point_coords), coarse_features)
            point_targets = point_sample(targets.unsqueeze(1).to(torch.float), point_coords, mode="nearest",
                                         align_corners=False).squeeze(1).to(torch.long)
            losses["loss_sem_seg_point"] = F.cross_entropy(point_logits, point_targets, reduction="mean",
                                                           ignore_index=self.ignore_value)
            return None, losses
        logits = coarse_logits.clone()
        for _ in range(self.subdivision_steps):
            logits = F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)
            point_indices, point_coords = get_uncertain_point_coords_on_grid(
                calculate_uncertainty(logits), self.subdivision_num_points)
            coarse_features = point_sample(coarse_logits, point_coords, align_corners=False)
            point_logits = self.point_head(self._fine_grained(features, point_coords), coarse_features)
            logits = put_point_logits(logits, point_indices, point_logits)
        return logits, {}
