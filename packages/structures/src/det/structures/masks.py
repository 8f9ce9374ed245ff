"""Instance masks: as full-image bitmaps (:class:`BitMasks`), polygons (:class:`PolygonMasks`) or
per-ROI bitmaps (:class:`ROIMasks`), with detectron2's conversions between them."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import torch

from det.structures.boxes import Boxes, _check_cat_items
from det.structures.thread_import import import_on_own_thread

__all__ = [
    "BitMasks",
    "PolygonMasks",
    "ROIMasks",
    "polygon_area",
    "polygons_to_bitmask",
    "rasterize_polygons_within_box",
]


def _mask_util() -> Any:
    # pycocotools is only needed by the polygon code paths; importing it lazily keeps
    # `import det.structures` cheap.
    import pycocotools.mask as mask_util

    return mask_util


def polygon_area(x: np.ndarray, y: np.ndarray) -> float:
    """Area of the simple polygon with vertex coordinates ``x`` and ``y`` (shoelace formula)."""
    return cast("float", 0.5 * np.abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _check_polygon(polygon: np.ndarray, where: str) -> None:
    if polygon.ndim != 1 or len(polygon) % 2 != 0 or len(polygon) < 6:
        raise ValueError(
            f"{where}: a polygon must be a flat [x0, y0, x1, y1, ...] array of at least 3 points "
            f"(>= 6 numbers, an even count); got shape {polygon.shape}"
        )


def polygons_to_bitmask(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Rasterize the union of ``polygons`` (flat [x0, y0, x1, y1, ...] arrays) into a bool (H, W) mask.

    Rasterization is COCO's (pycocotools); an empty list gives an all-False mask.
    """
    if len(polygons) == 0:
        # The COCO API does not accept an empty list.
        return np.zeros((height, width)).astype(bool)
    polygons = [np.asarray(p, dtype=np.float64) for p in polygons]
    for p in polygons:
        # pycocotools would silently read a 4-number list as a bbox.
        _check_polygon(p, "polygons_to_bitmask")
    mask_util = _mask_util()
    rles = mask_util.frPyObjects(polygons, height, width)
    rle = mask_util.merge(rles)
    return cast("np.ndarray", mask_util.decode(rle).astype(bool))


def rasterize_polygons_within_box(
    polygons: list[np.ndarray], box: np.ndarray, mask_size: int
) -> torch.Tensor:
    """Rasterize an instance's polygons cropped to ``box`` (x0, y0, x1, y1) at (mask_size, mask_size).

    The polygons are shifted to the box's corner and scaled by ``mask_size / size`` (sizes below
    0.1 count as 0.1), then rasterized: the Mask R-CNN training target of one instance.
    """
    w, h = box[2] - box[0], box[3] - box[1]
    polygons = copy.deepcopy(polygons)
    for p in polygons:
        p[0::2] = p[0::2] - box[0]
        p[1::2] = p[1::2] - box[1]

    ratio_h = mask_size / max(h, 0.1)
    ratio_w = mask_size / max(w, 0.1)
    if ratio_h == ratio_w:
        for p in polygons:
            p *= ratio_h
    else:
        for p in polygons:
            p[0::2] *= ratio_w
            p[1::2] *= ratio_h

    mask = polygons_to_bitmask(polygons, mask_size, mask_size)
    return torch.from_numpy(mask)


def _box_tensor(boxes: Any, n: int, where: str) -> torch.Tensor:
    if isinstance(boxes, Boxes):
        boxes = boxes.tensor
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{where}: boxes must be an (N, 4) tensor or Boxes, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{where}: boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if len(boxes) != n:
        raise ValueError(f"{where}: got {len(boxes)} boxes for {n} masks; need one box per mask")
    return boxes


