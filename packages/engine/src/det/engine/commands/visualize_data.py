"""``det visualize-data``: draw the ground truth of the config's ``DATASETS.TRAIN`` to PNGs, as
the dataset dicts hold it (``--source annotation``) or as the model sees it after the training
mapper's resizing and augmentation (``--source dataloader``); detectron2's
``tools/visualize_data.py``.

    det visualize-data --config-file out/config.yaml --source annotation --output-dir vis/
    det visualize-data --config-file out/config.yaml --source dataloader --output-dir vis/ --num-images 20

``annotation`` writes ``<image file stem>.png`` per image (all of them unless ``--num-images``);
``dataloader`` writes ``<image_id>.png`` per training image drawn (the loader is endless: as
many as the datasets have images unless ``--num-images``; a repeated image gets ``_1``, ``_2``).
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from det.engine.commands._common import (
    USER_ERRORS,
    CommandError,
    add_config_overrides,
    report_user_error,
    require_datasets,
    setup_cfg,
    show_examples,
)

__all__ = ["SOURCES", "main", "register", "run"]

SOURCES = ("annotation", "dataloader")


class _UniqueNames:
    """``name`` the first time, then ``name_1``, ``name_2``: no output overwrites another."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def __call__(self, stem: str) -> str:
        name, k = stem, 1
        while name in self._used:
            name, k = f"{stem}_{k}", k + 1
        self._used.add(name)
        return name


def _annotation_images(dicts: list[dict], metadata: Any, scale: float) -> Iterator[tuple[str, Any]]:
    from det.data.detection_utils import read_image
    from det.engine.visualizer import Visualizer

    for dic in dicts:
        image = read_image(dic["file_name"], "RGB")
        yield Path(dic["file_name"]).stem, Visualizer(image, metadata, scale=scale).draw_dataset_dict(dic)


def _dataloader_images(cfg: Any, metadata: Any, scale: float) -> Iterator[tuple[str, Any]]:
    from det.data.build import build_detection_train_loader
    from det.data.detection_utils import convert_image_to_rgb
    from det.engine.visualizer import Visualizer

    class_names = metadata.get("thing_classes", None)
    for batch in build_detection_train_loader(cfg):
        for per_image in batch:
            image = convert_image_to_rgb(per_image["image"].permute(1, 2, 0).cpu().numpy(), cfg.INPUT.FORMAT)
            visualizer = Visualizer(image, metadata, scale=scale)
            fields = per_image["instances"].get_fields() if "instances" in per_image else {}
            classes = fields["gt_classes"].tolist() if "gt_classes" in fields else []
            labels = [class_names[c] if class_names and 0 <= c < len(class_names) else str(c) for c in classes]
            vis = visualizer.overlay_instances(labels=labels or None, boxes=fields.get("gt_boxes"),
                                               masks=fields.get("gt_masks"), keypoints=fields.get("gt_keypoints"))
            stem = str(per_image.get("image_id", Path(per_image.get("file_name", "image")).stem))
            yield stem, vis


def main(config_file: str, source: str, output_dir: str, *, num_images: int | None = None, scale: float = 1.0,
         opts: Sequence[str] | None = None, progress: bool = True) -> list[Path]:
    """Draw the training images' ground truth from ``source`` (one of :data:`SOURCES`) into
    ``output_dir``; return the PNG paths written."""
    from tqdm import tqdm

    from det.data.build import filter_images_with_few_keypoints
    from det.data.catalog import DatasetCatalog, MetadataCatalog

    if source not in SOURCES:
        raise CommandError(f"unknown --source {source!r}: choose {' or '.join(SOURCES)}")
    if num_images is not None and num_images <= 0:
        raise CommandError(f"--num-images must be positive, got {num_images}")
    if scale <= 0:
        raise CommandError(f"--scale must be positive, got {scale}")
    cfg = setup_cfg(config_file, [*(opts or []), "DATALOADER.NUM_WORKERS", "0"])
    names = require_datasets(cfg.DATASETS.TRAIN, "DATASETS.TRAIN")
    metadata = MetadataCatalog.get(names[0])
    dicts = list(itertools.chain.from_iterable(DatasetCatalog.get(n) for n in names))
    if source == "annotation":
        if cfg.MODEL.KEYPOINT_ON:
            dicts = filter_images_with_few_keypoints(dicts, 1)
        images = _annotation_images(dicts, metadata, scale)
        total = len(dicts) if num_images is None else min(num_images, len(dicts))
    else:
        images = _dataloader_images(cfg, metadata, scale)
        total = len(dicts) if num_images is None else num_images
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    unique = _UniqueNames()
    written = []
    with tqdm(total=total, desc=f"drawing {source}", unit="image", disable=not progress) as bar:
        for stem, vis in itertools.islice(images, total):
            path = output / f"{unique(stem)}.png"
            vis.save(path)
            written.append(path)
            bar.update()
    return written


def run(args: argparse.Namespace) -> int:
    try:
        written = main(args.config_file, args.source, args.output_dir, num_images=args.num_images,
                       scale=args.scale, opts=args.opts, progress=not args.no_progress)
    except USER_ERRORS as e:
        return report_user_error("visualize-data", e)
    print(f"{len(written)} images drawn from the {args.source} written to {os.fspath(args.output_dir)}")
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    parser.add_argument("--source", required=True, choices=SOURCES,
                        help="annotation: the dataset dicts as loaded; dataloader: training batches after the mapper")
    parser.add_argument("--output-dir", default="./", metavar="DIR", help="folder for the PNGs (default: ./)")
    parser.add_argument("--num-images", type=int, default=None,
                        help="images to draw (default: every image of DATASETS.TRAIN, once)")
    parser.add_argument("--scale", type=float, default=1.0, help="drawing scale of each image (default 1.0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_overrides(parser)
    show_examples(parser, __doc__)
    return run
