"""Helpers that turn standard dataset dicts into model inputs (detectron2's ``data.detection_utils``)."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image

from det.data import transforms as T
from det.data.catalog import DatasetCatalog, MetadataCatalog

__all__ = [
    "SizeMismatchError",
    "annotations_to_instances",
    "annotations_to_instances_rotated",
    "build_augmentation",
    "build_transform_gen",
    "check_image_size",
    "check_metadata_consistency",
    "convert_PIL_to_numpy",
    "convert_image_to_rgb",
    "create_keypoint_hflip_indices",
    "filter_empty_instances",
    "gen_crop_transform_with_instance",
    "get_fed_loss_cls_weights",
    "read_image",
    "transform_instance_annotations",
    "transform_keypoint_annotations",
    "transform_proposals",
]

logger = logging.getLogger(__name__)


class SizeMismatchError(ValueError):
    """The image on disk does not have the height/width its dataset dict claims."""


# BT.601 RGB <-> YUV matrices (https://en.wikipedia.org/wiki/YUV#SDTV_with_BT.601).
_M_RGB2YUV = [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]]
_M_YUV2RGB = [[1.0, 0.0, 1.13983], [1.0, -0.39465, -0.58060], [1.0, 2.03211, 0.0]]

_EXIF_ORIENT = 274  # the EXIF "Orientation" tag

_FORMATS = ("BGR", "RGB", "L", "YUV-BT.601")


def convert_PIL_to_numpy(image: Image.Image, format: str | None) -> np.ndarray:
    """A PIL image as an (H,W,C) numpy array in ``format`` ("BGR", "RGB", "L" -> (H,W,1),
    "YUV-BT.601" -> float in [0,1]-scaled YUV, any other PIL mode, or None to keep the mode)."""
    if format is not None:
        conversion_format = "RGB" if format in ("BGR", "YUV-BT.601") else format
        image = image.convert(conversion_format)
    arr = np.asarray(image)
    if format == "L":
        arr = np.expand_dims(arr, -1)
    elif format == "BGR":
        arr = arr[:, :, ::-1]
    elif format == "YUV-BT.601":
        arr = arr / 255.0
        arr = np.dot(arr, np.array(_M_RGB2YUV).T)
    return arr


def convert_image_to_rgb(image: np.ndarray | torch.Tensor, format: str) -> np.ndarray:
    """An (H,W,C) image in ``format`` back to RGB uint8-range numpy (for visualization)."""
    if isinstance(image, torch.Tensor):
        image = image.cpu().numpy()
    if format == "BGR":
        image = image[:, :, [2, 1, 0]]
    elif format == "YUV-BT.601":
        image = np.dot(image, np.array(_M_YUV2RGB).T)
        image = image * 255.0
    else:
        if format == "L":
            image = image[:, :, 0]
        image = image.astype(np.uint8)
        image = np.asarray(Image.fromarray(image, mode=format).convert("RGB"))
    return image


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF orientation tag says, so pixels match what viewers show."""
    if not hasattr(image, "getexif"):
        return image
    try:
        exif = image.getexif()
    except Exception:  # malformed EXIF must not make an image unreadable
        exif = None
    if exif is None:
        return image
    orientation = exif.get(_EXIF_ORIENT)
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    if method is not None:
        return image.transpose(method)
    return image


def read_image(file_name: str | os.PathLike, format: str | None = None) -> np.ndarray:
    """Read an image file into (H,W,C) numpy in ``format`` (see :func:`convert_PIL_to_numpy`),
    honouring the EXIF orientation. uint8 for BGR/RGB/L."""
    file_name = os.fspath(file_name)
    if not os.path.isfile(file_name):
        raise FileNotFoundError(f"read_image: {file_name!r} does not exist")
    with open(file_name, "rb") as f:
        try:
            image = Image.open(f)
            image.load()
        except (OSError, SyntaxError, ValueError) as e:
            # PIL names neither the file (it got a file object) nor, for a truncated file, the cause
            message = (f"read_image: cannot read {file_name!r}: {e} (is it a complete image file? "
                       "`det data check` finds such files in a dataset)")
            try:
                error = type(e)(message)
            except TypeError:  # an exception class with another constructor
                error = OSError(message)
            raise error from e
    image = _apply_exif_orientation(image)
    return convert_PIL_to_numpy(image, format)


