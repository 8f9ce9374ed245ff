"""VideoVisualizer: detectron2's frame-by-frame drawing with colours that stay with an instance.

    vis = VideoVisualizer(MetadataCatalog.get("coco_2017_val"))
    for frame in frames:                      # RGB (H,W,3)
        out = vis.draw_instance_predictions(frame, predictor(frame[:, :, ::-1])["instances"])

Invariant: an instance keeps its colour while it is matched to one of the previous frame's
instances (same class, box IoU >= 0.5); unmatched instances get a fresh colour, and a colour is
forgotten after ``ttl`` frames without a match (detectron2's rule of thumb: 8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from det.engine.visualizer import ColorMode, VisImage, Visualizer, _create_text_labels, random_color

__all__ = ["VideoVisualizer"]


@dataclass
class _Tracked:
    box: np.ndarray | None
    label: int | None
    color: np.ndarray
    ttl: int


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,4) x (M,4) XYXY -> (N,M) IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class VideoVisualizer:
    """Draws predictions on video frames; see the module docstring for the colour rule."""

    def __init__(self, metadata: Any, instance_mode: ColorMode = ColorMode.IMAGE) -> None:
        if instance_mode not in (ColorMode.IMAGE, ColorMode.IMAGE_BW):
            raise ValueError(f"VideoVisualizer supports ColorMode.IMAGE and IMAGE_BW, got {instance_mode}")
        self.metadata = metadata
        self._instance_mode = instance_mode
        self._old_instances: list[_Tracked] = []
        self._max_num_instances = int(metadata.get("max_num_instances", 74)) if metadata is not None else 74
        self._ttl = 8

    def draw_instance_predictions(self, frame: np.ndarray, predictions: Any) -> VisImage:
        """Boxes, labels, masks and keypoints of ``predictions`` (Instances) on ``frame`` (RGB)."""
        visualizer = Visualizer(frame, self.metadata, instance_mode=self._instance_mode)
        num = len(predictions)
        if num == 0:
            return visualizer.output
        boxes = predictions.pred_boxes.tensor.cpu().numpy() if predictions.has("pred_boxes") else None
        scores = predictions.scores.tolist() if predictions.has("scores") else None
        classes = predictions.pred_classes.tolist() if predictions.has("pred_classes") else None
        keypoints = predictions.pred_keypoints if predictions.has("pred_keypoints") else None
        masks = predictions.pred_masks if predictions.has("pred_masks") else None
        colors = self._assign_colors(boxes, classes, num)
        labels = _create_text_labels(classes, scores, self.metadata.get("thing_classes", None)
                                     if self.metadata is not None else None)
        if self._instance_mode == ColorMode.IMAGE_BW:
            visualizer.output.reset_image(visualizer._create_grayscale_image(None))
            alpha = 0.3
        else:
            alpha = 0.5
        visualizer.overlay_instances(boxes=boxes, masks=masks, labels=labels, keypoints=keypoints,
                                     assigned_colors=colors, alpha=alpha)
        return visualizer.output

    def draw_sem_seg(self, frame: np.ndarray, sem_seg: Any, area_threshold: int | None = None) -> VisImage:
        """A semantic segmentation (H,W) of class ids (or (C,H,W) scores) on ``frame``."""
        return Visualizer(frame, self.metadata).draw_sem_seg(sem_seg, area_threshold=area_threshold)

    def draw_panoptic_seg_predictions(self, frame: np.ndarray, panoptic_seg: Any, segments_info: list[dict] | None,
                                      area_threshold: int | None = None, alpha: float = 0.5) -> VisImage:
        """A panoptic segmentation on ``frame`` (colours per segment as the image Visualizer)."""
        return Visualizer(frame, self.metadata).draw_panoptic_seg(panoptic_seg, segments_info,
                                                                  area_threshold=area_threshold)

    def _assign_colors(self, boxes: np.ndarray | None, classes: list[int] | None, num: int) -> list[np.ndarray]:
        """Colours for this frame's instances: a matched previous instance's colour, else a new one."""
        if boxes is None:  # nothing to match by: fresh colours, nothing remembered
            return [random_color(rgb=True, maximum=1) for _ in range(num)]
        old = self._old_instances
        matched: dict[int, int] = {}
        if old and all(t.box is not None for t in old):
            iou = _box_iou(np.stack([t.box for t in old if t.box is not None]), boxes)
            for j in range(len(old)):
                for i in range(num):
                    if classes is not None and old[j].label is not None and old[j].label != classes[i]:
                        iou[j, i] = 0.0
            while iou.size and iou.max() >= 0.5:
                j, i = np.unravel_index(int(iou.argmax()), iou.shape)
                matched[int(i)] = int(j)
                iou[j, :] = 0.0
                iou[:, i] = 0.0
        colors = []
        new_tracked = []
        for i in range(num):
            color = old[matched[i]].color if i in matched else random_color(rgb=True, maximum=1)
            colors.append(color)
            new_tracked.append(_Tracked(boxes[i], classes[i] if classes is not None else None, color, self._ttl))
        kept = [t for j, t in enumerate(old) if j not in matched.values() and t.ttl > 1]
        for t in kept:
            t.ttl -= 1
        self._old_instances = (new_tracked + kept)[: self._max_num_instances]
        return colors
