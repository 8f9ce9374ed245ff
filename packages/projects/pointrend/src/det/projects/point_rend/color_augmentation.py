"""SSD's photometric augmentation (Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016),
used by PointRend's semantic segmentation training when ``INPUT.COLOR_AUG_SSD`` is on."""

from __future__ import annotations

import random

import cv2
import numpy as np

from det.core.transforms import Transform

__all__ = ["ColorAugSSDTransform"]


class ColorAugSSDTransform(Transform):
    """Random brightness, then contrast / saturation / hue (contrast first or last, at random),
    each step applied with probability 1/2; geometry is untouched. The randomness is drawn from
    Python's ``random`` when ``apply_image`` runs, as detectron2's.

        t = ColorAugSSDTransform(img_format="BGR")
        out = t.apply_image(img_uint8_hwc)      # same shape, uint8
    """

    def __init__(self, img_format: str, brightness_delta: float = 32, contrast_low: float = 0.5,
                 contrast_high: float = 1.5, saturation_low: float = 0.5, saturation_high: float = 1.5,
                 hue_delta: int = 18):
        """
        Args:
            img_format: "BGR" or "RGB" (INPUT.FORMAT).
            brightness_delta: brightness shifts are uniform in [-delta, delta].
            contrast_low, contrast_high: contrast factors are uniform in this range.
            saturation_low, saturation_high: saturation factors are uniform in this range.
            hue_delta: hue shifts are integers in [-delta, delta] of OpenCV's 0..179 hue.
        """
        super().__init__()
        if img_format not in ("BGR", "RGB"):
            raise ValueError(f"ColorAugSSDTransform: img_format must be 'BGR' or 'RGB' (INPUT.FORMAT), got {img_format!r}")
        self.is_rgb = img_format == "RGB"
        self.brightness_delta = brightness_delta
        self.contrast_low = contrast_low
        self.contrast_high = contrast_high
        self.saturation_low = saturation_low
        self.saturation_high = saturation_high
        self.hue_delta = hue_delta

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"ColorAugSSDTransform works on (H, W, 3) uint8 images, got {img.dtype} {img.shape}")
        if self.is_rgb:
            img = img[:, :, ::-1]
        img = self.brightness(img)
        if random.randrange(2):
            img = self.hue(self.saturation(self.contrast(img)))
        else:
            img = self.contrast(self.hue(self.saturation(img)))
        if self.is_rgb:
            img = img[:, :, ::-1]
        return np.ascontiguousarray(img)

    def convert(self, img: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
        return np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    def brightness(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            return self.convert(img, beta=random.uniform(-self.brightness_delta, self.brightness_delta))
        return img

    def contrast(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            return self.convert(img, alpha=random.uniform(self.contrast_low, self.contrast_high))
        return img

    def saturation(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
            hsv[:, :, 1] = self.convert(hsv[:, :, 1], alpha=random.uniform(self.saturation_low, self.saturation_high))
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img

    def hue(self, img: np.ndarray) -> np.ndarray:
        if random.randrange(2):
            hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2HSV)
            hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + random.randint(-self.hue_delta, self.hue_delta)) % 180
            return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return img
