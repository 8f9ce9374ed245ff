"""Pascal VOC detection annotations (``VOCdevkit/VOC20XX``) -> detectron2's standard dataset dicts.

A VOC year folder holds ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg`` and the split lists
``ImageSets/Main/<split>.txt``::

    register_pascal_voc("my_voc_val", "datasets/VOC2007", "val", 2007)
    DatasetCatalog.get("my_voc_val")[0]["annotations"][0]["bbox"]  # XYXY_ABS floats
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from det.data.catalog import DatasetCatalog, MetadataCatalog
from det.data.datasets.builtin_meta import VOC_CLASS_NAMES

__all__ = ["CLASS_NAMES", "load_voc_instances", "register_pascal_voc"]

#: detectron2's name for the 20 VOC classes.
CLASS_NAMES = VOC_CLASS_NAMES


def _read_split(dirname: str, split: str) -> list[str]:
    path = os.path.join(dirname, "ImageSets", "Main", split + ".txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Pascal VOC split list {path!r} does not exist")
    with open(path) as f:
        # Detection lists hold one id a line; class lists ("<class>_<split>.txt") add a flag.
        return [line.split()[0] for line in f if line.strip()]


def _text(node: ET.Element, path: str, xml_file: str) -> str:
    found = node.find(path)
    if found is None or found.text is None:
        raise ValueError(f"{xml_file}: <{path}> is missing")
    return found.text.strip()


def load_voc_instances(dirname: str, split: str, class_names: Sequence[str]) -> list[dict]:
    """One dict per image of ``ImageSets/Main/<split>.txt``: ``file_name``, ``image_id`` (the
    VOC id string, e.g. ``"000005"``), ``height``, ``width`` and ``annotations`` with
    ``category_id`` (index into ``class_names``), ``bbox`` and ``bbox_mode=XYXY_ABS``.

    VOC's boxes are 1-based inclusive pixel indices, so ``xmin``/``ymin`` get -1 and
    ``xmax``/``ymax`` stay: a box (1, 1, W, H) covers the whole image, (0, 0, W, H) in det's
    continuous coordinates. Objects marked ``difficult`` are kept, as detectron2 trains on them
    (the VOC evaluator is the one that ignores them).
    """
    from det.structures import BoxMode

    dirname = os.fspath(dirname)
    class_index = {name: i for i, name in enumerate(class_names)}
    dicts = []
    for fileid in _read_split(dirname, split):
        xml_file = os.path.join(dirname, "Annotations", fileid + ".xml")
        annotation = ET.parse(xml_file).getroot()
        record = {
            "file_name": os.path.join(dirname, "JPEGImages", fileid + ".jpg"),
            "image_id": fileid,
            "height": int(_text(annotation, "size/height", xml_file)),
            "width": int(_text(annotation, "size/width", xml_file)),
        }
        instances = []
        for obj in annotation.findall("object"):
            cls = _text(obj, "name", xml_file)
            if cls not in class_index:
                raise KeyError(f"{xml_file}: class {cls!r} is not one of class_names {list(class_names)}")
            box = [float(_text(obj, f"bndbox/{k}", xml_file)) for k in ("xmin", "ymin", "xmax", "ymax")]
            box[0] -= 1.0
            box[1] -= 1.0
            instances.append({"category_id": class_index[cls], "bbox": box, "bbox_mode": BoxMode.XYXY_ABS})
        record["annotations"] = instances
        dicts.append(record)
    return dicts


def register_pascal_voc(
    name: str,
    dirname: str | os.PathLike,
    split: str,
    year: int,
    class_names: Sequence[str] = CLASS_NAMES,
) -> None:
    """Register ``dirname``'s ``split`` under ``name`` (loaded lazily) with metadata
    ``thing_classes``, ``dirname``, ``year`` and ``split`` (what
    :class:`~det.evaluation.PascalVOCDetectionEvaluator` reads). The builtin ``voc_*``
    datasets also set ``evaluator_type="pascal_voc"``."""
    dirname = os.fspath(dirname)
    class_names = list(class_names)
    DatasetCatalog.register(name, lambda: load_voc_instances(dirname, split, class_names))
    MetadataCatalog.get(name).set(thing_classes=class_names, dirname=dirname, year=year, split=split)
