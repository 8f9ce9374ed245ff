"""Anchor generators: the reference boxes that RPN and RetinaNet classify and regress."""

from __future__ import annotations

import collections.abc
import math

import torch
from torch import nn

from det.core.config import configurable
from det.core.layers import ShapeSpec, move_device_like
from det.core.registry import ANCHOR_GENERATOR_REGISTRY  # detectron2 defines it in this module
from det.structures import Boxes, RotatedBoxes

__all__ = [
    "ANCHOR_GENERATOR_REGISTRY",
    "DefaultAnchorGenerator",
    "RotatedAnchorGenerator",
    "build_anchor_generator",
]


class BufferList(nn.Module):
    """A list of tensors registered as non-persistent buffers "0", "1", ...

    They follow the module across ``.to(device)`` but are not saved in checkpoints (anchors are
    recomputed from the config, so detectron2 checkpoints have no entry for them)::

        cell_anchors = BufferList([torch.zeros(3, 4), torch.zeros(3, 4)])
        [a.shape for a in cell_anchors.to("cuda")]   # two (3, 4) tensors on the GPU
    """

    def __init__(self, buffers):
        super().__init__()
        for i, buffer in enumerate(buffers):
            self.register_buffer(str(i), buffer, persistent=False)

    def __len__(self):
        return len(self._buffers)

    def __iter__(self):
        return iter(self._buffers.values())


def _create_grid_offsets(size: list[int], stride: int, offset: float, target_device_tensor: torch.Tensor):
    grid_height, grid_width = size
    # Made where they are used (on a GPU, a CPU arange moved there is a blocking copy per level),
    # except under tracing: made on the CPU and moved, so a trace records no device constant.
    device = None if torch.jit.is_tracing() else target_device_tensor.device
    shifts_x = move_device_like(
        torch.arange(offset * stride, grid_width * stride, step=stride, dtype=torch.float32, device=device),
        target_device_tensor,
    )
    shifts_y = move_device_like(
        torch.arange(offset * stride, grid_height * stride, step=stride, dtype=torch.float32, device=device),
        target_device_tensor,
    )
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    return shift_x.reshape(-1), shift_y.reshape(-1)


def _broadcast_params(params, num_features: int, name: str):
    """Turn ``sizes``/``aspect_ratios``/``angles`` into one list per feature level.

    A flat list is shared by every level; a list of one list too; otherwise there must be one
    list per level.
    """
    if not isinstance(params, collections.abc.Sequence) or isinstance(params, str):
        raise TypeError(f"{name} in anchor generator has to be a list! Got {params!r}.")
    if not len(params):
        raise ValueError(f"{name} in anchor generator cannot be empty!")
    if not isinstance(params[0], collections.abc.Sequence):
        return [params] * num_features
    if len(params) == 1:
        return list(params) * num_features
    if len(params) != num_features:
        raise ValueError(
            f"Got {name} of length {len(params)} in anchor generator, "
            f"but the number of input features is {num_features}!"
        )
    return params