class BitMasks:
    """The masks of N instances of one image, as a bool (N, H, W) tensor.

    Invariant: ``tensor`` is bool with three dimensions; ``image_size`` is its (H, W)::

        masks = BitMasks(torch.zeros(2, 32, 32, dtype=torch.bool))
        masks.tensor[0, 4:8, 4:12] = True
        masks.get_bounding_boxes()   # Boxes([[4, 4, 12, 8], [0, 0, 0, 0]])
    """

    def __init__(self, tensor: torch.Tensor | np.ndarray) -> None:
        if isinstance(tensor, torch.Tensor):
            tensor = tensor.to(torch.bool)
        else:
            tensor = torch.as_tensor(np.asarray(tensor), dtype=torch.bool, device=torch.device("cpu"))
        if tensor.dim() != 3:
            raise ValueError(f"BitMasks expects a tensor of shape (N, H, W), got shape {tuple(tensor.shape)}")
        self.image_size = tensor.shape[1:]
        self.tensor = tensor

    def to(self, *args: Any, **kwargs: Any) -> BitMasks:
        return BitMasks(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> BitMasks:
        """``masks[3]`` (one mask), ``masks[2:10]``, ``masks[bool_vector]`` or ``masks[long_vector]``."""
        if isinstance(item, (int, np.integer)):
            return BitMasks(self.tensor[item].unsqueeze(0))
        m = self.tensor[item]
        if m.dim() != 3:
            raise IndexError(
                f"Indexing on BitMasks with {item!r} returns a tensor with shape {tuple(m.shape)}!"
            )
        return BitMasks(m)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.tensor

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.tensor)})"

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def nonempty(self) -> torch.Tensor:
        """(N,) bool: which masks have at least one pixel."""
        return self.tensor.flatten(1).any(dim=1)

    def area(self) -> torch.Tensor:
        """(N,) int64 number of pixels of each mask."""
        return self.tensor.flatten(1).sum(dim=1)

    @staticmethod
    def from_polygon_masks(
        polygon_masks: PolygonMasks | list[list[np.ndarray]], height: int, width: int
    ) -> BitMasks:
        """Rasterize PolygonMasks (or list[list[ndarray]]) into (height, width) BitMasks."""
        if isinstance(polygon_masks, PolygonMasks):
            polygon_masks = polygon_masks.polygons
        masks = [polygons_to_bitmask(p, height, width) for p in polygon_masks]
        if len(masks):
            return BitMasks(torch.stack([torch.from_numpy(x) for x in masks]))
        return BitMasks(torch.empty(0, height, width, dtype=torch.bool))

    @staticmethod
    def from_roi_masks(roi_masks: ROIMasks, height: int, width: int) -> BitMasks:
        """Not usable (as in detectron2, where it is broken): pasting needs the boxes.

        Use ``roi_masks.to_bitmasks(boxes, height, width)``.
        """
        raise TypeError(
            "BitMasks.from_roi_masks cannot paste without the ROI boxes; "
            "call roi_masks.to_bitmasks(boxes, height, width) instead"
        )

    def crop_and_resize(self, boxes: torch.Tensor | Boxes, mask_size: int) -> torch.Tensor:
        """(N, mask_size, mask_size) bool: mask i cropped to box i and resized (Mask R-CNN targets).

        ROIAlign (aligned=True, adaptive sampling) of the 0/1 mask, thresholded at 0.5. Uses
        torchvision's ``roi_align`` when installed, else an equivalent pure-torch one.
        """
        boxes = _box_tensor(boxes, len(self), "BitMasks.crop_and_resize")
        device = self.tensor.device
        batch_inds = torch.arange(len(boxes), device=device).to(dtype=boxes.dtype)[:, None]
        rois = torch.cat([batch_inds, boxes.to(device=device)], dim=1)
        bit_masks = self.tensor.to(dtype=torch.float32)
        output = _roi_align(bit_masks[:, None, :, :], rois, (mask_size, mask_size)).squeeze(1)
        return output >= 0.5

    def get_bounding_boxes(self) -> Boxes:
        """Tight boxes (x0, y0, x1 + 1, y1 + 1) around each mask's pixels; all zeros for empty masks."""
        boxes = torch.zeros(self.tensor.shape[0], 4, dtype=torch.float32)
        x_any = torch.any(self.tensor, dim=1)
        y_any = torch.any(self.tensor, dim=2)
        for idx in range(self.tensor.shape[0]):
            x = torch.where(x_any[idx, :])[0]
            y = torch.where(y_any[idx, :])[0]
            if len(x) > 0 and len(y) > 0:
                boxes[idx, :] = torch.as_tensor([x[0], y[0], x[-1] + 1, y[-1] + 1], dtype=torch.float32)
        return Boxes(boxes)

    @staticmethod
    def cat(bitmasks_list: Sequence[BitMasks]) -> BitMasks:
        """Concatenate BitMasks of the same image size."""
        _check_cat_items(bitmasks_list, BitMasks)
        sizes = {tuple(bm.image_size) for bm in bitmasks_list}
        if len(sizes) > 1:
            raise ValueError(f"BitMasks.cat: masks have different image sizes {sorted(sizes)}")
        return type(bitmasks_list[0])(torch.cat([bm.tensor for bm in bitmasks_list], dim=0))


