"""ROIPooler: crops fixed-size features of boxes from the right level of a feature pyramid."""

from __future__ import annotations

import math

import torch
from torch import nn

from det.core.layers import ROIAlign, ROIAlignRotated, cat, nonzero_tuple, shapes_to_tensor


def _roi_pool(output_size, spatial_scale):
    # torchvision is imported when an ROIPool pooler is built, not when det.core.modeling is
    from det.core.layers.ops import torchvision_ops

    return torchvision_ops().RoIPool(output_size, spatial_scale=spatial_scale)


__all__ = ["ROIPooler", "assign_boxes_to_levels", "convert_boxes_to_pooler_format"]


def assign_boxes_to_levels(
    box_lists: list,
    min_level: int,
    max_level: int,
    canonical_box_size: int,
    canonical_level: int,
) -> torch.Tensor:
    """Pick the pyramid level each box is pooled from (FPN paper, eqn. 1).

    A box of size ``canonical_box_size`` (sqrt of area) goes to ``canonical_level``; each doubling
    of size moves one level up. The level is clamped to [min_level, max_level].

    Args:
        box_lists: per image, Boxes or RotatedBoxes.

    Returns:
        Tensor: (sum of boxes,) int64, the level of each box minus ``min_level`` (an index into
        the list of feature maps).
    """
    box_sizes = torch.sqrt(cat([boxes.area() for boxes in box_lists]))
    # the 1e-8 keeps log2 finite for degenerate (zero-area) boxes
    level_assignments = torch.floor(canonical_level + torch.log2(box_sizes / canonical_box_size + 1e-8))
    level_assignments = torch.clamp(level_assignments, min=min_level, max=max_level)
    return level_assignments.to(torch.int64) - min_level


