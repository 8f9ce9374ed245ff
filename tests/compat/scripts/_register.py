"""What a detectron2 user's script does first: register its COCO-format datasets.

The tests pass them as D2_TEST_DATASETS="name=json_file:image_root,..." (scripts in this folder
import this module by its file name)."""

import os

from detectron2.data.datasets import register_coco_instances


def register_from_env() -> None:
    for item in filter(None, os.environ.get("D2_TEST_DATASETS", "").split(",")):
        name, _, paths = item.partition("=")
        json_file, _, image_root = paths.partition(":")
        register_coco_instances(name, {}, json_file, image_root)
