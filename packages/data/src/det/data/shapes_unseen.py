"""Shapes drawn differently: a second, independent renderer of circles, squares and triangles, to
check that a model trained on :mod:`det.data.shapes` learned the shapes and not the quirks
of that generator.

    from det.data.shapes_unseen import UNSEEN_PRESETS, register_unseen_shapes
    register_unseen_shapes(UNSEEN_PRESETS["all"], name="unseen_all")   # COCO json + PNGs, cached
    DefaultTrainer.test(cfg, model)   # with cfg.DATASETS.TEST = ("unseen_all",)

What differs from the training generator, each switchable (:class:`UnseenShapesConfig`):

- the renderer: PIL draws each shape at ``supersample`` times the size and the result is averaged
  down, so edges are anti-aliased (the training images have hard, pycocotools-rasterised edges);
  circles are PIL ellipses, not 40-gons; triangles may be any triangle with angles of at least
  ``min_triangle_angle`` degrees, not only equilateral ones;
- sizes: image and shape sizes of their own (the presets go from 12 to 120 px);
- colours: shapes filled with a gradient or with texture, backgrounds with noise, stripes or a
  gradient, and a smaller least colour difference between a shape and what is behind it;
- noise: Gaussian noise and JPEG compression.

Masks are the visible parts, as in the training data: a pixel belongs to a shape when more than
half of it is covered by that shape and not by a later one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image, ImageDraw, ImageFilter

from det.data.catalog import DatasetCatalog, MetadataCatalog
from det.data.shapes import (
    SHAPES_CLASSES,
    ShapesLayout,
    _random_color,
    default_shapes_root,
    get_shapes_metadata,
)

__all__ = ["UNSEEN_PRESETS", "UnseenShapesConfig", "prepare_unseen_shapes", "register_unseen_shapes"]

_RENDERER_VERSION = 1

_FILLS = ("solid", "gradient", "texture")
_BACKGROUNDS = ("flat", "gradient", "noise", "stripes")


@dataclasses.dataclass(frozen=True, kw_only=True)
class UnseenShapesConfig(ShapesLayout):
    """How the differently drawn shapes are made; equal configs give identical images.

        UnseenShapesConfig(num_images=50, noise_std=15.0, jpeg_quality=50)

    ``fills``/``backgrounds`` are the styles drawn from (``solid``, ``gradient``, ``texture`` /
    ``flat``, ``gradient``, ``noise``, ``stripes``); ``min_contrast`` is the least RGB distance
    between a shape's colour and the colours it is drawn over; ``jpeg_quality`` 0 keeps PNG
    quality.
    """

    seed: int = 1
    num_images: int = 100
    min_triangle_angle: float = 60.0
    fills: tuple[str, ...] = ("solid",)
    backgrounds: tuple[str, ...] = ("gradient",)
    min_contrast: float = 110.0
    noise_std: float = 3.0
    jpeg_quality: int = 0
    supersample: int = 4

    def __post_init__(self) -> None:
        self._validate([
            (self.num_images >= 0, "num_images must be >= 0"),
            (20.0 <= self.min_triangle_angle <= 60.0, "min_triangle_angle must be in [20, 60] degrees"),
            (bool(self.fills) and set(self.fills) <= set(_FILLS), f"fills must be some of {_FILLS}"),
            (bool(self.backgrounds) and set(self.backgrounds) <= set(_BACKGROUNDS),
             f"backgrounds must be some of {_BACKGROUNDS}"),
            (0.0 <= self.min_contrast <= 200.0, "min_contrast must be in [0, 200]"),
            (self.noise_std >= 0.0, "noise_std must be >= 0"),
            (0 <= self.jpeg_quality <= 95, "jpeg_quality must be in [0, 95] (0: no JPEG)"),
            (1 <= self.supersample <= 8, "supersample must be in [1, 8]"),
        ])

    def fingerprint(self) -> str:
        return self._fingerprint(_RENDERER_VERSION)


UNSEEN_PRESETS: dict[str, UnseenShapesConfig] = {
    # the training data's sizes and solid colours: only the renderer (and the triangles) differ
    "renderer": UnseenShapesConfig(seed=1, min_triangle_angle=40.0),
    # larger images, smaller and larger shapes, up to 5 of them
    "sizes": UnseenShapesConfig(seed=2, min_image_size=224, max_image_size=320, max_shapes=5, min_shape_size=12,
                                max_shape_size=120),
    # gradient and textured fills on noisy, striped or gradient backgrounds, less contrast
    "colors": UnseenShapesConfig(seed=3, fills=_FILLS, backgrounds=_BACKGROUNDS, min_contrast=70.0),
    # strong sensor noise and JPEG artefacts
    "noise": UnseenShapesConfig(seed=4, noise_std=14.0, jpeg_quality=40),
    # everything at once
    "all": UnseenShapesConfig(seed=5, min_image_size=192, max_image_size=288, max_shapes=5, min_shape_size=14,
                              max_shape_size=110, min_triangle_angle=40.0, fills=_FILLS, backgrounds=_BACKGROUNDS,
                              min_contrast=80.0, noise_std=10.0, jpeg_quality=60),
}
"""Named variations, each 100 images by default (``dataclasses.replace(preset, num_images=50)``)."""


# -- drawing ---------------------------------------------------------------------------------


def _triangle(rng: np.random.Generator, size: float, min_angle: float) -> np.ndarray:
    """Vertices (3,2) around the origin of a triangle with all angles >= ``min_angle`` degrees
    and longest side ``size``."""
    while True:
        a = rng.uniform(min_angle, 180.0 - 2 * min_angle) if min_angle < 60.0 else 60.0
        b = rng.uniform(min_angle, 180.0 - a - min_angle) if min_angle < 60.0 else 60.0
        if 180.0 - a - b >= min_angle - 1e-9:
            break
    # base from (0,0) to (1,0), angles a at the first vertex and b at the second
    ra, rb = math.radians(a), math.radians(b)
    apex_x = math.tan(rb) / (math.tan(ra) + math.tan(rb))
    points = np.array([[0.0, 0.0], [1.0, 0.0], [apex_x, apex_x * math.tan(ra)]])
    sides = [np.linalg.norm(points[i] - points[(i + 1) % 3]) for i in range(3)]
    points = (points - points.mean(axis=0)) * (size / max(sides))
    return points


def _outline(kind: str, rng: np.random.Generator, size: float, min_angle: float) -> np.ndarray | None:
    """Vertices (K,2) around the origin, rotated at random; None for a circle of diameter ``size``."""
    if kind == "circle":
        return None
    if kind == "square":
        half = size / 2
        points = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    else:
        points = _triangle(rng, size, min_angle)
    t = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return points @ rot.T


def _coverage(kind: str, outline: np.ndarray | None, cx: float, cy: float, size: float, height: int, width: int,
              s: int) -> np.ndarray:
    """Fraction of each pixel covered by the shape (H,W float32), from a drawing at ``s``x."""
    canvas = Image.new("L", (width * s, height * s), 0)
    draw = ImageDraw.Draw(canvas)
    if outline is None:
        r = size / 2
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s - 1, (cy + r) * s - 1], fill=255)
    else:
        draw.polygon([((cx + x) * s, (cy + y) * s) for x, y in outline], fill=255)
    big = np.asarray(canvas, dtype=np.float32) / 255.0
    return big.reshape(height, s, width, s).mean(axis=(1, 3))


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Blurred noise in [-1, 1] (H,W): a texture, not per-pixel sensor noise."""
    raw = Image.fromarray(((rng.random((height, width)) * 255)).astype(np.uint8))
    blurred = np.asarray(raw.filter(ImageFilter.GaussianBlur(radius=scale)), dtype=np.float32)
    blurred -= blurred.mean()
    peak = float(np.abs(blurred).max()) or 1.0
    return blurred / peak