def _convert_boxes_to_pooler_format(boxes: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    sizes = sizes.to(device=boxes.device)
    indices = torch.repeat_interleave(torch.arange(len(sizes), dtype=boxes.dtype, device=boxes.device), sizes)
    return cat([indices[:, None], boxes], dim=1)


def convert_boxes_to_pooler_format(box_lists: list) -> torch.Tensor:
    """Concatenate per-image boxes into the (M, 1 + box_dim) format of ROIAlign & co.

    Column 0 is the index of the image in the batch; the rest is the box (4 values XYXY, or 5
    for rotated boxes).
    """
    boxes = torch.cat([x.tensor for x in box_lists], dim=0)
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        sizes = shapes_to_tensor([x.__len__() for x in box_lists])
        return _convert_boxes_to_pooler_format(boxes, sizes)
    # the image index of each box, made on the boxes' device from the Python counts: on a GPU, a
    # tensor of counts copied there and repeat_interleave's data-dependent size would each
    # synchronise with the host
    indices = [torch.full((len(x),), i, dtype=boxes.dtype, device=boxes.device) for i, x in enumerate(box_lists)]
    return cat([cat(indices)[:, None], boxes], dim=1)


def _boxes_per_level(level_assignments: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """For each level, the indices (ascending) of the boxes assigned to it.

    One host synchronisation for all levels (the per-level counts), where a ``nonzero`` per level
    makes one each on a GPU: a stable sort groups the boxes by level, keeping each level's boxes in
    ascending order, exactly the indices ``nonzero(level_assignments == level)`` gives.
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting() or level_assignments.device.type == "cpu":
        return [nonzero_tuple(level_assignments == level)[0] for level in range(num_levels)]
    levels = torch.arange(num_levels, device=level_assignments.device)
    counts = (level_assignments[None, :] == levels[:, None]).sum(dim=1).tolist()
    order = torch.sort(level_assignments, stable=True)[1]
    return list(torch.split(order, counts))


def _create_zeros(batch_target: torch.Tensor | None, channels: int, height: int, width: int, like_tensor):
    batches = batch_target.shape[0] if batch_target is not None else 0
    sizes = (batches, channels, height, width)
    return torch.zeros(sizes, dtype=like_tensor.dtype, device=like_tensor.device)


class ROIPooler(nn.Module):
    """Pools a (C, output_size, output_size) feature for every box, from the level of a feature
    pyramid that fits its size.

    Invariant: ``forward(x, box_lists)`` returns (total boxes, C, *output_size), rows in the order
    of the boxes (image by image); levels have strides 2**min_level .. 2**max_level.

        pooler = ROIPooler(7, scales=(1/4, 1/8, 1/16, 1/32), sampling_ratio=0, pooler_type="ROIAlignV2")
        feats = pooler([p2, p3, p4, p5], [proposals.proposal_boxes for proposals in batch])
        feats.shape     # (total boxes, 256, 7, 7)
    """

    def __init__(
        self,
        output_size,
        scales,
        sampling_ratio,
        pooler_type,
        canonical_box_size=224,
        canonical_level=4,
    ):
        """
        Args:
            output_size (int, tuple[int] or list[int]): output size of the pooled region,
                e.g., 14 x 14. If tuple or list is given, the length must be 2.
            scales: 1 / stride of each feature level, finest first (powers of 2).
            sampling_ratio: ROIAlign samples per bin (0 = adaptive).
            pooler_type: "ROIAlign", "ROIAlignV2" (aligned=True), "ROIPool" or "ROIAlignRotated".
            canonical_box_size, canonical_level: a box of this size (sqrt of area) is pooled from
                this level (224 and 4, as in the FPN paper: ImageNet-size boxes use res4).
        """
        super().__init__()

        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if not (
            len(output_size) == 2 and isinstance(output_size[0], int) and isinstance(output_size[1], int)
        ):
            raise ValueError(f"ROIPooler output_size must be an int or two ints, got {output_size!r}")
        self.output_size = output_size

        if pooler_type == "ROIAlign":
            self.level_poolers = nn.ModuleList(
                ROIAlign(output_size, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=False)
                for scale in scales
            )
        elif pooler_type == "ROIAlignV2":
            self.level_poolers = nn.ModuleList(
                ROIAlign(output_size, spatial_scale=scale, sampling_ratio=sampling_ratio, aligned=True)
                for scale in scales
            )
        elif pooler_type == "ROIPool":
            self.level_poolers = nn.ModuleList(
                _roi_pool(output_size, spatial_scale=scale) for scale in scales
            )
        elif pooler_type == "ROIAlignRotated":
            self.level_poolers = nn.ModuleList(
                ROIAlignRotated(output_size, spatial_scale=scale, sampling_ratio=sampling_ratio)
                for scale in scales
            )
        else:
            raise ValueError(
                f"Unknown pooler type: {pooler_type!r}; expected 'ROIAlign', 'ROIAlignV2', "
                "'ROIPool' or 'ROIAlignRotated'"
            )

        # scale = 1 / stride, and strides are powers of 2: the level is -log2(scale)
        min_level = -(math.log2(scales[0]))
        max_level = -(math.log2(scales[-1]))
        if not (math.isclose(min_level, int(min_level)) and math.isclose(max_level, int(max_level))):
            raise ValueError(f"Featuremap stride is not power of 2! scales={list(scales)}")
        self.min_level = int(min_level)
        self.max_level = int(max_level)
        if len(scales) != self.max_level - self.min_level + 1:
            raise ValueError(
                f"[ROIPooler] Sizes of input featuremaps do not form a pyramid! scales={list(scales)}"
            )
        if not 0 <= self.min_level <= self.max_level:
            raise ValueError(f"[ROIPooler] scales must be 1/stride, finest first; got {list(scales)}")
        self.canonical_level = canonical_level
        if canonical_box_size <= 0:
            raise ValueError(f"canonical_box_size must be > 0, got {canonical_box_size}")
        self.canonical_box_size = canonical_box_size

    def forward(self, x: list[torch.Tensor], box_lists: list) -> torch.Tensor:
        """
        Args:
            x: feature maps (N, C, H_l, W_l) of each level, finest first.
            box_lists: N Boxes (or RotatedBoxes), the boxes of each image.

        Returns:
            Tensor: (M, C, output_size[0], output_size[1]), M = total number of boxes.
        """
        num_level_assignments = len(self.level_poolers)

        if not isinstance(x, list) or not isinstance(box_lists, list):
            raise TypeError(
                "Arguments to pooler must be lists: x (list of Tensors) and box_lists (list of Boxes)"
            )
        if len(x) != num_level_assignments:
            raise ValueError(
                f"unequal value, num_level_assignments={num_level_assignments}, "
                f"but x is list of {len(x)} Tensors"
            )
        if len(box_lists) != x[0].size(0):
            raise ValueError(
                f"unequal value, x[0] batch dim 0 is {x[0].size(0)}, but box_list has length {len(box_lists)}"
            )
        if len(box_lists) == 0:
            return _create_zeros(None, x[0].shape[1], *self.output_size, x[0])

        pooler_fmt_boxes = convert_boxes_to_pooler_format(box_lists)

        if num_level_assignments == 1:
            return self.level_poolers[0](x[0], pooler_fmt_boxes)

        level_assignments = assign_boxes_to_levels(
            box_lists, self.min_level, self.max_level, self.canonical_box_size, self.canonical_level
        )

        num_channels = x[0].shape[1]
        output_size = self.output_size[0]

        output = _create_zeros(pooler_fmt_boxes, num_channels, output_size, output_size, x[0])

        for level, inds in enumerate(_boxes_per_level(level_assignments, len(self.level_poolers))):
            pooler_fmt_boxes_level = pooler_fmt_boxes[inds]
            # index_put_ rather than output[inds] = ...: the latter breaks under tracing
            output.index_put_((inds,), self.level_poolers[level](x[level], pooler_fmt_boxes_level))

        return output
