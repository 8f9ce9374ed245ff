"""Boxes, masks, keypoints, Instances and ImageList for detection (detectron2's ``structures``).

Everything here works with only torch, numpy and pycocotools installed::

    from det.structures import Boxes, Instances, pairwise_iou
"""

from det.structures.boxes import (
    Boxes,
    BoxMode,
    matched_boxlist_iou,
    matched_pairwise_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)
from det.structures.image_list import ImageList
from det.structures.instances import Instances
from det.structures.keypoints import Keypoints, heatmaps_to_keypoints
from det.structures.masks import (
    BitMasks,
    PolygonMasks,
    ROIMasks,
    polygon_area,
    polygons_to_bitmask,
    rasterize_polygons_within_box,
)
from det.structures.rle import (
    mask_to_polygons,
    mask_to_rle,
    polygons_to_rle,
    rle_area,
    rle_to_bbox,
    rle_to_mask,
    rle_to_polygons,
)
from det.structures.rotated_boxes import RotatedBoxes, pairwise_iou_rotated
from det.structures.version import __version__

__all__ = [
    "BitMasks",
    "BoxMode",
    "Boxes",
    "ImageList",
    "Instances",
    "Keypoints",
    "PolygonMasks",
    "ROIMasks",
    "RotatedBoxes",
    "__version__",
    "heatmaps_to_keypoints",
    "mask_to_polygons",
    "mask_to_rle",
    "matched_boxlist_iou",
    "matched_pairwise_iou",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_iou_rotated",
    "pairwise_point_box_distance",
    "polygon_area",
    "polygons_to_bitmask",
    "polygons_to_rle",
    "rasterize_polygons_within_box",
    "rle_area",
    "rle_to_bbox",
    "rle_to_mask",
    "rle_to_polygons",
]
