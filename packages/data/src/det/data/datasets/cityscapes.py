"""Cityscapes (gtFine) instance and semantic segmentation, read from the raw release.

Layout (under the datasets root, $DETECTRON2_DATASETS): ``cityscapes/leftImg8bit/<split>/<city>/
<stem>_leftImg8bit.png`` and, beside each image's stem in ``cityscapes/gtFine/<split>/<city>/``,
``<stem>_gtFine_polygons.json``, ``_instanceIds.png``, ``_labelIds.png`` and
``_labelTrainIds.png`` (made by cityscapesscripts' createTrainIdLabelImgs.py).

Needs only numpy, PIL and det.structures. Where detectron2 uses shapely (json polygons) or
OpenCV (contours of instanceIds), det rasterises the json polygons with PIL in file order, later
objects over earlier ones, as cityscapesscripts' json2instanceImg.py draws the ground truth, and
traces each instance's outline exactly with ``det.structures.mask_to_polygons`` (pixel-corner
polygons; detectron2's are a 0.5 px buffer of the raw polygon, or OpenCV's pixel-centre contours).
"""

from __future__ import annotations

import functools
import glob
import json
import logging
import os
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from det.data.catalog import DatasetCatalog, MetadataCatalog

__all__ = [
    "CITYSCAPES_LABELS",
    "Label",
    "cityscapes_files_to_dict",
    "load_cityscapes_instances",
    "load_cityscapes_semantic",
    "register_all_cityscapes",
]

logger = logging.getLogger(__name__)


class Label(NamedTuple):
    """One Cityscapes class, with cityscapesscripts' field names."""

    name: str
    id: int  # the value in *_labelIds.png; -1: never in ground-truth images
    trainId: int  # the value in *_labelTrainIds.png; 255: ignored in training
    category: str
    categoryId: int
    hasInstances: bool
    ignoreInEval: bool
    color: tuple[int, int, int]


