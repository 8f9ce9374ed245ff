"""Training-time visualisation helpers for meta-architectures.

det-core cannot import det-engine's Visualizer, so models draw their ``vis_period`` images with
these two small functions::

    img = to_rgb_uint8(batched_inputs[0]["image"], self.input_format)
    storage.put_image(name, draw_boxes(img, gt_boxes_xyxy, (0, 255, 0)).transpose(2, 0, 1))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["draw_boxes", "to_rgb_uint8"]


def to_rgb_uint8(image: torch.Tensor, input_format: str) -> np.ndarray:
    """(C, H, W) model input -> (H, W, 3) uint8 RGB."""
    img = image.detach().cpu().permute(1, 2, 0).numpy()
    if input_format == "BGR":
        img = img[:, :, ::-1]
    elif input_format == "L" or img.shape[2] == 1:
        img = np.repeat(img[:, :, :1], 3, axis=2)
    rgb: np.ndarray = np.clip(img, 0, 255).astype(np.uint8)
    return rgb


def draw_boxes(img: np.ndarray, boxes: Any, color: Sequence[int]) -> np.ndarray:
    """Outline XYXY ``boxes`` in ``color`` on a copy of the (H, W, 3) ``img``."""
    img = img.copy()
    h, w = img.shape[:2]
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        x0, x1 = (int(np.clip(round(v), 0, w - 1)) for v in (x0, x1))
        y0, y1 = (int(np.clip(round(v), 0, h - 1)) for v in (y0, y1))
        img[y0 : y1 + 1, [x0, x1]] = color
        img[[y0, y1], x0 : x1 + 1] = color
    return img
