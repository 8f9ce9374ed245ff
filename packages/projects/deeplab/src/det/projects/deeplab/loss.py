"""DeepLab's hard-pixel-mining cross entropy (detectron2's ``DeepLabCE``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DeepLabCE"]


class DeepLabCE(nn.Module):
    """Per-pixel cross entropy averaged over the ``top_k_percent_pixels`` hardest pixels only
    (TensorFlow DeepLab's hard pixel mining, :paper:`DeeperLab`); 1.0 averages all pixels.

    Invariant: pixels labelled ``ignore_label`` cost 0 but still count as pixels (as detectron2,
    the average's denominator is every pixel, or the top-k count)::

        loss = DeepLabCE(ignore_label=255, top_k_percent_pixels=0.2)
        value = loss(logits, labels)            # logits (N, C, H, W), labels (N, H, W) int64
        value = loss(logits, labels, weights)   # weights (N, H, W) scale each pixel's loss
    """

    def __init__(self, ignore_label: int = -1, top_k_percent_pixels: float = 1.0,
                 weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if not 0.0 < top_k_percent_pixels <= 1.0:
            raise ValueError(f"DeepLabCE: top_k_percent_pixels must be in (0, 1], got {top_k_percent_pixels}")
        self.top_k_percent_pixels = top_k_percent_pixels
        self.ignore_label = ignore_label
        self.criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_label, reduction="none")

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        pixel_losses = self.criterion(logits, labels)
        if weights is not None:
            pixel_losses = pixel_losses * weights
        pixel_losses = pixel_losses.reshape(-1)
        if self.top_k_percent_pixels == 1.0:
            return pixel_losses.mean()
        # at least one pixel: an empty top-k would average to NaN on tiny inputs
        k = max(1, int(self.top_k_percent_pixels * pixel_losses.numel()))
        return torch.topk(pixel_losses, k).values.mean()
