"""Draw predictions and annotations on images with PIL (detectron2's ``utils.visualizer``).

No matplotlib: boxes, labels, masks, keypoints with their skeleton, semantic and panoptic
segmentations are drawn on a PIL canvas and saved as PNG.

    v = Visualizer(image_rgb, MetadataCatalog.get("shapes_val"))
    v.draw_instance_predictions(outputs["instances"].to("cpu")).save("pred.png")
"""

from __future__ import annotations

import colorsys
import math
import os
from enum import Enum, unique
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image, ImageColor, ImageDraw, ImageFont

__all__ = ["ColorMode", "GenericMask", "VisImage", "Visualizer", "colormap", "random_color", "random_colors"]

_SMALL_OBJECT_AREA_THRESH = 1000
_KEYPOINT_THRESHOLD = 0.05
_RED = (255, 0, 0)
_OFF_WHITE = (255, 255, 240)
_BLACK = (0, 0, 0)


def _make_palette(n: int = 64) -> list[tuple[int, int, int]]:
    # Golden-ratio hue steps: neighbours in the list are far apart in hue.
    colors = []
    for i in range(n):
        h = (0.07 + i * 0.618033988749895) % 1.0
        s = 0.65 + 0.25 * ((i // 7) % 2)
        v = 0.95 - 0.2 * ((i // 3) % 2)
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors


_PALETTE = _make_palette()


def colormap(rgb: bool = False, maximum: int = 255) -> np.ndarray:
    """det's palette as a (64, 3) float array in [0, maximum], BGR unless ``rgb`` (detectron2's
    ``utils.colormap.colormap``; the colours are det's own, spread by golden-ratio hue steps)."""
    palette = np.array(_PALETTE, dtype=np.float64) * (maximum / 255.0)
    return palette if rgb else palette[:, ::-1]


def random_color(rgb: bool = False, maximum: int = 255, index: int | None = None) -> np.ndarray:
    """A colour of det's palette: the ``index``-th (deterministic) or a random one; BGR (RGB with
    ``rgb=True``) in [0, maximum], as detectron2's ``random_color``."""
    i = np.random.randint(0, len(_PALETTE)) if index is None else index % len(_PALETTE)
    return colormap(rgb, maximum)[i]


def random_colors(n: int, rgb: bool = False, maximum: int = 255) -> list[np.ndarray]:
    """``n`` different palette colours in random order (repeating past 64), BGR unless ``rgb``."""
    palette = colormap(rgb, maximum)
    order = np.random.permutation(len(palette))
    return [palette[order[i % len(palette)]] for i in range(n)]


def _to_rgb(color: Any) -> tuple[int, int, int]:
    """Colour names ("g", "red", "#00ff00"), (r,g,b) floats in [0,1] or ints in [0,255]."""
    short = {
        "g": "green",
        "r": "red",
        "b": "blue",
        "w": "white",
        "k": "black",
        "y": "yellow",
        "c": "cyan",
        "m": "magenta",
    }
    if isinstance(color, str):
        rgb = ImageColor.getrgb(short.get(color, color))
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    arr = np.asarray(color, dtype=np.float64).reshape(-1)
    if arr.size not in (3, 4):
        raise ValueError(f"a colour needs 3 components (r, g, b), got {color!r}")
    arr = arr[:3]
    if arr.max() <= 1.0 and not np.issubdtype(np.asarray(color).dtype, np.integer):
        arr = arr * 255.0
    arr = np.clip(np.round(arr), 0, 255)
    return (int(arr[0]), int(arr[1]), int(arr[2]))


def _change_color_brightness(color: tuple[int, int, int], brightness_factor: float) -> tuple[int, int, int]:
    """Lighter (factor > 0) or darker (< 0) version of ``color``, in HLS lightness, as detectron2."""
    if not -1.0 <= brightness_factor <= 1.0:
        raise ValueError(f"brightness_factor must be in [-1, 1], got {brightness_factor}")
    h, lightness, s = colorsys.rgb_to_hls(*(c / 255.0 for c in color))
    modified = lightness + brightness_factor * lightness
    modified = 0.0 if modified < 0.0 else min(modified, 1.0)
    r, g, b = colorsys.hls_to_rgb(h, modified, s)
    return (round(r * 255), round(g * 255), round(b * 255))


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _segmentation_to_mask(segm: Any, height: int, width: int) -> np.ndarray:
    """Polygons (list of flat lists), RLE dict or (H,W) array -> bool (H,W) mask."""
    if isinstance(segm, dict):
        if isinstance(segm.get("counts"), list):
            segm = mask_util.frPyObjects(segm, *segm["size"])
        return mask_util.decode(segm).astype(bool)
    if isinstance(segm, list):
        polys = [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in segm]
        polys = [p for p in polys if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), dtype=bool)
        rles = mask_util.frPyObjects(polys, height, width)
        return mask_util.decode(mask_util.merge(rles)).astype(bool)
    arr = _to_numpy(segm)
    if arr.ndim != 2:
        raise ValueError(f"a mask must be (H,W), polygons or RLE; got an array of shape {arr.shape}")
    return arr.astype(bool)


class GenericMask:
    """One instance mask given as polygons, an RLE dict or an (H, W) array, with both forms
    available (detectron2's ``utils.visualizer.GenericMask``)::

        m = GenericMask([[10, 10, 30, 10, 30, 20]], height=40, width=40)
        m.mask.shape, m.area(), m.bbox()   # (40, 40), 100, [11., 10., 30., 20.]

    Polygons of an array or RLE mask are traced exactly on pixel corners by
    :func:`det.structures.mask_to_polygons` (detectron2 uses OpenCV contours through pixel centres).
    """

    def __init__(self, mask_or_polygons: Any, height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)
        self._mask: np.ndarray | None = None
        self._polygons: list[np.ndarray] | None = None
        self._has_holes: bool | None = None
        if isinstance(mask_or_polygons, list):
            self._polygons = [np.asarray(p, dtype=np.float64).reshape(-1) for p in mask_or_polygons]
            self._polygons = [p for p in self._polygons if len(p) >= 6]
            self._has_holes = False
            return
        mask = _segmentation_to_mask(mask_or_polygons, self.height, self.width)
        if mask.shape != (self.height, self.width):
            raise ValueError(
                f"GenericMask: the mask is {mask.shape[0]}x{mask.shape[1]}, expected {self.height}x{self.width}"
            )
        self._mask = mask.astype(np.uint8)

    @property
    def mask(self) -> np.ndarray:
        """The (H, W) uint8 0/1 mask."""
        if self._mask is None:
            self._mask = _segmentation_to_mask(list(self.polygons), self.height, self.width).astype(np.uint8)
        return self._mask

    @property
    def polygons(self) -> list[np.ndarray]:
        """Flat [x0, y0, x1, y1, ...] outlines (outer outlines, then holes)."""
        if self._polygons is None:
            from det.structures import mask_to_polygons

            self._polygons, self._has_holes = mask_to_polygons(self.mask)
        return self._polygons

    @property
    def has_holes(self) -> bool:
        if self._has_holes is None:
            self.polygons  # noqa: B018  (tracing the outlines finds the holes)
        return bool(self._has_holes)

    def area(self) -> int:
        return int(self.mask.sum())

    def bbox(self) -> np.ndarray:
        """[x0, y0, x1, y1] around the rasterized polygons (pycocotools' box of their union, as
        detectron2)."""
        if not self.polygons:
            return np.zeros(4, dtype=np.float64)
        rle = mask_util.merge(mask_util.frPyObjects([p.tolist() for p in self.polygons], self.height, self.width))
        box = mask_util.toBbox(rle).astype(np.float64)
        box[2:] += box[:2]
        return box


def _masks_to_list(masks: Any, height: int, width: int) -> list[np.ndarray]:
    if masks is None:
        return []
    # det.structures masks: PolygonMasks carries .polygons, BitMasks/ROIMasks .tensor
    if hasattr(masks, "polygons"):
        return [
            _segmentation_to_mask([np.asarray(p) for p in polys], height, width) for polys in masks.polygons
        ]
    if hasattr(masks, "tensor"):
        masks = masks.tensor
    if isinstance(masks, (torch.Tensor, np.ndarray)):
        arr = _to_numpy(masks)
        if arr.ndim != 3:
            raise ValueError(f"masks must be (N,H,W), got shape {arr.shape}")
        return [m.astype(bool) for m in arr]
    return [_segmentation_to_mask(m, height, width) for m in masks]


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    padded = np.pad(mask, 1, mode="constant", constant_values=False)
    interior = (
        padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )
    return mask & ~interior


def _create_text_labels(
    classes: list[int] | None,
    scores: list[float] | None,
    class_names: list[str] | None,
    is_crowd: list[int] | None = None,
) -> list[str] | None:
    """ "name score%" labels (detectron2's format); "|crowd" marks crowd annotations."""
    labels = None
    if classes is not None:
        if class_names is not None and len(class_names) > 0:
            labels = [class_names[i] for i in classes]
        else:
            labels = [str(i) for i in classes]
    if scores is not None:
        if labels is None:
            labels = [f"{s * 100:.0f}%" for s in scores]
        else:
            labels = [f"{lbl} {s * 100:.0f}%" for lbl, s in zip(labels, scores)]
    if labels is not None and is_crowd is not None:
        labels = [lbl + ("|crowd" if crowd else "") for lbl, crowd in zip(labels, is_crowd)]
    return labels


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap font
        return ImageFont.load_default()


@unique
class ColorMode(Enum):
    """How instances are coloured: IMAGE (palette colours over the image), SEGMENTATION (the same
    colour per category, from ``thing_colors``), IMAGE_BW (image in grayscale, masks in colour)."""

    IMAGE = 0
    SEGMENTATION = 1
    IMAGE_BW = 2


class VisImage:
    """An RGB canvas of the image scaled by ``scale``; drawing happens on ``canvas``.

    vis = VisImage(image_rgb, scale=2.0)
    vis.get_image().shape  # (2H, 2W, 3) uint8
    vis.save("out.png")
    """

    def __init__(self, img: np.ndarray, scale: float = 1.0) -> None:
        img = _to_numpy(img)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"VisImage needs an (H,W,3) RGB image, got shape {img.shape}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.img = img
        self.scale = scale
        self.height, self.width = img.shape[:2]
        self.reset_image(img)

    def reset_image(self, img: np.ndarray) -> None:
        img = np.clip(_to_numpy(img), 0, 255).astype(np.uint8)
        canvas = Image.fromarray(img, mode="RGB")
        size = (max(int(self.width * self.scale + 0.5), 1), max(int(self.height * self.scale + 0.5), 1))
        if canvas.size != size:
            canvas = canvas.resize(size, Image.Resampling.BILINEAR)
        self.canvas = canvas

    def save(self, filepath: str | os.PathLike) -> None:
        """Write the canvas (PNG or any format PIL infers from the extension)."""
        os.makedirs(os.path.dirname(os.path.abspath(os.fspath(filepath))), exist_ok=True)
        self.canvas.save(filepath)

    def get_image(self) -> np.ndarray:
        """The canvas as an (H*scale, W*scale, 3) uint8 RGB array."""
        return np.asarray(self.canvas).copy()


class Visualizer:
    """Draws on a copy of ``img_rgb`` (H,W,3 RGB, uint8 range); every ``draw_*`` returns the
    :class:`VisImage` holding the drawing so far. Coordinates are in input-image pixels.

        v = Visualizer(img[:, :, ::-1], MetadataCatalog.get("shapes_train"), scale=2.0)
        out = v.draw_dataset_dict(dataset_dict)
        out.save("gt.png")
    """

    def __init__(
        self,
        img_rgb: np.ndarray,
        metadata: Any = None,
        scale: float = 1.0,
        instance_mode: ColorMode = ColorMode.IMAGE,
    ) -> None:
        img = np.asarray(_to_numpy(img_rgb))
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"Visualizer needs an (H,W,3) RGB image, got shape {img.shape}")
        self.img = np.clip(img, 0, 255).astype(np.uint8)
        if metadata is None:
            from det.data.catalog import Metadata

            metadata = Metadata(name="__nonexist__")
        self.metadata = metadata
        self.output = VisImage(self.img, scale=scale)
        self.cpu_device = torch.device("cpu")
        # Text stays readable on small images and does not dominate big ones.
        self._default_font_size = max(
            int(math.sqrt(self.output.height * self.output.width) // 90), int(10 // scale), 8
        )
        self._instance_mode = instance_mode
        self.keypoint_threshold = _KEYPOINT_THRESHOLD

    # -- high level -------------------------------------------------------------------------

    def draw_instance_predictions(self, predictions: Any) -> VisImage:
        """Boxes, "class score%" labels, masks and keypoints of predicted ``Instances``."""
        boxes = predictions.pred_boxes if predictions.has("pred_boxes") else None
        scores = predictions.scores.tolist() if predictions.has("scores") else None
        classes = predictions.pred_classes.tolist() if predictions.has("pred_classes") else None
        labels = _create_text_labels(classes, scores, self.metadata.get("thing_classes", None))
        keypoints = predictions.pred_keypoints if predictions.has("pred_keypoints") else None
        masks = predictions.pred_masks if predictions.has("pred_masks") else None

        colors = None
        alpha = 0.5
        if (
            self._instance_mode == ColorMode.SEGMENTATION
            and self.metadata.get("thing_colors")
            and classes is not None
        ):
            colors = [self._jitter(self.metadata.thing_colors[c]) for c in classes]
            alpha = 0.8
        if self._instance_mode == ColorMode.IMAGE_BW:
            self.output.reset_image(
                self._create_grayscale_image(
                    _masks_to_list(masks, self.output.height, self.output.width)
                    if masks is not None
                    else None
                )
            )
            alpha = 0.3
        self.overlay_instances(
            masks=masks, boxes=boxes, labels=labels, keypoints=keypoints, assigned_colors=colors, alpha=alpha
        )
        return self.output

    def draw_sem_seg(self, sem_seg: Any, area_threshold: int | None = None, alpha: float = 0.8) -> VisImage:
        """Colour every label of an (H,W) label map (a (C,H,W) score map is argmax-ed first) with
        ``stuff_colors`` and write its ``stuff_classes`` name; labels >= #classes are skipped."""
        sem_seg = _to_numpy(sem_seg)
        if sem_seg.ndim == 3:
            sem_seg = sem_seg.argmax(axis=0)
        if sem_seg.ndim != 2:
            raise ValueError(f"sem_seg must be an (H,W) label map, got shape {sem_seg.shape}")
        labels, areas = np.unique(sem_seg, return_counts=True)
        sorted_idxs = np.argsort(-areas).tolist()
        labels = labels[sorted_idxs]
        stuff_classes = self.metadata.get("stuff_classes", None)
        stuff_colors = self.metadata.get("stuff_colors", None)
        for label in labels:
            label = int(label)
            if stuff_classes is not None and not 0 <= label < len(stuff_classes):
                continue
            mask_color = _to_rgb(stuff_colors[label]) if stuff_colors else _PALETTE[label % len(_PALETTE)]
            text = stuff_classes[label] if stuff_classes is not None else str(label)
            self.draw_binary_mask(
                sem_seg == label,
                color=mask_color,
                edge_color=_OFF_WHITE,
                text=text,
                alpha=alpha,
                area_threshold=area_threshold,
            )
        return self.output

    def draw_panoptic_seg(
        self,
        panoptic_seg: Any,
        segments_info: list[dict] | None,
        area_threshold: int | None = None,
        alpha: float = 0.7,
    ) -> VisImage:
        """Stuff segments like :meth:`draw_sem_seg`, thing segments as instance masks with labels."""
        pan = _to_numpy(panoptic_seg).astype(np.int64)
        if segments_info is None:
            label_divisor = self.metadata.get("label_divisor", None)
            if label_divisor is None:
                raise ValueError("draw_panoptic_seg without segments_info needs metadata 'label_divisor'")
            thing_ids = set(self.metadata.get("thing_dataset_id_to_contiguous_id", {}).values())
            segments_info = [
                {
                    "id": int(i),
                    "category_id": int(i) // label_divisor,
                    "isthing": int(i) // label_divisor in thing_ids,
                }
                for i in np.unique(pan)
                if i >= 0
            ]
        stuff_classes = self.metadata.get("stuff_classes", None)
        stuff_colors = self.metadata.get("stuff_colors", None)
        things = []
        for info in sorted(segments_info, key=lambda s: -int((pan == s["id"]).sum())):
            mask = pan == info["id"]
            if not mask.any():
                continue
            if info.get("isthing", False):
                things.append((mask, info))
                continue
            cat = int(info["category_id"])
            color = _to_rgb(stuff_colors[cat]) if stuff_colors else _PALETTE[cat % len(_PALETTE)]
            text = stuff_classes[cat] if stuff_classes and cat < len(stuff_classes) else str(cat)
            self.draw_binary_mask(
                mask,
                color=color,
                edge_color=_OFF_WHITE,
                text=text,
                alpha=alpha,
                area_threshold=area_threshold,
            )
        if things:
            masks = [m for m, _ in things]
            categories = [int(i["category_id"]) for _, i in things]
            scores = [i["score"] for _, i in things] if all("score" in i for _, i in things) else None
            labels = _create_text_labels(
                categories,
                scores,
                self.metadata.get("thing_classes", None),
                [i.get("iscrowd", 0) for _, i in things],
            )
            colors = None
            if self._instance_mode == ColorMode.SEGMENTATION and self.metadata.get("thing_colors"):
                colors = [self._jitter(self.metadata.thing_colors[c]) for c in categories]
            self.overlay_instances(masks=masks, labels=labels, assigned_colors=colors, alpha=alpha)
        return self.output

    def draw_dataset_dict(self, dic: dict) -> VisImage:
        """Ground truth of a standard dataset dict: annotations (boxes, class names, masks,
        keypoints), ``sem_seg``/``sem_seg_file_name`` and ``pan_seg``/``pan_seg_file_name``."""
        from det.structures import BoxMode

        annos = dic.get("annotations")
        if annos:
            masks = [x["segmentation"] for x in annos] if "segmentation" in annos[0] else None
            keypts = (
                np.array([x["keypoints"] for x in annos], dtype=np.float64).reshape(len(annos), -1, 3)
                if "keypoints" in annos[0]
                else None
            )
            boxes = [
                BoxMode.convert(list(x["bbox"]), x["bbox_mode"], BoxMode.XYXY_ABS)
                if len(x["bbox"]) == 4
                else x["bbox"]
                for x in annos
            ]
            category_ids = [x["category_id"] for x in annos]
            colors = None
            if self._instance_mode == ColorMode.SEGMENTATION and self.metadata.get("thing_colors"):
                colors = [self._jitter(self.metadata.thing_colors[c]) for c in category_ids]
            labels = _create_text_labels(
                category_ids,
                None,
                self.metadata.get("thing_classes", None),
                [x.get("iscrowd", 0) for x in annos],
            )
            self.overlay_instances(
                labels=labels, boxes=boxes, masks=masks, keypoints=keypts, assigned_colors=colors
            )

        sem_seg = dic.get("sem_seg")
        if sem_seg is None and "sem_seg_file_name" in dic:
            with Image.open(dic["sem_seg_file_name"]) as f:
                sem_seg = np.asarray(f, dtype="uint8")
        if sem_seg is not None:
            self.draw_sem_seg(sem_seg, area_threshold=0, alpha=0.5)

        pan_seg = dic.get("pan_seg")
        if pan_seg is None and "pan_seg_file_name" in dic:
            from det.evaluation.panoptic_evaluation import rgb2id

            with Image.open(dic["pan_seg_file_name"]) as f:
                pan_seg = rgb2id(np.asarray(f))
        if pan_seg is not None:
            self.draw_panoptic_seg(pan_seg, dic["segments_info"], area_threshold=0, alpha=0.5)
        return self.output

    def overlay_instances(
        self,
        *,
        boxes: Any = None,
        labels: list[str] | None = None,
        masks: Any = None,
        keypoints: Any = None,
        assigned_colors: list[Any] | None = None,
        alpha: float = 0.5,
    ) -> VisImage:
        """Draw N instances given by any of boxes (Boxes / (N,4) XYXY), labels, masks (bitmasks,
        polygons, RLE, PolygonMasks/BitMasks) and keypoints ((N,K,3) or Keypoints). Larger
        instances are drawn first so small ones stay visible on top."""
        h, w = self.output.height, self.output.width
        if boxes is not None:
            boxes = self._convert_boxes(boxes)
        mask_list = _masks_to_list(masks, h, w) if masks is not None else None
        if keypoints is not None:
            keypoints = _to_numpy(keypoints.tensor if hasattr(keypoints, "tensor") else keypoints)
            keypoints = (
                keypoints.reshape(len(keypoints), -1, 3) if len(keypoints) else keypoints.reshape(0, 0, 3)
            )
        num_instances = 0
        for x in (boxes, mask_list, keypoints, labels):
            if x is not None:
                if num_instances and len(x) != num_instances:
                    raise ValueError(
                        "boxes, masks, keypoints and labels must describe the same number of instances"
                    )
                num_instances = len(x)
        if num_instances == 0:
            return self.output
        if assigned_colors is None:
            assigned_colors = [_PALETTE[i % len(_PALETTE)] for i in range(num_instances)]
        colors = [_to_rgb(c) for c in assigned_colors]
        if len(colors) != num_instances:
            raise ValueError(f"{len(colors)} colours for {num_instances} instances")

        if boxes is not None:
            areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        elif mask_list is not None:
            areas = np.asarray([m.sum() for m in mask_list], dtype=np.float64)
        else:
            areas = None
        order = (
            np.argsort(-areas, kind="stable").tolist() if areas is not None else list(range(num_instances))
        )

        for i in order:
            color = colors[i]
            if mask_list is not None:
                self.draw_binary_mask(mask_list[i], color=color, alpha=alpha)
            if boxes is not None:
                self.draw_box(boxes[i], edge_color=color)
            if labels is not None:
                if boxes is not None:
                    x0, y0, _, y1 = boxes[i]
                    text_pos = (x0, y0)
                    horiz_align = "left"
                elif mask_list is not None and mask_list[i].any():
                    ys, xs = np.nonzero(mask_list[i])
                    text_pos = (float(np.median(xs)), float(np.median(ys)))
                    horiz_align = "center"
                else:
                    continue
                height_ratio = (
                    (y1 - y0) if boxes is not None else math.sqrt(areas[i] if areas is not None else 1)
                ) / math.sqrt(h * w)
                font_size = int(
                    np.clip((height_ratio - 0.02) / 0.08 + 1, 1.2, 2) * 0.5 * self._default_font_size
                )
                self.draw_text(
                    labels[i],
                    text_pos,
                    color=_change_color_brightness(color, 0.7),
                    horizontal_alignment=horiz_align,
                    font_size=max(font_size, 8),
                )
        if keypoints is not None:
            for keypoints_per_instance in keypoints:
                self.draw_and_connect_keypoints(keypoints_per_instance)
        return self.output

    def draw_and_connect_keypoints(self, keypoints: Any) -> VisImage:
        """Dots at keypoints with score above ``keypoint_threshold`` and the skeleton lines of
        ``keypoint_connection_rules`` between visible ones."""
        keypoints = _to_numpy(keypoints).reshape(-1, 3)
        visible = {}
        keypoint_names = self.metadata.get("keypoint_names")
        rules = self.metadata.get("keypoint_connection_rules")
        for idx, (x, y, prob) in enumerate(keypoints):
            if prob > self.keypoint_threshold and keypoint_names is not None and idx < len(keypoint_names):
                visible[keypoint_names[idx]] = (float(x), float(y))
        if rules:
            for kp0, kp1, color in rules:
                if kp0 in visible and kp1 in visible:
                    x0, y0 = visible[kp0]
                    x1, y1 = visible[kp1]
                    self.draw_line([x0, x1], [y0, y1], color=_to_rgb(tuple(int(c) for c in color)))
        for x, y, prob in keypoints:
            if prob > self.keypoint_threshold:
                self.draw_circle((float(x), float(y)), color=_RED)
        return self.output

    # -- primitives -------------------------------------------------------------------------

    def draw_text(
        self,
        text: str,
        position: tuple[float, float],
        *,
        font_size: int | None = None,
        color: Any = "g",
        horizontal_alignment: str = "center",
        rotation: float = 0,
    ) -> VisImage:
        """``text`` at ``position`` (x, y) on a dark translucent box; ``horizontal_alignment`` is
        "left", "center" or "right". ``rotation`` is accepted for detectron2 compatibility (text
        is drawn horizontally)."""
        if horizontal_alignment not in ("left", "center", "right"):
            raise ValueError(f"horizontal_alignment must be left/center/right, got {horizontal_alignment!r}")
        font = _font(int((font_size or self._default_font_size) * self.output.scale))
        s = self.output.scale
        x, y = position[0] * s, position[1] * s
        draw = ImageDraw.Draw(self.output.canvas, "RGBA")
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        if horizontal_alignment == "center":
            x -= tw / 2
        elif horizontal_alignment == "right":
            x -= tw
        # Keep the label inside the canvas.
        x = min(max(x, 0), max(self.output.canvas.width - tw - 2, 0))
        y = min(max(y, 0), max(self.output.canvas.height - th - 2, 0))
        draw.rectangle([x, y, x + tw + 2, y + th + 2], fill=(0, 0, 0, 160))
        draw.text((x + 1 - left, y + 1 - top), text, fill=_to_rgb(color), font=font)
        return self.output

    def draw_box(
        self, box_coord: Any, alpha: float = 0.5, edge_color: Any = "g", line_style: str = "-"
    ) -> VisImage:
        """An opaque rectangle outline (XYXY), ``max(font_size / 4, 1)`` pixels wide at scale 1.
        ``alpha`` and ``line_style`` are accepted for detectron2 compatibility."""
        x0, y0, x1, y1 = (float(v) for v in _to_numpy(box_coord).reshape(-1)[:4])
        s = self.output.scale
        linewidth = max(round(self._default_font_size / 4 * s), 1)
        draw = ImageDraw.Draw(self.output.canvas)
        # a box under one pixel (an untrained model predicts some) is drawn as a line, not refused by PIL
        draw.rectangle([x0 * s, y0 * s, max(x1 * s - 1, x0 * s), max(y1 * s - 1, y0 * s)],
                       outline=_to_rgb(edge_color), width=linewidth)
        return self.output

    def draw_circle(self, circle_coord: tuple[float, float], color: Any, radius: float = 3) -> VisImage:
        x, y = circle_coord
        s = self.output.scale
        r = max(radius * s, 1)
        draw = ImageDraw.Draw(self.output.canvas)
        draw.ellipse([x * s - r, y * s - r, x * s + r, y * s + r], fill=_to_rgb(color))
        return self.output

    def draw_line(
        self,
        x_data: list[float],
        y_data: list[float],
        color: Any,
        linestyle: str = "-",
        linewidth: float | None = None,
    ) -> VisImage:
        if linewidth is None:
            linewidth = self._default_font_size / 3
        s = self.output.scale
        draw = ImageDraw.Draw(self.output.canvas)
        draw.line(
            [(x * s, y * s) for x, y in zip(x_data, y_data)],
            fill=_to_rgb(color),
            width=max(round(linewidth * s), 1),
        )
        return self.output

    def draw_binary_mask(
        self,
        binary_mask: Any,
        color: Any = None,
        *,
        edge_color: Any = None,
        text: str | None = None,
        alpha: float = 0.5,
        area_threshold: int | None = 10,
    ) -> VisImage:
        """Blend ``color`` into the mask's pixels (``(1-alpha) * image + alpha * color``), outline
        it in ``edge_color`` (default: a darker ``color``) and optionally write ``text`` at its
        centre. Masks with fewer than ``area_threshold`` pixels are skipped."""
        mask = _to_numpy(binary_mask).astype(bool)
        if mask.shape != (self.output.height, self.output.width):
            raise ValueError(
                f"binary_mask has shape {mask.shape}, expected the image size {(self.output.height, self.output.width)}"
            )
        if area_threshold is not None and mask.sum() < area_threshold:
            return self.output
        color = _to_rgb(color) if color is not None else _to_rgb(random_color(rgb=True, maximum=255))
        edge = _to_rgb(edge_color) if edge_color is not None else _change_color_brightness(color, -0.7)
        canvas = self.output.canvas
        if canvas.size != (mask.shape[1], mask.shape[0]):
            mask = (
                np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(canvas.size, Image.Resampling.NEAREST))
                > 127
            )
        arr = np.asarray(canvas).astype(np.float32)
        arr[mask] = (1 - alpha) * arr[mask] + alpha * np.asarray(color, dtype=np.float32)
        arr[_boundary(mask)] = np.asarray(edge, dtype=np.float32)
        self.output.canvas = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), mode="RGB")
        if text is not None and mask.any():
            ys, xs = np.nonzero(_to_numpy(binary_mask).astype(bool))
            self.draw_text(
                text, (float(np.median(xs)), float(np.median(ys))), color=_change_color_brightness(color, 0.7)
            )
        return self.output

    def draw_polygon(self, segment: Any, color: Any, edge_color: Any = None, alpha: float = 0.5) -> VisImage:
        """Fill a polygon ((K,2) xy or flat list) like :meth:`draw_binary_mask`."""
        mask = _segmentation_to_mask([np.asarray(segment).reshape(-1)], self.output.height, self.output.width)
        return self.draw_binary_mask(mask, color=color, edge_color=edge_color, alpha=alpha, area_threshold=0)

    def get_output(self) -> VisImage:
        return self.output

    # -- helpers ----------------------------------------------------------------------------

    def _jitter(self, color: Any) -> tuple[int, int, int]:
        """``color`` moved a little (same per call sequence), so same-class instances differ."""
        rgb = np.asarray(_to_rgb(color), dtype=np.float64) / 255.0
        vec = np.random.rand(3)
        vec = vec / np.linalg.norm(vec) * 0.5
        res = np.clip(vec + rgb, 0, 1)
        return _to_rgb(tuple(float(v) for v in res))

    def _create_grayscale_image(self, masks: list[np.ndarray] | None = None) -> np.ndarray:
        img_bw = self.img.astype("f4").mean(axis=2)
        img_bw = np.stack([img_bw] * 3, axis=2)
        if masks:
            union = np.any(np.stack(masks), axis=0)
            img_bw[union] = self.img[union]
        return img_bw

    def _convert_boxes(self, boxes: Any) -> np.ndarray:
        if hasattr(boxes, "tensor"):
            boxes = boxes.tensor
        arr = _to_numpy(boxes) if not isinstance(boxes, list) else np.asarray([_to_numpy(b) for b in boxes])
        arr = np.asarray(arr, dtype=np.float64).reshape(-1, 4) if np.size(arr) else np.zeros((0, 4))
        return arr
