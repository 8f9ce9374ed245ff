"""Check a COCO-format dataset before training on it (``det data check T.json --images DIR``).

detectron2 finds a broken image or a bad annotation mid-training (a traceback hours in) or never
(a box with negative width is silently flipped). :func:`check_coco_json` reads the json and the
header of every image once, up front, and reports each kind of fault with its count, the first
offending records by file and id, and what training does with it: ``refuse`` (``det train`` stops
before building anything), ``skip`` (the loader drops the record, with a count in the log) or
``fix`` (the loader repairs it)::

    report = check_coco_json("annotations/train.json", "images/")
    print(report.format())
    report.refused          # the faults that make ``det train`` refuse the dataset ([] = trainable)
    report.classes          # category names in id order: what NUM_CLASSES counts

Cheap enough for 100k images: images are opened (header only) by a thread pool, and a PNG/JPEG
whose end marker is missing is decoded to tell a truncated file from an odd one; ``full=True``
decodes every image.

Invariant: the check reads files and writes nothing; every fault kind of :data:`FAULT_KINDS`
names its action, and the data pipeline does what that action says (``load_coco_json`` drops
the skipped annotations and polygons, ``DATALOADER.FILTER_EMPTY_ANNOTATIONS`` the skipped
images, the mapper clips boxes).
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "FAULT_KINDS",
    "DataCheckError",
    "DataCheckReport",
    "Fault",
    "FaultKind",
    "ImageFileError",
    "check_coco_json",
    "inspect_image",
    "inspect_images",
]


class DataCheckError(ValueError):
    """The dataset file cannot be checked at all (missing, not JSON, not a COCO dict)."""


class ImageFileError(OSError):
    """An image file that cannot be used: ``kind`` is ``"missing_image"``, ``"unreadable_image"``
    or ``"truncated_image"`` (keys of :data:`FAULT_KINDS`); the message names the file."""

    def __init__(self, kind: str, path: str, detail: str) -> None:
        super().__init__(f"{path} {detail}")
        self.kind = kind
        self.path = path
        self.detail = detail


class FaultKind(NamedTuple):
    """One kind of fault: what is wrong (``title``, counted in ``unit``), the ``action`` training
    takes ("refuse", "skip" or "fix") and what that means (``consequence``)."""

    title: str
    unit: str
    action: str
    consequence: str


FAULT_KINDS: dict[str, FaultKind] = {
    # refuse: training would crash on these (or learn from wrong labels); fix the data first
    "malformed": FaultKind("records that are not valid COCO", "record", "refuse",
                           "training refuses the dataset: fix these records"),
    "duplicate_image_id": FaultKind("duplicate image ids", "image", "refuse",
                                    "training refuses the dataset: pycocotools keeps one image per id"),
    "duplicate_annotation_id": FaultKind("duplicate annotation ids", "annotation", "refuse",
                                         "training refuses the dataset: give every annotation its own id"),
    "duplicate_category_id": FaultKind("duplicate category ids", "category", "refuse",
                                       "training refuses the dataset: give every category its own id"),
    "missing_image": FaultKind("image files not found", "image", "refuse",
                               "training refuses the dataset: check --images and file_name"),
    "unreadable_image": FaultKind("files that are not readable images", "image", "refuse",
                                  "training refuses the dataset: replace them or remove them from the json"),
    "truncated_image": FaultKind("truncated images", "image", "refuse",
                                 "training refuses the dataset: replace them or remove them from the json"),
    "size_mismatch": FaultKind("images whose size differs from the json's width/height", "image", "refuse",
                               "training refuses the dataset: the annotations may not match the pixels"),
    "unknown_category": FaultKind("annotations whose category_id is not in categories", "annotation",
                                  "refuse", "training refuses the dataset: add the category or fix the id"),
    "keypoint_count": FaultKind("annotations whose keypoint count differs from their category's",
                                "annotation", "refuse", "training refuses the dataset: fix the keypoints"),
    "bad_segmentation": FaultKind("segmentations that are neither polygons nor RLE of the image's size",
                                  "annotation", "refuse", "training refuses the dataset: fix the masks"),
    # skip: the loader drops these records and logs how many
    "unknown_image": FaultKind("annotations whose image_id is not in images", "annotation", "skip",
                               "training ignores them"),
    "bad_box": FaultKind("boxes with zero or negative width or height", "annotation", "skip",
                         "training drops these annotations"),
    "small_polygon": FaultKind("polygons with fewer than 3 points", "annotation", "skip",
                               "training drops these polygons, and an annotation left with none"),
    "crowd_only": FaultKind("images whose annotations are all crowd regions", "image", "skip",
                            "training skips these images (DATALOADER.FILTER_EMPTY_ANNOTATIONS)"),
    "no_annotations": FaultKind("images without annotations", "image", "skip",
                                "training skips these images (DATALOADER.FILTER_EMPTY_ANNOTATIONS)"),
    # fix: the loader repairs these
    "box_outside_image": FaultKind("boxes reaching outside their image", "annotation", "fix",
                                   "training clips them to the image"),
}

_IMAGE_FAULTS = ("missing_image", "unreadable_image", "truncated_image")
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_EXIF_ORIENTATION = 274
_OUTSIDE_TOLERANCE = 0.01  # pixels: rounding in annotation tools is not a fault


@dataclass
class Fault:
    """The faults of one kind found in a dataset: ``count`` records, the first few described in
    ``examples`` ("image id=7 'a.png': ...")."""

    kind: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def info(self) -> FaultKind:
        return FAULT_KINDS[self.kind]

    @property
    def action(self) -> str:
        return self.info.action

    def describe(self) -> str:
        """``"3 images: image files not found (training refuses ...)"``."""
        return f"{self.counted()} ({self.info.consequence})"

    def counted(self) -> str:
        """``"3 images: image files not found"``."""
        unit = self.info.unit + ("" if self.count == 1 else "s")
        return f"{self.count} {unit}: {self.info.title}"


@dataclass
class DataCheckReport:
    """What :func:`check_coco_json` found in one json file.

    ``faults`` maps fault kinds (keys of :data:`FAULT_KINDS`) to the :class:`Fault` found (only
    kinds with at least one record); ``classes`` are the category names in id order (the
    contiguous class ids training uses), ``category_ids`` their ids; ``keypoint_names`` the
    keypoints of the categories that have them (empty when none do). Counts of non-crowd
    annotations with and without a segmentation, and of those given as RLE
    (``num_rle_masks``: training needs ``INPUT.MASK_FORMAT bitmask`` for them), let a command
    match the data to a model."""

    json_file: str
    image_root: str
    num_images: int = 0
    num_annotations: int = 0
    classes: list[str] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)
    keypoint_names: list[str] = field(default_factory=list)
    keypoint_skeleton: list[list[int]] = field(default_factory=list)
    num_with_segmentation: int = 0
    num_without_segmentation: int = 0
    num_rle_masks: int = 0
    num_with_keypoints: int = 0
    faults: dict[str, Fault] = field(default_factory=dict)

    @property
    def refused(self) -> list[Fault]:
        """Faults that make training refuse the dataset, in :data:`FAULT_KINDS` order."""
        return [f for f in self._ordered() if f.action == "refuse"]

    @property
    def ok(self) -> bool:
        """True when training would accept the dataset (nothing refused)."""
        return not self.refused

    def _ordered(self) -> list[Fault]:
        return [self.faults[k] for k in FAULT_KINDS if k in self.faults]

    def summary(self) -> str:
        """One line: the file, its counts and classes."""
        names = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
        return (f"{self.json_file}: {self.num_images} images, {self.num_annotations} annotations, "
                f"{len(self.classes)} categories ({names}); images in {self.image_root}")

    def verdict(self) -> str:
        """One line: what training does with this dataset."""
        refused = self.refused
        if refused:
            return "training refuses this dataset: " + "; ".join(f.counted() for f in refused)
        changes = self._ordered()
        if changes:
            return "training accepts this dataset and " + "; ".join(
                f"{f.action}s {f.counted()}" for f in changes)
        return "no faults found: training accepts this dataset"

    def format(self, max_examples: int | None = None) -> str:
        """The report as text: summary, one block per fault kind (action, count, what training
        does, examples), and the verdict."""
        lines = [self.summary()]
        for fault in self._ordered():
            lines.append(f"  {fault.action:<6}  {fault.describe()}")
            examples = fault.examples if max_examples is None else fault.examples[:max_examples]
            lines.extend(f"            {e}" for e in examples)
            if fault.count > len(examples):
                lines.append(f"            ... and {fault.count - len(examples)} more")
        lines.append(self.verdict())
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``det data check --json``)."""
        return {
            "json_file": self.json_file, "image_root": self.image_root, "num_images": self.num_images,
            "num_annotations": self.num_annotations, "classes": self.classes,
            "category_ids": self.category_ids, "keypoint_names": self.keypoint_names, "ok": self.ok,
            "faults": {f.kind: {"action": f.action, "count": f.count, "title": f.info.title,
                                "consequence": f.info.consequence, "examples": f.examples}
                       for f in self._ordered()},
        }