class _AnchorGeneratorBase(nn.Module):
    """What DefaultAnchorGenerator and RotatedAnchorGenerator share: per-level parameters, the
    anchor counts and ``forward`` (their cell anchors and box types differ)."""

    _box_type: type

    def _init_levels(self, strides, offset: float, **per_level):
        """Set ``strides``, ``num_features`` and ``offset``; return each ``per_level`` parameter
        broadcast to one list per level (in the order given)."""
        self.strides = strides
        self.num_features = len(self.strides)
        self.offset = offset
        if not 0.0 <= self.offset < 1.0:
            raise ValueError(f"anchor generator offset must be in [0, 1), got {self.offset}")
        return [_broadcast_params(v, self.num_features, name) for name, v in per_level.items()]

    @staticmethod
    def _config(cfg, input_shape: list[ShapeSpec]) -> dict:
        return {
            "sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "aspect_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS,
            "strides": [x.stride for x in input_shape],
            "offset": cfg.MODEL.ANCHOR_GENERATOR.OFFSET,
        }

    @staticmethod
    def _widths_heights(sizes, aspect_ratios):
        """(w, h) of each size and ratio a = h / w, keeping the area s*s: w = sqrt(s*s / a), h = a*w."""
        for size in sizes:
            area = size**2.0
            for aspect_ratio in aspect_ratios:
                w = math.sqrt(area / aspect_ratio)
                yield w, aspect_ratio * w

    @property
    def num_cell_anchors(self):
        """Alias of :attr:`num_anchors`."""
        return self.num_anchors

    @property
    def num_anchors(self) -> list[int]:
        """Anchors per spatial position, for each feature level (e.g. [3, 3, 3, 3, 3] for FPN)."""
        return [len(cell_anchors) for cell_anchors in self.cell_anchors]

    def forward(self, features: list[torch.Tensor]):
        """
        Args:
            features: the feature maps (N, C, H_i, W_i) of each level, in ``strides`` order.

        Returns:
            list[Boxes] (RotatedBoxes for RotatedAnchorGenerator): per level, the
            (H_i * W_i * A_i, 4 or 5) anchors.
        """
        if len(features) != self.num_features:
            raise ValueError(
                f"anchor generator was built for {self.num_features} feature levels, got {len(features)}"
            )
        grid_sizes = [feature_map.shape[-2:] for feature_map in features]
        anchors_over_all_feature_maps = self._grid_anchors(grid_sizes)
        return [self._box_type(x) for x in anchors_over_all_feature_maps]


class DefaultAnchorGenerator(_AnchorGeneratorBase):
    """Anchors of every size and aspect ratio, centred on every cell of each feature map.

    Invariant: ``forward(features)[i]`` holds H_i*W_i*A_i boxes ordered (y, x, anchor) with
    anchor ``a`` of cell (y, x) equal to ``cell_anchors[i][a]`` shifted by
    ((x + offset) * stride_i, (y + offset) * stride_i).

        gen = DefaultAnchorGenerator(sizes=[[32]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[16])
        anchors = gen([torch.zeros(1, 8, 5, 7)])     # [Boxes of 5*7*3 anchors]
        gen.num_anchors                              # [3]
    """

    box_dim: int = 4
    """the dimension of each anchor box."""

    _box_type = Boxes

    @configurable
    def __init__(self, *, sizes, aspect_ratios, strides, offset: float = 0.5):
        """
        Args:
            sizes: per level, anchor sizes (sqrt of area) in input pixels; a flat list is shared
                by every level.
            aspect_ratios: per level, height / width ratios; broadcast like ``sizes``.
            strides: the stride of each feature level.
            offset: where anchor centres sit in a cell, in [0, 1): 0 = top-left corner,
                0.5 = centre.
        """
        super().__init__()
        sizes, aspect_ratios = self._init_levels(strides, offset, sizes=sizes, aspect_ratios=aspect_ratios)
        self.cell_anchors = self._calculate_anchors(sizes, aspect_ratios)

    @classmethod
    def from_config(cls, cfg, input_shape: list[ShapeSpec]):
        return cls._config(cfg, input_shape)

    def _calculate_anchors(self, sizes, aspect_ratios):
        cell_anchors = [self.generate_cell_anchors(s, a).float() for s, a in zip(sizes, aspect_ratios)]
        return BufferList(cell_anchors)

    def _grid_anchors(self, grid_sizes: list[list[int]]):
        anchors = []
        buffers: list[torch.Tensor] = [x[1] for x in self.cell_anchors.named_buffers()]
        for size, stride, base_anchors in zip(grid_sizes, self.strides, buffers):
            shift_x, shift_y = _create_grid_offsets(size, stride, self.offset, base_anchors)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            anchors.append((shifts.view(-1, 1, 4) + base_anchors.view(1, -1, 4)).reshape(-1, 4))
        return anchors

    def generate_cell_anchors(self, sizes=(32, 64, 128, 256, 512), aspect_ratios=(0.5, 1, 2)):
        """The (len(sizes) * len(aspect_ratios), 4) XYXY anchors of one cell, centred on (0, 0).

        For size s and ratio a = h / w, the anchor keeps area s*s: w = sqrt(s*s / a), h = a*w.
        """
        anchors = [[-w / 2.0, -h / 2.0, w / 2.0, h / 2.0] for w, h in self._widths_heights(sizes, aspect_ratios)]
        return torch.tensor(anchors)


