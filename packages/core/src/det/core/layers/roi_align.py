"""ROIAlign (axis-aligned), detectron2's module over the dispatched ``roi_align`` op."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.utils import _pair

from det.core.layers.ops import dispatch


def _check_roi_args(fn: str, input: torch.Tensor, rois: torch.Tensor, width: int, layout: str) -> None:
    if not isinstance(input, torch.Tensor) or input.dim() != 4:
        shape = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
        raise ValueError(f"{fn}: input must be an (N, C, H, W) tensor, got {shape}")
    if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != width:
        shape = tuple(rois.shape) if isinstance(rois, torch.Tensor) else type(rois).__name__
        raise ValueError(f"{fn}: rois must be an (R, {width}) tensor {layout}, got {shape}")


def roi_align(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """ROIAlign of (R, 5) ``rois`` [batch index, x0, y0, x1, y1] over ``input``: (R, C, h, w).

    Defaults are torchvision's (``aligned=False``); the :class:`ROIAlign` module defaults to aligned.
    """
    _check_roi_args("roi_align", input, rois, 5, "[batch index, x0, y0, x1, y1]")
    return dispatch("roi_align", input, rois)(
        input, rois, _pair(output_size), float(spatial_scale), int(sampling_ratio), bool(aligned)
    )


class ROIAlign(nn.Module):
    """Average of bilinear samples in each of ``output_size`` bins of every box; no parameters.

    ``rois`` are (R, 5): batch index, then x0, y0, x1, y1 in input-image coordinates, scaled by
    ``spatial_scale`` to the feature map::

        pool = ROIAlign((7, 7), spatial_scale=1 / 16, sampling_ratio=0)
        rois = torch.tensor([[0, 0.0, 0.0, 64.0, 64.0]])
        out = pool(features, rois)   # (1, C, 7, 7)

    ``aligned=True`` (the default, detectron2's; torchvision defaults to False) shifts the box by
    -0.5 pixel after scaling so that a pixel at index i is the sample at continuous coordinate
    i + 0.5; ``aligned=False`` is Detectron's legacy behaviour, which also clamps boxes to at least
    1x1. ``sampling_ratio`` samples per bin side, 0 for adaptive (ceil(box size / bins)).
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = True,
    ):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """input: (N, C, H, W) features; rois: (R, 5) [batch index, x0, y0, x1, y1]."""
        _check_roi_args("ROIAlign", input, rois, 5, "[batch index, x0, y0, x1, y1]")
        return roi_align(
            input,
            rois.to(dtype=input.dtype),
            self.output_size,
            self.spatial_scale,
            self.sampling_ratio,
            self.aligned,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned})"
        )


def _roi_align_reference(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    from torchvision.ops import roi_align as tv_roi_align

    return tv_roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned)


__all__ = ["ROIAlign", "roi_align"]