def check_image_size(dataset_dict: dict, image: np.ndarray) -> None:
    """Raise :class:`SizeMismatchError` if the image disagrees with the dict's height/width; fill
    them in when missing."""
    if "width" in dataset_dict or "height" in dataset_dict:
        image_wh = (image.shape[1], image.shape[0])
        expected_wh = (dataset_dict["width"], dataset_dict["height"])
        if not image_wh == expected_wh:
            raise SizeMismatchError(
                "Mismatched image shape{}, got {}, expect {}.".format(
                    " for image " + dataset_dict["file_name"] if "file_name" in dataset_dict else "",
                    image_wh,
                    expected_wh,
                )
                + " Please check the width/height in your annotation."
            )
    if "width" not in dataset_dict:
        dataset_dict["width"] = image.shape[1]
    if "height" not in dataset_dict:
        dataset_dict["height"] = image.shape[0]


def transform_proposals(
    dataset_dict: dict,
    image_shape: tuple[int, int],
    transforms: Any,
    *,
    proposal_topk: int,
    min_box_size: float = 0,
) -> None:
    """Turn the dict's precomputed ``proposal_boxes``/``proposal_objectness_logits`` into an
    ``Instances`` under "proposals": transformed, clipped, tiny ones dropped, top-k kept."""
    from det.structures import Boxes, BoxMode, Instances

    if "proposal_boxes" in dataset_dict:
        boxes = transforms.apply_box(
            BoxMode.convert(
                dataset_dict.pop("proposal_boxes"), dataset_dict.pop("proposal_bbox_mode"), BoxMode.XYXY_ABS
            )
        )
        boxes = Boxes(torch.as_tensor(np.asarray(boxes), dtype=torch.float32))
        objectness_logits = torch.as_tensor(
            np.asarray(dataset_dict.pop("proposal_objectness_logits")).astype("float32")
        )
        boxes.clip(image_shape)
        keep = boxes.nonempty(threshold=min_box_size)
        boxes = boxes[keep]
        objectness_logits = objectness_logits[keep]
        proposals = Instances(image_shape)
        proposals.proposal_boxes = boxes[:proposal_topk]
        proposals.objectness_logits = objectness_logits[:proposal_topk]
        dataset_dict["proposals"] = proposals


def _as_transform_list(transforms: Any) -> T.TransformList:
    if isinstance(transforms, (tuple, list)):
        return T.TransformList(list(transforms))
    if isinstance(transforms, T.TransformList):
        return transforms
    return T.TransformList([transforms])


def transform_instance_annotations(
    annotation: dict, transforms: Any, image_size: tuple[int, int], *, keypoint_hflip_indices: Any = None
) -> dict:
    """Apply ``transforms`` to one instance annotation in place (and return it): the box becomes
    the XYXY_ABS box enclosing the transformed box, clipped to ``image_size`` (h, w); polygons
    are transformed, RLE becomes a transformed binary mask; keypoints see
    :func:`transform_keypoint_annotations`."""
    from det.structures import BoxMode

    transforms = _as_transform_list(transforms)
    bbox = BoxMode.convert(annotation["bbox"], annotation["bbox_mode"], BoxMode.XYXY_ABS)
    bbox = transforms.apply_box(np.array([bbox], dtype=np.float64))[0].clip(min=0)
    annotation["bbox"] = np.minimum(bbox, list(image_size + image_size)[::-1])
    annotation["bbox_mode"] = BoxMode.XYXY_ABS

    if "segmentation" in annotation:
        segm = annotation["segmentation"]
        if isinstance(segm, list):
            polygons = [np.asarray(p).reshape(-1, 2) for p in segm]
            annotation["segmentation"] = [p.reshape(-1) for p in transforms.apply_polygons(polygons)]
        elif isinstance(segm, dict):
            mask = mask_util.decode(segm)
            mask = transforms.apply_segmentation(mask)
            if tuple(mask.shape[:2]) != tuple(image_size):
                raise ValueError(
                    f"transformed RLE mask has shape {mask.shape[:2]}, expected image size {image_size}"
                )
            annotation["segmentation"] = mask
        elif isinstance(segm, np.ndarray):
            mask = transforms.apply_segmentation(segm)
            annotation["segmentation"] = mask
        else:
            raise ValueError(
                f"Cannot transform segmentation of type '{type(segm)}'!"
                "Supported types are: polygons as list[list[float] or ndarray], COCO-style RLE as a dict."
            )

    if "keypoints" in annotation:
        annotation["keypoints"] = transform_keypoint_annotations(
            annotation["keypoints"], transforms, image_size, keypoint_hflip_indices
        )
    return annotation