class RotatedAnchorGenerator(_AnchorGeneratorBase):
    """Rotated anchors (cx, cy, w, h, angle) of every size, aspect ratio and angle on each cell.

    Invariant: ``forward(features)[i]`` holds H_i*W_i*A_i boxes, ``cell_anchors[i][a]`` moved to
    ((x + offset) * stride_i, (y + offset) * stride_i); A_i = sizes * ratios * angles.

        gen = RotatedAnchorGenerator(sizes=[[32]], aspect_ratios=[[1.0]], strides=[16], angles=[[0, 90]])
        anchors = gen([torch.zeros(1, 8, 5, 7)])     # [RotatedBoxes of 5*7*2 anchors]
        gen.num_anchors                              # [2]
    """

    box_dim: int = 5
    """the dimension of each anchor box."""

    _box_type = RotatedBoxes

    @configurable
    def __init__(self, *, sizes, aspect_ratios, strides, angles, offset: float = 0.5):
        """
        Args:
            sizes, aspect_ratios, strides, offset: as in :class:`DefaultAnchorGenerator`.
            angles: per level, anchor angles in degrees; broadcast like ``sizes``.
        """
        super().__init__()
        sizes, aspect_ratios, angles = self._init_levels(
            strides, offset, sizes=sizes, aspect_ratios=aspect_ratios, angles=angles
        )
        self.cell_anchors = self._calculate_anchors(sizes, aspect_ratios, angles)

    @classmethod
    def from_config(cls, cfg, input_shape: list[ShapeSpec]):
        return {**cls._config(cfg, input_shape), "angles": cfg.MODEL.ANCHOR_GENERATOR.ANGLES}

    def _calculate_anchors(self, sizes, aspect_ratios, angles):
        cell_anchors = [
            self.generate_cell_anchors(size, aspect_ratio, angle).float()
            for size, aspect_ratio, angle in zip(sizes, aspect_ratios, angles)
        ]
        return BufferList(cell_anchors)

    def _grid_anchors(self, grid_sizes):
        anchors = []
        for size, stride, base_anchors in zip(grid_sizes, self.strides, self.cell_anchors):
            shift_x, shift_y = _create_grid_offsets(size, stride, self.offset, base_anchors)
            zeros = torch.zeros_like(shift_x)
            shifts = torch.stack((shift_x, shift_y, zeros, zeros, zeros), dim=1)
            anchors.append((shifts.view(-1, 1, 5) + base_anchors.view(1, -1, 5)).reshape(-1, 5))
        return anchors

    def generate_cell_anchors(
        self,
        sizes=(32, 64, 128, 256, 512),
        aspect_ratios=(0.5, 1, 2),
        angles=(-90, -60, -30, 0, 30, 60, 90),
    ):
        """The (len(sizes) * len(aspect_ratios) * len(angles), 5) anchors of one cell at (0, 0)."""
        anchors = [[0, 0, w, h, a] for w, h in self._widths_heights(sizes, aspect_ratios) for a in angles]
        return torch.tensor(anchors)


def build_anchor_generator(cfg, input_shape):
    """Build the anchor generator named by ``cfg.MODEL.ANCHOR_GENERATOR.NAME``.

    Returns:
        nn.Module: e.g. :class:`DefaultAnchorGenerator`, called with the feature maps it returns
        one Boxes (or RotatedBoxes) of anchors per level.
    """
    from det.core.registry import get_component

    anchor_generator = cfg.MODEL.ANCHOR_GENERATOR.NAME
    return get_component("ANCHOR_GENERATOR", anchor_generator)(cfg, input_shape)