def _roi_align(masks: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """ROIAlign(output_size, spatial_scale=1, sampling_ratio=0, aligned=True), torchvision if present.

    Mask targets are made inside the training forward, so torchvision.ops is imported on a thread
    of its own (see :mod:`det.structures.thread_import`).
    """
    try:
        roi_align = import_on_own_thread("torchvision.ops").roi_align
    except ImportError:
        from det.structures.roi_align import roi_align
    return cast("torch.Tensor", roi_align(masks, rois, output_size, 1.0, 0, True))


class PolygonMasks:
    """The masks of N instances of one image, as polygons.

    Invariant: ``polygons[i]`` is the list of polygons of instance i, each a flat float64 numpy
    array [x0, y0, x1, y1, ...] of at least 3 points::

        masks = PolygonMasks([[np.array([0, 0, 8, 0, 8, 8.0])]])
        masks.area()                                      # tensor([32.])
        BitMasks.from_polygon_masks(masks, 16, 16)
    """

    def __init__(self, polygons: list[list[Any]]) -> None:
        if not isinstance(polygons, list):
            raise ValueError(
                "Cannot create PolygonMasks: Expect a list of list of polygons per image. "
                f"Got '{type(polygons)}' instead."
            )

        def make_array(t: Any) -> np.ndarray:
            # float64 for precision; polygons always live on the CPU (`to` is a no-op), they are small.
            if isinstance(t, torch.Tensor):
                t = t.cpu().numpy()
            return np.asarray(t).astype("float64")

        def process_polygons(polygons_per_instance: Any) -> list[np.ndarray]:
            if not isinstance(polygons_per_instance, list):
                raise ValueError(
                    "Cannot create polygons: Expect a list of polygons per instance. "
                    f"Got '{type(polygons_per_instance)}' instead."
                )
            arrays = [make_array(p) for p in polygons_per_instance]
            for polygon in arrays:
                if polygon.ndim != 1 or len(polygon) % 2 != 0 or len(polygon) < 6:
                    raise ValueError(
                        f"Cannot create a polygon from {polygon.size} coordinates (shape {polygon.shape}): "
                        "expected a flat [x0, y0, x1, y1, ...] list of at least 3 points"
                    )
            return arrays

        self.polygons: list[list[np.ndarray]] = [process_polygons(p) for p in polygons]

    def to(self, *args: Any, **kwargs: Any) -> PolygonMasks:
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def get_bounding_boxes(self) -> Boxes:
        """Tight boxes around each instance's polygons.

        As in detectron2, the max corner starts at 0 (so coordinates are assumed non-negative) and
        an instance without polygons gets (inf, inf, 0, 0).
        """
        boxes = torch.zeros(len(self.polygons), 4, dtype=torch.float32)
        for idx, polygons_per_instance in enumerate(self.polygons):
            minxy = torch.as_tensor([float("inf"), float("inf")], dtype=torch.float32)
            maxxy = torch.zeros(2, dtype=torch.float32)
            for polygon in polygons_per_instance:
                coords = torch.from_numpy(polygon).view(-1, 2).to(dtype=torch.float32)
                minxy = torch.min(minxy, torch.min(coords, dim=0).values)
                maxxy = torch.max(maxxy, torch.max(coords, dim=0).values)
            boxes[idx, :2] = minxy
            boxes[idx, 2:] = maxxy
        return Boxes(boxes)

    def nonempty(self) -> torch.Tensor:
        """(N,) bool: which instances have at least one polygon."""
        keep = [1 if len(polygon) > 0 else 0 for polygon in self.polygons]
        return torch.as_tensor(keep, dtype=torch.bool)

    def __getitem__(self, item: int | slice | list[int] | torch.Tensor) -> PolygonMasks:
        """Select instances by int, slice, list of ints, bool vector or integer vector."""
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            selected = [self.polygons[item]]
        elif isinstance(item, slice):
            selected = self.polygons[item]
        elif isinstance(item, list):
            selected = [self.polygons[i] for i in item]
        elif isinstance(item, (torch.Tensor, np.ndarray)):
            index = torch.as_tensor(item)
            if index.dtype == torch.bool:
                if index.dim() != 1 or len(index) != len(self):
                    raise IndexError(
                        f"PolygonMasks indexed with a bool mask of shape {tuple(index.shape)}, expected ({len(self)},)"
                    )
                index_list = index.nonzero().squeeze(1).cpu().tolist()
            elif index.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
                index_list = index.reshape(-1).cpu().tolist()
            else:
                raise ValueError(f"Unsupported tensor dtype={index.dtype} for indexing!")
            selected = [self.polygons[i] for i in index_list]
        else:
            raise TypeError(f"PolygonMasks cannot be indexed with {type(item).__name__}")
        return PolygonMasks(selected)

    def __iter__(self) -> Iterator[list[np.ndarray]]:
        """Yield each instance's list of float64 polygons."""
        return iter(self.polygons)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.polygons)})"

    def __len__(self) -> int:
        return len(self.polygons)

    def crop_and_resize(self, boxes: torch.Tensor | Boxes, mask_size: int) -> torch.Tensor:
        """(N, mask_size, mask_size) bool: instance i's polygons cropped to box i, then rasterized."""
        boxes = _box_tensor(boxes, len(self), "PolygonMasks.crop_and_resize")
        device = boxes.device
        # Polygons are many small arrays: rasterize on the CPU.
        boxes = boxes.to(torch.device("cpu"))
        results = [
            rasterize_polygons_within_box(poly, box.numpy(), mask_size)
            for poly, box in zip(self.polygons, boxes)
        ]
        if len(results) == 0:
            return torch.empty(0, mask_size, mask_size, dtype=torch.bool, device=device)
        return torch.stack(results, dim=0).to(device=device)

    def area(self) -> torch.Tensor:
        """(N,) area of each instance: the sum of its polygons' shoelace areas (overlaps count twice)."""
        area = []
        for polygons_per_instance in self.polygons:
            area_per_instance = 0.0
            for p in polygons_per_instance:
                area_per_instance += polygon_area(p[0::2], p[1::2])
            area.append(area_per_instance)
        return torch.tensor(area, dtype=torch.float64)

    @staticmethod
    def cat(polymasks_list: Sequence[PolygonMasks]) -> PolygonMasks:
        """Concatenate PolygonMasks."""
        _check_cat_items(polymasks_list, PolygonMasks)
        return type(polymasks_list[0])(list(itertools.chain.from_iterable(pm.polygons for pm in polymasks_list)))