def transform_keypoint_annotations(
    keypoints: Any, transforms: Any, image_size: tuple[int, int], keypoint_hflip_indices: Any = None
) -> np.ndarray:
    """Transform (K*3,) or (K,3) keypoints: x/y through ``transforms``; visibility set to 0 for
    points that leave the image; after an odd number of horizontal flips, keypoints are permuted
    by ``keypoint_hflip_indices`` (left eye becomes right eye). Returns (K,3) float64."""
    transforms = _as_transform_list(transforms)
    keypoints = np.asarray(keypoints, dtype="float64").reshape(-1, 3)
    keypoints_xy = transforms.apply_coords(keypoints[:, :2])

    inside = (keypoints_xy >= np.array([0, 0])) & (keypoints_xy <= np.array(image_size[::-1]))
    inside = inside.all(axis=1)
    keypoints[:, :2] = keypoints_xy
    keypoints[:, 2][~inside] = 0

    do_hflip = sum(isinstance(t, T.HFlipTransform) for t in transforms.transforms) % 2 == 1
    if do_hflip:
        if keypoint_hflip_indices is None:
            raise ValueError("Cannot flip keypoints without providing flip indices!")
        if len(keypoints) != len(keypoint_hflip_indices):
            raise ValueError(
                f"Keypoint data has {len(keypoints)} points, but metadata contains {len(keypoint_hflip_indices)} points!"
            )
        keypoints = keypoints[np.asarray(keypoint_hflip_indices, dtype=np.int32), :]

    # Invisible keypoints carry no location: zero them so nothing downstream uses stale x/y.
    keypoints[keypoints[:, 2] == 0] = 0
    return keypoints


def annotations_to_instances(
    annos: list[dict], image_size: tuple[int, int], mask_format: str = "polygon"
) -> Any:
    """Build the ground-truth ``Instances`` of one image from transformed annotations:
    ``gt_boxes`` (Boxes XYXY_ABS), ``gt_classes`` (int64), ``gt_masks`` (PolygonMasks for
    ``mask_format="polygon"``, BitMasks for "bitmask") and ``gt_keypoints`` when present."""
    from det.structures import (
        BitMasks,
        Boxes,
        BoxMode,
        Instances,
        Keypoints,
        PolygonMasks,
        polygons_to_bitmask,
    )

    if mask_format not in ("polygon", "bitmask"):
        raise ValueError(f"mask_format must be 'polygon' or 'bitmask', got {mask_format!r}")
    boxes = (
        np.stack([BoxMode.convert(obj["bbox"], obj["bbox_mode"], BoxMode.XYXY_ABS) for obj in annos])
        if len(annos)
        else np.zeros((0, 4))
    )
    target = Instances(image_size)
    target.gt_boxes = Boxes(torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4))

    classes = torch.tensor([int(obj["category_id"]) for obj in annos], dtype=torch.int64)
    target.gt_classes = classes

    if len(annos) and "segmentation" in annos[0]:
        segms = [obj["segmentation"] for obj in annos]
        if mask_format == "polygon":
            try:
                masks: Any = PolygonMasks(segms)
            except (ValueError, TypeError, AssertionError) as e:
                raise ValueError(
                    "Failed to use mask_format=='polygon' from the given annotations! "
                    "(RLE or bitmask segmentations need mask_format='bitmask', i.e. INPUT.MASK_FORMAT: bitmask)"
                ) from e
        else:
            bitmasks = []
            for segm in segms:
                if isinstance(segm, list):
                    bitmasks.append(polygons_to_bitmask(segm, *image_size))
                elif isinstance(segm, dict):
                    bitmasks.append(mask_util.decode(segm))
                elif isinstance(segm, np.ndarray):
                    if segm.ndim != 2:
                        raise ValueError(f"Expect segmentation of 2 dimensions, got {segm.ndim}.")
                    bitmasks.append(segm)
                else:
                    raise ValueError(
                        f"Cannot convert segmentation of type '{type(segm)}' to BitMasks!"
                        "Supported types are: polygons as list[list[float] or ndarray],"
                        " COCO-style RLE as a dict, or a binary segmentation mask "
                        " in a 2D numpy array of shape HxW."
                    )
            # np.array copies: decoded/transformed masks can be read-only or negatively strided views.
            masks = BitMasks(torch.stack([torch.from_numpy(np.array(x)) for x in bitmasks]))
        target.gt_masks = masks

    if len(annos) and "keypoints" in annos[0]:
        kpts = [np.asarray(obj.get("keypoints", []), dtype=np.float32).reshape(-1, 3) for obj in annos]
        if len({k.shape for k in kpts}) != 1:
            raise ValueError(
                f"every annotation needs the same number of keypoints, got shapes {[k.shape for k in kpts]}"
            )
        target.gt_keypoints = Keypoints(np.stack(kpts))

    return target