# The Cityscapes label definition (facts of the dataset, as published with it).
CITYSCAPES_LABELS: tuple[Label, ...] = (
    Label("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    Label("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    Label("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    Label("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    Label("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    Label("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    Label("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    Label("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    Label("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    Label("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    Label("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    Label("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    Label("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    Label("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    Label("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    Label("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    Label("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    Label("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    Label("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    Label("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    Label("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    Label("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    Label("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    Label("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    Label("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    Label("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    Label("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    Label("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    Label("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    Label("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    Label("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    Label("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    Label("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    Label("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
    Label("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
)

NAME_TO_LABEL = {label.name: label for label in CITYSCAPES_LABELS}
ID_TO_LABEL = {label.id: label for label in CITYSCAPES_LABELS}
# The classes detectron2 trains on: 8 things (instance segmentation), 19 stuff (semantic).
THING_LABELS = tuple(lb for lb in CITYSCAPES_LABELS if lb.hasInstances and not lb.ignoreInEval)
STUFF_LABELS = tuple(
    sorted((lb for lb in CITYSCAPES_LABELS if lb.trainId not in (255, -1)), key=lambda lb: lb.trainId)
)
THING_ID_TO_CONTIGUOUS_ID = {lb.id: i for i, lb in enumerate(THING_LABELS)}

_IMAGE_SUFFIX = "leftImg8bit.png"

# Builtin splits, relative to the datasets root, as detectron2 names and lays them out.
_RAW_CITYSCAPES_SPLITS = {
    "cityscapes_fine_{task}_train": ("cityscapes/leftImg8bit/train/", "cityscapes/gtFine/train/"),
    "cityscapes_fine_{task}_val": ("cityscapes/leftImg8bit/val/", "cityscapes/gtFine/val/"),
    "cityscapes_fine_{task}_test": ("cityscapes/leftImg8bit/test/", "cityscapes/gtFine/test/"),
}


def _get_cityscapes_meta() -> dict[str, Any]:
    """detectron2's builtin Cityscapes metadata (thing and stuff classes), plus their colors."""
    return {
        "thing_classes": [lb.name for lb in THING_LABELS],
        "thing_colors": [lb.color for lb in THING_LABELS],
        "stuff_classes": [lb.name for lb in STUFF_LABELS],
        "stuff_colors": [lb.color for lb in STUFF_LABELS],
    }


def _missing(kind: str, path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"Cityscapes {kind} {path!r} does not exist. Builtin datasets are looked up under the folder "
        "named by the environment variable DETECTRON2_DATASETS (or DET_DATASETS, which wins; "
        "default: ./datasets), with cityscapes/leftImg8bit/<split> and cityscapes/gtFine/<split> inside."
    )


def _image_files(image_dir: str) -> list[str]:
    if not os.path.isdir(image_dir):
        raise _missing("image folder", image_dir)
    # <image_dir>/<city>/<stem>_leftImg8bit.png; sorted (detectron2 keeps glob's order).
    files = sorted(glob.glob(os.path.join(image_dir, "*", "*.png")))
    if not files:
        raise FileNotFoundError(f"No images found in {image_dir}")
    for f in files:
        if not f.endswith(_IMAGE_SUFFIX):
            raise ValueError(f"Cityscapes image {f!r} does not end with {_IMAGE_SUFFIX!r}")
    return files


def _gt_file(image_dir: str, gt_dir: str, image_file: str, suffix: str) -> str:
    relative = os.path.relpath(image_file, image_dir)[: -len(_IMAGE_SUFFIX)]
    return os.path.join(gt_dir, relative + suffix)


def load_cityscapes_instances(
    image_dir: str | os.PathLike, gt_dir: str | os.PathLike, from_json: bool = True, to_polygons: bool = True
) -> list[dict]:
    """Instance annotations of a Cityscapes split as detectron2's standard dicts.

    ``image_dir`` is e.g. ``cityscapes/leftImg8bit/train``, ``gt_dir`` ``cityscapes/gtFine/train``.
    Annotations come from ``*_gtFine_polygons.json`` (``from_json=True``, which needs
    ``to_polygons=True``) or ``*_gtFine_instanceIds.png``. Each record has ``file_name``,
    ``image_id`` (the image's base name), ``height``, ``width`` and ``annotations`` of the 8 thing
    classes: ``iscrowd`` (a "...group" object or an instance id below 1000), ``category_id``
    (contiguous 0..7: person, rider, car, truck, bus, train, motorcycle, bicycle), ``bbox``
    (XYXY_ABS) and ``segmentation`` (polygons, or an RLE with ``to_polygons=False``).
    """
    if from_json and not to_polygons:
        raise ValueError(
            "Cityscapes's json annotations are in polygon format; from_json=True needs to_polygons=True"
        )
    image_dir, gt_dir = os.fspath(image_dir), os.fspath(gt_dir)
    files = []
    for image_file in _image_files(image_dir):
        instance_file = _gt_file(image_dir, gt_dir, image_file, "gtFine_instanceIds.png")
        label_file = _gt_file(image_dir, gt_dir, image_file, "gtFine_labelIds.png")
        json_file = _gt_file(image_dir, gt_dir, image_file, "gtFine_polygons.json")
        needed = json_file if from_json else instance_file
        if not os.path.isfile(needed):
            raise _missing("annotation file", needed)
        files.append((image_file, instance_file, label_file, json_file))
    ret = [cityscapes_files_to_dict(f, from_json=from_json, to_polygons=to_polygons) for f in files]
    logger.info("Loaded %d images from %s", len(ret), image_dir)
    for record in ret:
        for anno in record["annotations"]:
            anno["category_id"] = THING_ID_TO_CONTIGUOUS_ID[anno["category_id"]]
    return ret


def load_cityscapes_semantic(image_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> list[dict]:
    """``[{"file_name", "sem_seg_file_name", "height", "width"}]`` of a Cityscapes split; the
    labels are ``*_gtFine_labelTrainIds.png`` (19 classes, 255 ignored), the size comes from
    ``*_gtFine_polygons.json``."""
    image_dir, gt_dir = os.fspath(image_dir), os.fspath(gt_dir)
    ret = []
    for image_file in _image_files(image_dir):
        label_file = _gt_file(image_dir, gt_dir, image_file, "gtFine_labelTrainIds.png")
        if not os.path.isfile(label_file):
            raise FileNotFoundError(
                f"{label_file!r} does not exist: generate the *_labelTrainIds.png files with "
                "cityscapesscripts/preparation/createTrainIdLabelImgs.py"
            )
        json_file = _gt_file(image_dir, gt_dir, image_file, "gtFine_polygons.json")
        if not os.path.isfile(json_file):
            raise _missing("annotation file", json_file)
        with open(json_file) as f:
            jsonobj = json.load(f)
        ret.append(
            {
                "file_name": image_file,
                "sem_seg_file_name": label_file,
                "height": jsonobj["imgHeight"],
                "width": jsonobj["imgWidth"],
            }
        )
    return ret


def _label_of(label_name: str) -> Label:
    if label_name in NAME_TO_LABEL:
        return NAME_TO_LABEL[label_name]
    if label_name.endswith("group") and label_name[: -len("group")] in NAME_TO_LABEL:
        return NAME_TO_LABEL[label_name[: -len("group")]]  # a crowd region
    raise KeyError(f"unknown Cityscapes label {label_name!r}")


def _outer_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer outlines of a mask (OpenCV's RETR_EXTERNAL), as flat lists on pixel corners."""
    from det.structures import mask_to_polygons

    polygons, _ = mask_to_polygons(mask)
    out = []
    for p in polygons:
        x, y = p[0::2], p[1::2]
        # Outer outlines run clockwise on screen: positive shoelace area with y pointing down.
        if float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) > 0 and len(p) >= 6:
            out.append([float(v) for v in p])
    return out


def _mask_annotation(mask: np.ndarray, label: Label, iscrowd: bool, to_polygons: bool) -> dict | None:
    from det.structures import BoxMode

    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    anno: dict[str, Any] = {"iscrowd": bool(iscrowd), "category_id": label.id, "bbox_mode": BoxMode.XYXY_ABS}
    if to_polygons:
        polygons = _outer_polygons(mask)
        if not polygons:
            return None
        anno["segmentation"] = polygons
    else:
        import pycocotools.mask as mask_util

        anno["segmentation"] = mask_util.encode(np.asarray(mask[:, :, None], dtype=np.uint8, order="F"))[0]
    # The pixels' extent in continuous coordinates (pixel (r, c) covers [c, c + 1] x [r, r + 1]).
    anno["bbox"] = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return anno


def cityscapes_files_to_dict(
    files: tuple[str, str, str, str], from_json: bool, to_polygons: bool
) -> dict[str, Any]:
    """One image's record from ``(image_file, instance_id_file, label_id_file, json_file)``
    (category ids are still Cityscapes label ids; :func:`load_cityscapes_instances` maps them)."""
    image_file, instance_id_file, _, json_file = files
    annos = []
    if from_json:
        with open(json_file) as f:
            jsonobj = json.load(f)
        height, width = int(jsonobj["imgHeight"]), int(jsonobj["imgWidth"])
        # Draw every object in file order, each over the earlier ones (cityscapesscripts'
        # json2instanceImg.py), then read each object's visible pixels back.
        canvas = Image.new("I", (width, height), -1)
        drawer = ImageDraw.Draw(canvas)
        kept: list[tuple[int, Label, bool]] = []
        for index, obj in enumerate(jsonobj["objects"]):
            if "deleted" in obj:
                continue
            label = _label_of(obj["label"])
            if label.id < 0:
                continue
            polygon = [(float(x), float(y)) for x, y in obj["polygon"]]
            if len(polygon) < 2:
                continue
            drawer.polygon(polygon, fill=index)
            if label.hasInstances and not label.ignoreInEval:
                kept.append((index, label, obj["label"].endswith("group")))
        owner = np.asarray(canvas, dtype=np.int64)
        # Latest object first, the order detectron2 emits them in.
        for index, label, iscrowd in reversed(kept):
            anno = _mask_annotation(owner == index, label, iscrowd, to_polygons)
            if anno is not None:
                annos.append(anno)
    else:
        with open(instance_id_file, "rb") as f:
            inst_image = np.asarray(Image.open(f))
        height, width = inst_image.shape[:2]
        # Ids below 24 are stuff labels; >= 1000 is label * 1000 + instance, else a crowd's label.
        for instance_id in np.unique(inst_image[inst_image >= 24]).tolist():
            label_id = instance_id // 1000 if instance_id >= 1000 else instance_id
            label = ID_TO_LABEL[label_id]
            if not label.hasInstances or label.ignoreInEval:
                continue
            mask = inst_image == instance_id
            ys, xs = np.nonzero(mask)
            if xs.max() <= xs.min() or ys.max() <= ys.min():
                continue  # one pixel wide or high, as detectron2 drops them
            anno = _mask_annotation(mask, label, instance_id < 1000, to_polygons)
            if anno is not None:
                annos.append(anno)
    return {
        "file_name": image_file,
        "image_id": os.path.basename(image_file),
        "height": height,
        "width": width,
        "annotations": annos,
    }


def register_all_cityscapes(root: str | os.PathLike) -> None:
    """Register ``cityscapes_fine_instance_seg_{train,val,test}`` and
    ``cityscapes_fine_sem_seg_{train,val,test}`` under ``root`` (detectron2's names, folders and
    metadata: ``image_dir``, ``gt_dir``, ``evaluator_type`` "cityscapes_instance" /
    "cityscapes_sem_seg", ``ignore_label=255`` for semantics, thing/stuff classes and colors).
    Reads no file."""
    root = os.fspath(root)
    for key, (image_dir, gt_dir) in _RAW_CITYSCAPES_SPLITS.items():
        meta = _get_cityscapes_meta()
        image_dir = os.path.join(root, image_dir)
        gt_dir = os.path.join(root, gt_dir)

        inst_key = key.format(task="instance_seg")
        DatasetCatalog.register(
            inst_key,
            functools.partial(load_cityscapes_instances, image_dir, gt_dir, from_json=True, to_polygons=True),
        )
        MetadataCatalog.get(inst_key).set(
            image_dir=image_dir, gt_dir=gt_dir, evaluator_type="cityscapes_instance", **meta
        )

        sem_key = key.format(task="sem_seg")
        DatasetCatalog.register(sem_key, functools.partial(load_cityscapes_semantic, image_dir, gt_dir))
        MetadataCatalog.get(sem_key).set(
            image_dir=image_dir, gt_dir=gt_dir, evaluator_type="cityscapes_sem_seg", ignore_label=255, **meta
        )
