"""The built-in synthetic "shapes" dataset: circles, squares and triangles, in COCO format.

Nothing is downloaded: images and annotations are generated from a seed into a cache folder on
first use and reused afterwards; a different :class:`ShapesConfig` gets its own folder.

    from det.data import DatasetCatalog, MetadataCatalog
    dicts = DatasetCatalog.get("shapes_train")          # generates once, then reads the cache
    MetadataCatalog.get("shapes_train").thing_classes   # ['circle', 'square', 'triangle']

Masks are the *visible* parts: a shape drawn later hides what it covers. An unoccluded shape's
segmentation is its exact polygon (the image is rasterized from that very polygon, with
pycocotools, so mask and polygon agree pixel for pixel); an occluded shape's is the compressed
RLE of its visible pixels. Train with ``INPUT.MASK_FORMAT = "bitmask"`` (polygon masks cannot
hold RLE). Each shape has 5 keypoints: its centre and its top-, left-, right- and bottom-most
points (visibility 2 when visible, 1 when hidden by a later shape).
"""

from __future__ import annotations

import colorsys
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from det.data.catalog import DatasetCatalog, MetadataCatalog

__all__ = [
    "SHAPES_CLASSES",
    "SHAPES_KEYPOINT_CONNECTION_RULES",
    "SHAPES_KEYPOINT_FLIP_MAP",
    "SHAPES_KEYPOINT_NAMES",
    "SHAPES_KEYPOINT_OKS_SIGMAS",
    "ShapesConfig",
    "ShapesLayout",
    "default_shapes_root",
    "generate_shapes_split",
    "get_shapes_metadata",
    "prepare_shapes",
    "register_shapes",
]

logger = logging.getLogger(__name__)

# Bumped whenever the generator's output changes for the same config, so caches are redone.
_GENERATOR_VERSION = 1

SHAPES_CLASSES = ("circle", "square", "triangle")
SHAPES_KEYPOINT_NAMES = ("center", "top", "left", "right", "bottom")
SHAPES_KEYPOINT_FLIP_MAP = (("left", "right"),)
SHAPES_KEYPOINT_CONNECTION_RULES = (
    ("center", "top", (255, 0, 0)),
    ("center", "left", (0, 255, 0)),
    ("center", "right", (0, 0, 255)),
    ("center", "bottom", (255, 255, 0)),
)
# OKS falloff per keypoint (COCOeval needs one per keypoint): the centre is the easiest to place.
SHAPES_KEYPOINT_OKS_SIGMAS = (0.05, 0.07, 0.07, 0.07, 0.07)