class _Collector:
    """Counts faults and keeps the first ``max_examples`` descriptions of each kind."""

    def __init__(self, max_examples: int) -> None:
        self.max_examples = max_examples
        self.faults: dict[str, Fault] = {}

    def add(self, kind: str, example: str) -> None:
        fault = self.faults.get(kind)
        if fault is None:
            fault = self.faults[kind] = Fault(kind)
        fault.count += 1
        if len(fault.examples) < self.max_examples:
            fault.examples.append(example)


def _image_label(img: dict) -> str:
    return f"image id={img.get('id')!r} {str(img.get('file_name'))!r}"


def _ann_label(ann: dict) -> str:
    return f"annotation id={ann.get('id')!r} of image id={ann.get('image_id')!r}"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def inspect_image(path: str | os.PathLike, *, full: bool = False) -> tuple[int, int]:
    """The (width, height) an image file has once its EXIF orientation is applied (what
    ``read_image`` returns), reading only its header; raises :class:`ImageFileError` for a
    missing, unreadable or truncated file.

    A PNG without its IEND chunk or a JPEG without its end-of-image marker is decoded to tell
    truncation from trailing bytes; ``full=True`` decodes every image."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageFileError("missing_image", path, "does not exist") from None
    except OSError as e:
        raise ImageFileError("unreadable_image", path, f"cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageFileError("unreadable_image", path, "is a folder, not an image file")
    if st.st_size == 0:
        raise ImageFileError("unreadable_image", path, "is empty (0 bytes)")
    try:
        with open(path, "rb") as f:
            try:
                image = Image.open(f)
                width, height = image.size
                image_format = image.format
            except Image.DecompressionBombError as e:
                raise ImageFileError("unreadable_image", path, f"is too large to decode safely ({e})") from None
            except UnidentifiedImageError:
                raise ImageFileError("unreadable_image", path, "is not an image (PIL knows no such format)") from None
            except (OSError, SyntaxError, ValueError) as e:
                raise ImageFileError("unreadable_image", path, f"is not a readable image ({e})") from None
            try:
                orientation = image.getexif().get(_EXIF_ORIENTATION)
            except Exception:  # malformed EXIF: read_image ignores it too
                orientation = None
            decode = full
            if not decode and image_format in ("PNG", "JPEG", "MPO"):
                tail_size = min(st.st_size, 64)
                f.seek(-tail_size, os.SEEK_END)
                tail = f.read(tail_size)
                end = _PNG_END if image_format == "PNG" else _JPEG_END
                decode = end not in tail
            if decode:
                f.seek(0)
                try:
                    with Image.open(f) as again:
                        again.load()
                except (OSError, SyntaxError, ValueError) as e:
                    raise ImageFileError("truncated_image", path,
                                         f"cannot be decoded: {e}") from None
    except PermissionError as e:
        raise ImageFileError("unreadable_image", path, f"cannot be opened ({e.strerror})") from None
    if orientation in (5, 6, 7, 8):  # transposed or rotated by 90 degrees
        width, height = height, width
    return int(width), int(height)


def inspect_images(paths: Sequence[str], *, full: bool = False, num_threads: int | None = None) -> dict[str, Any]:
    """:func:`inspect_image` of each path, by a thread pool: ``{path: (width, height) or the
    ImageFileError}``."""
    def one(path: str) -> Any:
        try:
            return inspect_image(path, full=full)
        except ImageFileError as e:
            return e

    workers = num_threads or min(16, 4 * (os.cpu_count() or 1))
    if len(paths) < 64 or workers <= 1:
        return {p: one(p) for p in paths}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(paths, pool.map(one, paths, chunksize=64)))


def _load_json(json_file: str) -> dict:
    if not os.path.exists(json_file):
        raise DataCheckError(f"{json_file} does not exist")
    if os.path.isdir(json_file):
        raise DataCheckError(f"{json_file} is a folder; give the COCO json file")
    try:
        with open(json_file, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataCheckError(f"{json_file} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError:
        raise DataCheckError(f"{json_file} is not a text (JSON) file") from None
    if not isinstance(data, dict):
        raise DataCheckError(f"{json_file} holds a JSON {type(data).__name__}; a COCO file is an object "
                             "with 'images', 'annotations' and 'categories'")
    missing = [k for k in ("images", "categories") if k not in data]
    if missing:
        raise DataCheckError(f"{json_file} has no {' or '.join(repr(k) for k in missing)}: not a COCO "
                             "instances/keypoints file")
    for key in ("images", "annotations", "categories"):
        if key in data and not isinstance(data[key], list):
            raise DataCheckError(f"{json_file}: {key!r} must be a list, got {type(data[key]).__name__}")
    return data


def check_coco_json(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    *,
    full: bool = False,
    max_examples: int = 5,
    check_images: bool = True,
    num_threads: int | None = None,
) -> DataCheckReport:
    """Check a COCO instances/keypoints json and its images (see the module docstring).

    Args:
        json_file: the COCO json.
        image_root: the folder its ``file_name`` entries are relative to.
        full: decode every image (slow) instead of reading headers and end markers.
        max_examples: offending records described per fault kind.
        check_images: False checks the json alone (no file is opened).
        num_threads: threads that open images (default: 4 per core, at most 16).

    Raises :class:`DataCheckError` when the file is missing, not JSON or not a COCO dict.
    """
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    data = _load_json(json_file)
    faults = _Collector(max_examples)
    report = DataCheckReport(json_file=json_file, image_root=image_root)

    # categories
    categories: dict[int, dict] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            faults.add("malformed", f"categories[{i}]: needs an integer 'id' and a string 'name', got {cat!r:.80}")
            continue
        if cat["id"] in categories:
            faults.add("duplicate_category_id", f"category id={cat['id']} ({categories[cat['id']]['name']!r} "
                                                f"and {cat['name']!r})")
            continue
        categories[cat["id"]] = cat
    report.category_ids = sorted(categories)
    report.classes = [categories[i]["name"] for i in report.category_ids]
    num_keypoints_of = {}
    for cid in report.category_ids:
        kps = categories[cid].get("keypoints")
        if isinstance(kps, list) and kps:
            num_keypoints_of[cid] = len(kps)
            if not report.keypoint_names:
                report.keypoint_names = [str(k) for k in kps]
                skeleton = categories[cid].get("skeleton")
                if isinstance(skeleton, list):
                    report.keypoint_skeleton = [list(s) for s in skeleton if isinstance(s, list) and len(s) == 2]

    # images
    images: dict[Any, dict] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            faults.add("malformed", f"images[{i}]: needs 'id' and a string 'file_name', got {img!r:.80}")
            continue
        if not (isinstance(img.get("width"), int) and isinstance(img.get("height"), int)
                and img["width"] > 0 and img["height"] > 0):
            faults.add("malformed", f"{_image_label(img)}: needs positive integer 'width' and 'height', "
                                    f"got {img.get('width')!r} x {img.get('height')!r}")
            continue
        if img["id"] in images:
            faults.add("duplicate_image_id", f"{_image_label(img)} and {images[img['id']]['file_name']!r}")
            continue
        images[img["id"]] = img
    report.num_images = len(images)

    # annotations
    anns_of: dict[Any, list[dict]] = defaultdict(list)
    seen_ann_ids: set[Any] = set()
    annotations = data.get("annotations", [])
    report.num_annotations = len(annotations)
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "id" not in ann or "image_id" not in ann or "category_id" not in ann:
            faults.add("malformed", f"annotations[{i}]: needs 'id', 'image_id' and 'category_id', got {ann!r:.80}")
            continue
        if ann["id"] in seen_ann_ids:
            faults.add("duplicate_annotation_id", _ann_label(ann))
            continue
        seen_ann_ids.add(ann["id"])
        img = images.get(ann["image_id"])
        if img is None:
            faults.add("unknown_image", _ann_label(ann))
            continue
        _check_annotation(ann, img, categories, num_keypoints_of, faults, report)
        anns_of[ann["image_id"]].append(ann)

    for img_id, img in images.items():
        anns = anns_of.get(img_id, [])
        if not anns:
            faults.add("no_annotations", _image_label(img))
        elif all(a.get("iscrowd", 0) for a in anns):
            faults.add("crowd_only", f"{_image_label(img)}: {len(anns)} crowd annotation(s)")

    if check_images:
        _check_image_files(images, image_root, full, num_threads, faults)
    report.faults = faults.faults
    return report


def _check_annotation(ann: dict, img: dict, categories: dict[int, dict], num_keypoints_of: dict[int, int],
                      faults: _Collector, report: DataCheckReport) -> None:
    label = _ann_label(ann)
    if ann["category_id"] not in categories:
        faults.add("unknown_category", f"{label}: category_id={ann['category_id']!r} "
                                       f"(categories have ids {_short_list(sorted(categories))})")
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        faults.add("malformed", f"{label}: 'bbox' must be 4 finite numbers [x, y, width, height], got {bbox!r:.80}")
    elif bbox[2] <= 0 or bbox[3] <= 0:
        faults.add("bad_box", f"{label}: bbox {bbox}")
    else:
        x, y, w, h = bbox
        t = _OUTSIDE_TOLERANCE
        if x < -t or y < -t or x + w > img["width"] + t or y + h > img["height"] + t:
            faults.add("box_outside_image", f"{label}: bbox {bbox} in a {img['width']}x{img['height']} image")

    segm = ann.get("segmentation")
    crowd = bool(ann.get("iscrowd", 0))
    if not crowd:
        if segm:
            report.num_with_segmentation += 1
            report.num_rle_masks += isinstance(segm, dict)
        else:
            report.num_without_segmentation += 1
    if segm:
        if isinstance(segm, list):
            polys_ok = all(isinstance(p, list) and all(_is_number(v) for v in p) for p in segm)
            if not polys_ok:
                faults.add("bad_segmentation", f"{label}: polygons must be lists of numbers, got {segm!r:.80}")
            elif any(len(p) < 6 or len(p) % 2 for p in segm):
                bad = next(p for p in segm if len(p) < 6 or len(p) % 2)
                faults.add("small_polygon", f"{label}: polygon with {len(bad)} coordinates {bad!r:.60}")
        elif isinstance(segm, dict):
            size = segm.get("size")
            if "counts" not in segm or not isinstance(size, list) or len(size) != 2:
                faults.add("bad_segmentation", f"{label}: RLE needs 'size' [height, width] and 'counts'")
            elif list(size) != [img["height"], img["width"]]:
                faults.add("bad_segmentation", f"{label}: RLE size {size} but the image is "
                                               f"{img['height']}x{img['width']} (height x width)")
        else:
            faults.add("bad_segmentation", f"{label}: segmentation is a {type(segm).__name__}")

    kps = ann.get("keypoints")
    if kps:
        report.num_with_keypoints += 1
        expected = num_keypoints_of.get(ann["category_id"])
        if not (isinstance(kps, list) and len(kps) % 3 == 0 and all(_is_number(v) for v in kps)):
            faults.add("keypoint_count", f"{label}: keypoints must be [x, y, v] * K numbers, got {len(kps)} values")
        elif expected is not None and len(kps) != 3 * expected:
            faults.add("keypoint_count", f"{label}: {len(kps) // 3} keypoints, its category has {expected}")


def _short_list(values: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def _check_image_files(images: dict[Any, dict], image_root: str, full: bool, num_threads: int | None,
                       faults: _Collector) -> None:
    paths = {img_id: os.path.join(image_root, img["file_name"]) for img_id, img in images.items()}
    found = inspect_images(sorted(set(paths.values())), full=full, num_threads=num_threads)
    for img_id, img in images.items():
        result = found[paths[img_id]]
        if isinstance(result, ImageFileError):
            faults.add(result.kind, f"{_image_label(img)}: {result.path} {result.detail}")
        elif result != (img["width"], img["height"]):
            faults.add("size_mismatch", (
                f"{_image_label(img)}: the file is {result[0]}x{result[1]}, the json says {img['width']}x{img['height']} "
                "(width x height)"))
