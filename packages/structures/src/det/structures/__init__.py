"""Boxes, masks, keypoints, Instances and ImageList for detection (detectron2's ``structures``).

Everything here works with only torch, numpy and pycocotools installed::

    from det.structures import Boxes, Instances, pairwise_iou
"""

from det.structures.boxes import (
    Boxes,
    BoxMode,
    matched_boxlist_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)
from det.structures.image_list import ImageList
from det.structures.instances import Instances
from det.structures.rotated_boxes import RotatedBoxes, pairwise_iou_rotated
from det.structures.version import __version__

__all__ = [
    "BoxMode",
    "Boxes",
    "ImageList",
    "Instances",
    "RotatedBoxes",
    "__version__",
    "matched_boxlist_iou",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_iou_rotated",
    "pairwise_point_box_distance",
]