def annotations_to_instances_rotated(annos: list[dict], image_size: tuple[int, int]) -> Any:
    """Ground-truth ``Instances`` of rotated boxes: ``gt_boxes`` (RotatedBoxes from each
    annotation's (cx, cy, w, h, angle) ``bbox``, clipped where nearly horizontal) and ``gt_classes``."""
    from det.structures import Instances, RotatedBoxes

    boxes = [obj["bbox"] for obj in annos]
    if any(len(b) != 5 for b in boxes):
        raise ValueError("annotations_to_instances_rotated: every bbox must be (cx, cy, w, h, angle)")
    target = Instances(image_size)
    target.gt_boxes = RotatedBoxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 5))
    target.gt_boxes.clip(image_size)
    target.gt_classes = torch.tensor([obj["category_id"] for obj in annos], dtype=torch.int64)
    return target


def filter_empty_instances(
    instances: Any,
    by_box: bool = True,
    by_mask: bool = True,
    box_threshold: float = 1e-5,
    return_mask: bool = False,
) -> Any:
    """Drop instances whose box is (nearly) empty or whose mask is empty."""
    if not (by_box or by_mask):
        raise ValueError("filter_empty_instances: at least one of by_box / by_mask must be True")
    r = []
    if by_box:
        r.append(instances.gt_boxes.nonempty(threshold=box_threshold))
    if instances.has("gt_masks") and by_mask:
        r.append(instances.gt_masks.nonempty())
    if not r:
        return instances
    m = r[0]
    for x in r[1:]:
        m = m & x
    if return_mask:
        return instances[m], m
    return instances[m]


def create_keypoint_hflip_indices(dataset_names: str | list[str]) -> list[int]:
    """For each keypoint, the index of its mirror image under a horizontal flip, from the
    datasets' ``keypoint_names`` and ``keypoint_flip_map`` metadata."""
    if isinstance(dataset_names, str):
        dataset_names = [dataset_names]
    check_metadata_consistency("keypoint_names", dataset_names)
    check_metadata_consistency("keypoint_flip_map", dataset_names)
    meta = MetadataCatalog.get(dataset_names[0])
    names = list(meta.keypoint_names)
    flip_map = dict(meta.keypoint_flip_map)
    flip_map.update({v: k for k, v in flip_map.items()})
    flipped_names = [flip_map.get(i, i) for i in names]
    try:
        return [names.index(i) for i in flipped_names]
    except ValueError as e:
        raise ValueError(
            f"keypoint_flip_map of {dataset_names[0]} names a keypoint not in keypoint_names: {e}"
        ) from e