def _paint(rng: np.random.Generator, style: str, color: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (H,W,3) layer of ``color`` in ``style``: flat, a linear gradient or a texture."""
    layer = np.broadcast_to(color, (height, width, 3)).astype(np.float32)
    if style in ("gradient",):
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (math.cos(angle) * xx + math.sin(angle) * yy) / max(height, width)
        layer = layer + ramp[..., None] * rng.uniform(-70, 70, size=3)
    elif style in ("texture", "noise"):
        layer = layer + _smooth_noise(rng, height, width, rng.uniform(1.0, 3.0))[..., None] * rng.uniform(15, 40)
    elif style == "stripes":
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 20)
        phase = (math.cos(angle) * xx + math.sin(angle) * yy) / period
        other = rng.integers(0, 256, size=3).astype(np.float32)
        mix = (np.sin(2 * math.pi * phase) > 0).astype(np.float32)[..., None] * 0.35
        layer = layer * (1 - mix) + other * mix
    return layer


def _render(rng: np.random.Generator, config: UnseenShapesConfig) -> tuple[np.ndarray, list[dict]]:
    height = int(rng.integers(config.min_image_size, config.max_image_size + 1))
    width = int(rng.integers(config.min_image_size, config.max_image_size + 1))
    bg_color = rng.integers(0, 256, size=3).astype(np.float32)
    bg_style = config.backgrounds[int(rng.integers(len(config.backgrounds)))]
    image = _paint(rng, "flat" if bg_style == "flat" else bg_style, bg_color, height, width)

    shapes: list[dict] = []
    num = int(rng.integers(config.min_shapes, config.max_shapes + 1))
    for _ in range(num):
        for _attempt in range(30):
            kind = SHAPES_CLASSES[int(rng.integers(len(SHAPES_CLASSES)))]
            top = min(config.max_shape_size, int(min(height, width) / 1.4))
            size = float(rng.uniform(config.min_shape_size, max(top, config.min_shape_size)))
            outline = _outline(kind, rng, size, config.min_triangle_angle)
            radius = size / 2 if outline is None else float(np.linalg.norm(outline, axis=1).max())
            if 2 * radius + 2 > min(height, width):
                continue
            cx = float(rng.uniform(radius + 1, width - radius - 1))
            cy = float(rng.uniform(radius + 1, height - radius - 1))
            cover = _coverage(kind, outline, cx, cy, size, height, width, config.supersample)
            solid = cover > 0.5
            # a later shape hides earlier ones: not more than max_occlusion of any of them
            ok = solid.any() and all(
                (s["visible"] & ~solid).sum() >= (1 - config.max_occlusion) * s["solid"].sum() for s in shapes)
            if ok:
                break
        else:
            continue
        underneath = image[solid].mean(axis=0) if solid.any() else bg_color
        # a random colour far enough from what it is drawn over (the training generator's rule)
        color = _random_color(rng, [bg_color, underneath] + [s["color"] for s in shapes], config.min_contrast)
        fill = config.fills[int(rng.integers(len(config.fills)))]
        layer = _paint(rng, fill, color, height, width)
        image = image * (1 - cover[..., None]) + layer * cover[..., None]
        for s in shapes:
            s["visible"] &= ~solid
        shapes.append({"kind": kind, "solid": solid, "visible": solid.copy(), "color": color})
    if config.noise_std > 0:
        image = image + rng.normal(0, config.noise_std, size=image.shape)
    out = np.clip(np.round(image), 0, 255).astype(np.uint8)
    if config.jpeg_quality:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=config.jpeg_quality)
        out = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return out, shapes


def _write(config: UnseenShapesConfig, out_dir: Path) -> Path:
    image_root = out_dir / "images"
    image_root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 7919]))
    images, annotations = [], []
    for image_id in range(1, config.num_images + 1):
        image, shapes = _render(rng, config)
        file_name = f"{image_id:06d}.png"
        Image.fromarray(image).save(image_root / file_name, compress_level=1)
        images.append({"id": image_id, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]})
        for s in shapes:
            if not s["visible"].any():
                continue
            rle = mask_util.encode(np.asfortranarray(s["visible"].astype(np.uint8)))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": SHAPES_CLASSES.index(s["kind"]) + 1,
                "bbox": [float(x) for x in mask_util.toBbox(rle)], "area": float(mask_util.area(rle)),
                "iscrowd": 0,
                "segmentation": {"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("ascii")},
            })
    coco = {"info": {"description": "det shapes, drawn by another renderer", "version": str(_RENDERER_VERSION)},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(SHAPES_CLASSES)]}
    json_file = out_dir / "instances.json"
    json_file.write_text(json.dumps(coco))
    (out_dir / "config.json").write_text(json.dumps({"renderer_version": _RENDERER_VERSION,
                                                     **dataclasses.asdict(config)}, indent=1))
    return json_file


def prepare_unseen_shapes(config: UnseenShapesConfig, root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Draw the dataset for ``config`` under ``root`` (default: next to the shapes cache) unless it
    is there already; return ``(json_file, image_root)``. Written to a scratch folder renamed into
    place, so a crash never leaves half a dataset."""
    base = Path(root) if root is not None else default_shapes_root()
    final = base / f"unseen-{config.fingerprint()}"
    if not (final / "config.json").is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
        try:
            _write(config, scratch)
            try:
                os.rename(scratch, final)
            except OSError:
                if not (final / "config.json").is_file():
                    raise
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
    return final / "instances.json", final / "images"


def register_unseen_shapes(config: UnseenShapesConfig, name: str, root: str | os.PathLike | None = None) -> None:
    """Register ``name`` as a COCO dataset of ``config``'s images (drawn on first use), with the
    shapes dataset's classes and evaluator; an existing registration of ``name`` is replaced."""
    from det.data.datasets.coco import load_coco_json

    base = Path(root) if root is not None else default_shapes_root()
    final = base / f"unseen-{config.fingerprint()}"
    if name in DatasetCatalog:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)

    def load() -> list[dict[str, Any]]:
        json_file, image_root = prepare_unseen_shapes(config, base)
        return load_coco_json(json_file, image_root, name)

    DatasetCatalog.register(name, load)
    meta = {k: v for k, v in get_shapes_metadata().items() if not k.startswith("keypoint")}
    MetadataCatalog.get(name).set(json_file=str(final / "instances.json"), image_root=str(final / "images"),
                                  evaluator_type="coco", unseen_shapes_config=dataclasses.asdict(config),
                                  thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(SHAPES_CLASSES))},
                                  **meta)