_CIRCLE_VERTICES = 40  # max distance of the 40-gon to its circle is r*(1-cos(pi/40)) < 0.13 px at r=40


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShapesLayout:
    """What every shapes generator's config shares: image height and width drawn in
    [min_image_size, max_image_size], 1..max_shapes shapes (at least min_shapes) of size
    (diameter / side) in [min_shape_size, max_shape_size], and a placement that would hide more
    than ``max_occlusion`` of an earlier shape redrawn."""

    min_image_size: int = 128
    max_image_size: int = 192
    min_shapes: int = 1
    max_shapes: int = 4
    min_shape_size: int = 20
    max_shape_size: int = 80
    max_occlusion: float = 0.5

    def _validate(self, checks: list[tuple[bool, str]]) -> None:
        """Raise ValueError naming the config's class for the first failed check, the layout's own
        first, then the subclass's ``checks``."""
        checks = [
            (16 <= self.min_image_size <= self.max_image_size, "need 16 <= min_image_size <= max_image_size"),
            (1 <= self.min_shapes <= self.max_shapes, "need 1 <= min_shapes <= max_shapes"),
            (4 <= self.min_shape_size <= self.max_shape_size, "need 4 <= min_shape_size <= max_shape_size"),
            (self.min_shape_size * 1.5 < self.min_image_size, "min_shape_size must fit in the smallest image"),
            (0.0 <= self.max_occlusion < 1.0, "max_occlusion must be in [0, 1)"),
            *checks,
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"{type(self).__name__}: {msg} (got {self})")

    def _fingerprint(self, version: int) -> str:
        """12 hex digits that change with the generator ``version`` or any field."""
        payload = json.dumps({"v": version, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShapesConfig(ShapesLayout):
    """How the shapes dataset is generated; equal configs give byte-identical datasets.

        cfg = ShapesConfig(num_train=200, seed=1)
        prepare_shapes(cfg)["train"]  # (json_file, image_root)

    Sizes, counts and occlusion are :class:`ShapesLayout`'s. ``color_by_class`` draws each
    class's colours from its own hue band (circles red-orange, squares green, triangles blue),
    an easier dataset for very short trainings.
    """

    seed: int = 0
    num_train: int = 500
    num_val: int = 100
    color_by_class: bool = False

    def __post_init__(self) -> None:
        self._validate([(self.num_train >= 0 and self.num_val >= 0, "num_train and num_val must be >= 0")])

    def fingerprint(self) -> str:
        return self._fingerprint(_GENERATOR_VERSION)


def default_shapes_root() -> Path:
    """``$DET_CACHE/shapes`` if DET_CACHE is set, else ``~/.cache/det/shapes`` when the home
    folder is writable, else ``<system temp>/det-cache/shapes``."""
    env = os.environ.get("DET_CACHE")
    if env:
        return Path(env) / "shapes"
    home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "det" / "shapes"
    # Decide without creating anything: registration at import time must not touch the disk.
    existing = home_cache
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if os.access(existing, os.W_OK):
        return home_cache
    return Path(tempfile.gettempdir()) / "det-cache" / "shapes"


def get_shapes_metadata() -> dict[str, Any]:
    """Metadata of the shapes dataset (class names, colours, keypoint names/flip map/skeleton)."""
    return {
        "thing_classes": list(SHAPES_CLASSES),
        "thing_colors": [(220, 60, 60), (60, 160, 60), (60, 90, 220)],
        "keypoint_names": list(SHAPES_KEYPOINT_NAMES),
        "keypoint_flip_map": list(SHAPES_KEYPOINT_FLIP_MAP),
        "keypoint_connection_rules": list(SHAPES_KEYPOINT_CONNECTION_RULES),
    }


# -- geometry --------------------------------------------------------------------------------


def _shape_polygon(kind: str, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """Vertices (K,2) of a shape of ``size`` (circle diameter, square/triangle side)."""
    if kind == "circle":
        n, radius = _CIRCLE_VERTICES, size / 2
    elif kind == "square":
        n, radius = 4, size / math.sqrt(2)
    elif kind == "triangle":
        n, radius = 3, size / math.sqrt(3)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    # Start pointing up for triangles, at a corner for squares: angle=0 gives the familiar pose.
    start = -math.pi / 2 if kind != "square" else -3 * math.pi / 4
    t = start + angle + 2 * math.pi * np.arange(n) / n
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)


def _bounding_radius(kind: str, size: float) -> float:
    return {"circle": size / 2, "square": size / math.sqrt(2), "triangle": size / math.sqrt(3)}[kind]


def _rasterize(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    rles = mask_util.frPyObjects([polygon.reshape(-1).tolist()], height, width)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def _extreme_points(kind: str, polygon: np.ndarray, cx: float, cy: float, size: float) -> np.ndarray:
    """(5,2) continuous xy of centre, top, left, right, bottom. Ties (a flat top edge) give the
    edge midpoint, so the point is well defined for every rotation."""
    if kind == "circle":
        r = size / 2
        return np.array([[cx, cy], [cx, cy - r], [cx - r, cy], [cx + r, cy], [cx, cy + r]])

    def pick(values: np.ndarray, best: float) -> np.ndarray:
        return polygon[np.abs(values - best) < 1e-6].mean(axis=0)

    xs, ys = polygon[:, 0], polygon[:, 1]
    return np.stack(
        [
            np.array([cx, cy]) if kind == "square" else polygon.mean(axis=0),
            pick(ys, ys.min()),
            pick(xs, xs.min()),
            pick(xs, xs.max()),
            pick(ys, ys.max()),
        ]
    )


def _keypoint_visible(mask: np.ndarray, x: float, y: float) -> bool:
    """Whether a visible pixel of ``mask`` lies within 1 px of continuous point (x, y)."""
    h, w = mask.shape
    xi, yi = math.floor(x), math.floor(y)
    y0, y1 = max(yi - 1, 0), min(yi + 2, h)
    x0, x1 = max(xi - 1, 0), min(xi + 2, w)
    return bool(mask[y0:y1, x0:x1].any())


def _random_color(
    rng: np.random.Generator, avoid: list[np.ndarray], min_dist: float, hue_band: int | None = None
) -> np.ndarray:
    best, best_d = None, -1.0
    for _ in range(50):
        if hue_band is None:
            c = rng.integers(0, 256, size=3).astype(np.float64)
        else:
            hue = (hue_band / len(SHAPES_CLASSES) + rng.uniform(-0.07, 0.07)) % 1.0
            rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
            c = np.round(np.asarray(rgb) * 255.0)
        d = min((float(np.linalg.norm(c - a)) for a in avoid), default=1e9)
        if d >= min_dist:
            return c
        if d > best_d:
            best, best_d = c, d
    assert best is not None
    return best


def _render_image(rng: np.random.Generator, config: ShapesConfig) -> tuple[np.ndarray, list[dict]]:
    """One image (H,W,3 uint8) and its shapes: kind, polygon, full mask, visible mask, keypoints."""
    height = int(rng.integers(config.min_image_size, config.max_image_size + 1))
    width = int(rng.integers(config.min_image_size, config.max_image_size + 1))

    # Background: a colour with a gentle linear gradient and mild noise, never flat.
    bg = rng.integers(0, 256, size=3).astype(np.float64)
    gx, gy = rng.uniform(-20, 20, size=2)
    yy, xx = np.mgrid[0:height, 0:width]
    ramp = (gx * xx / width + gy * yy / height)[..., None]
    image = bg[None, None, :] + ramp + rng.normal(0, 3, size=(height, width, 3))

    num_shapes = int(rng.integers(config.min_shapes, config.max_shapes + 1))
    shapes: list[dict] = []
    for _ in range(num_shapes):
        for _attempt in range(30):
            kind = SHAPES_CLASSES[int(rng.integers(0, len(SHAPES_CLASSES)))]
            max_size = min(config.max_shape_size, int(min(height, width) / 1.5))
            size = float(rng.uniform(config.min_shape_size, max(max_size, config.min_shape_size)))
            radius = _bounding_radius(kind, size)
            if 2 * radius + 2 > min(height, width):
                continue
            cx = float(rng.uniform(radius + 1, width - radius - 1))
            cy = float(rng.uniform(radius + 1, height - radius - 1))
            angle = float(rng.uniform(0, 2 * math.pi))
            if kind == "circle":
                # Vertices at the 4 extreme points, so the polygon's box is the circle's box.
                angle = 0.0
            polygon = _shape_polygon(kind, cx, cy, size, angle)
            mask = _rasterize(polygon, height, width)
            # A later shape hides earlier ones: reject placements that hide too much of any.
            ok = all(
                (s["visible"] & ~mask).sum() >= (1 - config.max_occlusion) * s["mask"].sum() for s in shapes
            )
            if ok and mask.sum() > 0:
                break
        else:
            continue
        for s in shapes:
            s["visible"] = s["visible"] & ~mask
        hue_band = SHAPES_CLASSES.index(kind) if config.color_by_class else None
        color = _random_color(rng, [bg] + [s["color"] for s in shapes], min_dist=110.0, hue_band=hue_band)
        shapes.append(
            {
                "kind": kind,
                "polygon": polygon,
                "mask": mask,
                "visible": mask.copy(),
                "color": color,
                "keypoints": _extreme_points(kind, polygon, cx, cy, size),
            }
        )
    for s in shapes:
        image[s["mask"]] = s["color"]  # in drawing order: later shapes paint over earlier ones
    return np.clip(np.round(image), 0, 255).astype(np.uint8), shapes


def _annotation(shape: dict, ann_id: int, image_id: int) -> dict:
    visible = shape["visible"]
    occluded = bool((shape["mask"] & ~visible).any())
    if occluded:
        rle = mask_util.encode(np.asfortranarray(visible.astype(np.uint8)))
        segmentation: Any = {"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("ascii")}
        bbox = [float(x) for x in mask_util.toBbox(rle)]
        area = float(mask_util.area(rle))
    else:
        poly = shape["polygon"]
        segmentation = [[round(float(v), 3) for v in poly.reshape(-1)]]
        x0, y0 = poly.min(axis=0)
        x1, y1 = poly.max(axis=0)
        bbox = [round(float(x0), 3), round(float(y0), 3), round(float(x1 - x0), 3), round(float(y1 - y0), 3)]
        area = float(visible.sum())
    keypoints: list[float] = []
    for x, y in shape["keypoints"]:
        v = 2 if _keypoint_visible(visible, x, y) else 1
        # COCO keypoints are pixel indices; det's loader adds 0.5 back.
        keypoints += [round(float(x) - 0.5, 3), round(float(y) - 0.5, 3), v]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": SHAPES_CLASSES.index(shape["kind"]) + 1,
        "bbox": bbox,
        "area": area,
        "iscrowd": 0,
        "segmentation": segmentation,
        "keypoints": keypoints,
        "num_keypoints": len(SHAPES_KEYPOINT_NAMES),
    }


def generate_shapes_split(config: ShapesConfig, split: str, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<out_dir>/<split>/*.png`` and ``<out_dir>/annotations/instances_<split>.json``;
    return (json_file, image_root). Deterministic in (config, split)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    out_dir = Path(out_dir)
    image_root = out_dir / split
    image_root.mkdir(parents=True, exist_ok=True)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    num_images = config.num_train if split == "train" else config.num_val
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0 if split == "train" else 1]))

    images: list[dict] = []
    annotations: list[dict] = []
    for image_id in range(1, num_images + 1):
        image, shapes = _render_image(rng, config)
        file_name = f"{image_id:06d}.png"
        Image.fromarray(image).save(image_root / file_name, optimize=False, compress_level=1)
        images.append(
            {"id": image_id, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]}
        )
        for shape in shapes:
            if not shape["visible"].any():
                continue
            annotations.append(_annotation(shape, len(annotations) + 1, image_id))

    categories = [
        {
            "id": i + 1,
            "name": name,
            "supercategory": "shape",
            "keypoints": list(SHAPES_KEYPOINT_NAMES),
            "skeleton": [[1, 2], [1, 3], [1, 4], [1, 5]],
        }
        for i, name in enumerate(SHAPES_CLASSES)
    ]
    coco = {
        "info": {"description": f"det synthetic shapes ({split})", "version": str(_GENERATOR_VERSION)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    json_file = out_dir / "annotations" / f"instances_{split}.json"
    with open(json_file, "w") as f:
        json.dump(coco, f)
    return json_file, image_root


def _dataset_dir(config: ShapesConfig, root: str | os.PathLike | None) -> Path:
    return Path(root if root is not None else default_shapes_root()) / f"shapes-{config.fingerprint()}"


def prepare_shapes(
    config: ShapesConfig | None = None, root: str | os.PathLike | None = None
) -> dict[str, tuple[Path, Path]]:
    """Generate the dataset for ``config`` under ``root`` unless it is already there; return
    ``{"train": (json_file, image_root), "val": (...)}``.

    Generation happens in a scratch folder that is renamed into place at the end, so a crash or
    a concurrent generator never leaves a half-written dataset behind.
    """
    config = config or ShapesConfig()
    final = _dataset_dir(config, root)
    result = {s: (final / "annotations" / f"instances_{s}.json", final / s) for s in ("train", "val")}
    if (final / "config.json").is_file():
        return result
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    try:
        logger.info("Generating the shapes dataset in %s", final)
        for split in ("train", "val"):
            generate_shapes_split(config, split, scratch)
        with open(scratch / "config.json", "w") as f:
            json.dump({"generator_version": _GENERATOR_VERSION, **dataclasses.asdict(config)}, f, indent=1)
        try:
            os.rename(scratch, final)
        except OSError:
            if not (final / "config.json").is_file():  # lost a race only if the winner finished
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return result


def register_shapes(
    config: ShapesConfig | None = None,
    root: str | os.PathLike | None = None,
    names: tuple[str, str] = ("shapes_train", "shapes_val"),
    replace: bool = False,
) -> None:
    """Register the train/val splits as COCO datasets ``names``, generated on first
    ``DatasetCatalog.get``. ``replace=True`` re-registers (e.g. with another config)."""
    from det.data.datasets.coco import load_coco_json

    config = config or ShapesConfig()
    final = _dataset_dir(config, root)
    root = final.parent  # fixed now, so a later change of $DET_CACHE cannot split json and images
    for split, name in zip(("train", "val"), names):
        if name in DatasetCatalog:
            if not replace:
                raise ValueError(
                    f"Dataset {name!r} is already registered; pass replace=True to re-register it"
                )
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)

        def load(split: str = split, name: str = name) -> list[dict]:
            json_file, image_root = prepare_shapes(config, root)[split]
            return load_coco_json(json_file, image_root, name)

        DatasetCatalog.register(name, load)
        MetadataCatalog.get(name).set(
            json_file=str(final / "annotations" / f"instances_{split}.json"),
            image_root=str(final / split),
            evaluator_type="coco",
            shapes_config=dataclasses.asdict(config),
            thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(SHAPES_CLASSES))},
            keypoint_oks_sigmas=list(SHAPES_KEYPOINT_OKS_SIGMAS),
            **get_shapes_metadata(),
        )