def gen_crop_transform_with_instance(
    crop_size: Any, image_size: tuple[int, int], instance: dict
) -> T.CropTransform:
    """A random crop of ``crop_size`` (h, w) that contains the centre of ``instance``'s box."""
    from det.structures import BoxMode

    crop_size = np.asarray(crop_size, dtype=np.int32)
    bbox = BoxMode.convert(instance["bbox"], instance["bbox_mode"], BoxMode.XYXY_ABS)
    center_yx = (bbox[1] + bbox[3]) * 0.5, (bbox[0] + bbox[2]) * 0.5
    if not (image_size[0] >= center_yx[0] and image_size[1] >= center_yx[1]):
        raise ValueError("The annotation bounding box is outside of the image!")
    if not (image_size[0] >= crop_size[0] and image_size[1] >= crop_size[1]):
        raise ValueError("Crop size is larger than image size!")
    min_yx = np.maximum(np.floor(center_yx).astype(np.int32) - crop_size, 0)
    max_yx = np.maximum(np.asarray(image_size, dtype=np.int32) - crop_size, 0)
    max_yx = np.minimum(max_yx, np.ceil(center_yx).astype(np.int32))
    y0 = np.random.randint(min_yx[0], max_yx[0] + 1)
    x0 = np.random.randint(min_yx[1], max_yx[1] + 1)
    return T.CropTransform(x0, y0, int(crop_size[1]), int(crop_size[0]))


def check_metadata_consistency(key: str, dataset_names: list[str]) -> None:
    """Raise ValueError if the datasets disagree on metadata ``key``."""
    if len(dataset_names) == 0:
        return
    # getattr: a dataset without the key is an AttributeError, which callers may rely on.
    entries_per_dataset = [getattr(MetadataCatalog.get(d), key) for d in dataset_names]
    for idx, entry in enumerate(entries_per_dataset):
        if entry != entries_per_dataset[0]:
            raise ValueError(
                f"Metadata '{key}' for dataset '{dataset_names[idx]}' is '{entry}', but for dataset "
                f"'{dataset_names[0]}' it is '{entries_per_dataset[0]}'"
            )


def build_augmentation(cfg: Any, is_train: bool) -> list[Any]:
    """The default augmentations from ``cfg.INPUT``: ResizeShortestEdge, plus RandomFlip for
    training unless ``INPUT.RANDOM_FLIP`` is "none"."""
    if is_train:
        min_size = cfg.INPUT.MIN_SIZE_TRAIN
        max_size = cfg.INPUT.MAX_SIZE_TRAIN
        sample_style = cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
    else:
        min_size = cfg.INPUT.MIN_SIZE_TEST
        max_size = cfg.INPUT.MAX_SIZE_TEST
        sample_style = "choice"
    augmentation: list[Any] = [T.ResizeShortestEdge(min_size, max_size, sample_style)]
    if is_train and cfg.INPUT.RANDOM_FLIP != "none":
        if cfg.INPUT.RANDOM_FLIP not in ("horizontal", "vertical"):
            raise ValueError(
                f"INPUT.RANDOM_FLIP must be 'none', 'horizontal' or 'vertical', got {cfg.INPUT.RANDOM_FLIP!r}"
            )
        augmentation.append(
            T.RandomFlip(
                horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                vertical=cfg.INPUT.RANDOM_FLIP == "vertical",
            )
        )
    return augmentation


build_transform_gen = build_augmentation
"""Deprecated alias of :func:`build_augmentation`."""


def get_fed_loss_cls_weights(dataset_names: str | list[str], freq_weight_power: float = 1.0) -> torch.Tensor:
    """Per-class weights for the federated loss: (number of training images showing the class)
    ** ``freq_weight_power``, read from the datasets' ``class_image_count`` metadata (LVIS; a
    registered dataset that sets it only when loaded is loaded first).

    detectron2's ``data.detection_utils.get_fed_loss_cls_weights``; ViTDet's LVIS LazyConfigs
    import it from there.
    """
    if isinstance(dataset_names, str):
        dataset_names = [dataset_names]
    counts = []
    for name in dataset_names:
        count = getattr(MetadataCatalog.get(name), "class_image_count", None)
        if count is None and name in DatasetCatalog:
            # LVIS fills its class metadata from the json when the dataset is first loaded
            DatasetCatalog.get(name)
            count = getattr(MetadataCatalog.get(name), "class_image_count", None)
        counts.append(count)
    if counts[0] is None:
        raise ValueError(
            f"the federated loss needs 'class_image_count' in the metadata of dataset {dataset_names[0]!r}"
        )
    for name, c in zip(dataset_names[1:], counts[1:]):
        if c != counts[0]:
            raise ValueError(
                f"datasets {dataset_names[0]!r} and {name!r} have different 'class_image_count' metadata"
            )
    class_freq = torch.tensor([c["image_count"] for c in sorted(counts[0], key=lambda x: x["id"])])
    return class_freq.float() ** freq_weight_power
