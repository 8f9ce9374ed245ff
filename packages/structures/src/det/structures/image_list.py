"""`ImageList`: images of different sizes padded into one batch tensor, remembering each size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["ImageList"]


class ImageList:
    """A batch of images of possibly different sizes, padded to one (N, ..., H, W) tensor.

    Invariant: ``image_sizes[i]`` is the (height, width) of image i before padding, and
    ``tensor[i, ..., :h, :w]`` holds it; the rest is padding::

        images = ImageList.from_tensors([torch.rand(3, 20, 30), torch.rand(3, 25, 10)], 32)
        images.tensor.shape       # (2, 3, 32, 32)
        images[1].shape           # (3, 25, 10)

    Attributes:
        tensor (Tensor): the padded batch.
        image_sizes (list[tuple[int, int]]): each image's (h, w).
    """

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]) -> None:
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> torch.Tensor:
        """The image at ``idx`` without its padding (a view of ``tensor``)."""
        size = self.image_sizes[idx]
        return self.tensor[idx, ..., : size[0], : size[1]]

    def to(self, *args: Any, **kwargs: Any) -> ImageList:
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @staticmethod
    def from_tensors(
        tensors: Sequence[torch.Tensor],
        size_divisibility: int = 0,
        pad_value: float = 0.0,
        padding_constraints: dict[str, int] | None = None,
    ) -> ImageList:
        """Pad a list of (..., H_i, W_i) tensors with ``pad_value`` to a common size and stack them.

        The common size is the largest H and W, made square of side ``square_size`` when
        ``padding_constraints`` has a positive one, then rounded up to a multiple of
        ``size_divisibility`` (``padding_constraints["size_divisibility"]`` overrides the argument).
        All tensors must agree in every dimension but the last two.
        """
        if not isinstance(tensors, (list, tuple)):
            raise TypeError(
                f"ImageList.from_tensors expects a list or tuple of tensors, got {type(tensors).__name__}"
            )
        if len(tensors) == 0:
            raise ValueError("ImageList.from_tensors expects at least one tensor, got an empty list")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(
                    f"ImageList.from_tensors: item {i} is a {type(t).__name__}, expected a torch.Tensor"
                )
            if t.dim() < 2:
                raise ValueError(
                    f"ImageList.from_tensors: item {i} has shape {tuple(t.shape)}, expected (..., H, W)"
                )
            if t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(
                    f"ImageList.from_tensors: item {i} has shape {tuple(t.shape)} but item 0 has "
                    f"{tuple(tensors[0].shape)}; all dimensions except the last two must match"
                )

        image_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in tensors]
        max_h = max(h for h, _ in image_sizes)
        max_w = max(w for _, w in image_sizes)

        if padding_constraints is not None:
            square_size = padding_constraints.get("square_size", 0)
            if square_size > 0:
                if square_size < max(max_h, max_w):
                    raise ValueError(
                        f"ImageList.from_tensors: square_size={square_size} is smaller than the largest "
                        f"image ({max_h}x{max_w})"
                    )
                max_h = max_w = square_size
            if "size_divisibility" in padding_constraints:
                size_divisibility = padding_constraints["size_divisibility"]
        if size_divisibility > 1:
            stride = size_divisibility
            max_h = (max_h + stride - 1) // stride * stride
            max_w = (max_w + stride - 1) // stride * stride

        if len(tensors) == 1:
            # F.pad of the single image is measurably faster than filling a new batch.
            h, w = image_sizes[0]
            padding = [0, max_w - w, 0, max_h - h]
            batched = F.pad(tensors[0], padding, value=pad_value).unsqueeze_(0)
        else:
            batch_shape = [len(tensors), *tensors[0].shape[:-2], max_h, max_w]
            batched = tensors[0].new_full(batch_shape, pad_value)
            for i, img in enumerate(tensors):
                batched[i, ..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batched.contiguous(), image_sizes)