class ROIMasks:
    """N masks, each an (M, M) grid defined inside its own region of interest.

    Invariant: ``tensor`` has shape (N, M, M); full-image masks come from pasting each grid
    into its box::

        roi_masks = ROIMasks(mask_probs[:, 0])            # (N, 28, 28)
        bitmasks = roi_masks.to_bitmasks(pred_boxes, 480, 640)
    """

    def __init__(self, tensor: torch.Tensor) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 3:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"ROIMasks must take a masks of 3 dimension (N, M, M), got {shape}")
        self.tensor = tensor

    def to(self, device: torch.device | str) -> ROIMasks:
        return ROIMasks(self.tensor.to(device))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __getitem__(self, item: int | slice | torch.Tensor) -> ROIMasks:
        t = self.tensor[item]
        if t.dim() != 3:
            raise ValueError(
                f"Indexing on ROIMasks with {item} returns a tensor with shape {tuple(t.shape)}!"
            )
        return ROIMasks(t)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_instances={len(self.tensor)})"

    def to_bitmasks(
        self, boxes: Boxes | torch.Tensor, height: int, width: int, threshold: float = 0.5
    ) -> BitMasks:
        """Paste mask i into box i of a (height, width) image and threshold it (detectron2's paste)."""
        from det.structures.mask_ops import paste_masks_in_image

        box_tensor = _box_tensor(boxes, len(self), "ROIMasks.to_bitmasks")
        bitmasks = paste_masks_in_image(self.tensor, box_tensor, (height, width), threshold=threshold)
        return BitMasks(bitmasks)
