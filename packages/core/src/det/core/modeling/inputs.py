"""Input checks shared by every meta-architecture (det-core's and the plugins').

A model's ``forward(batched_inputs)`` fails early with a ValueError naming what is wrong, instead
of a shape error deep inside torch; training without an EventStorage fails with a RuntimeError
saying how to provide one::

    check_batched_inputs(batched_inputs, self.pixel_mean.shape[0], ("instances",) if self.training else ())
    if self.training:
        storage = require_event_storage(type(self).__name__)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from det.core.events import EventStorage, get_event_storage
from det.core.layers import move_device_like
from det.core.machine import inference_choices
from det.structures import ImageList, Instances

__all__ = [
    "check_batched_inputs",
    "in_region_chunks",
    "inference_layout",
    "normalize_and_pad_images",
    "register_pixel_normalization",
    "require_event_storage",
]

_MISSING_KEY_HINTS = {
    "instances": "training needs the ground truth as an Instances with gt_boxes and gt_classes "
    "under 'instances'",
    "proposals": "without a proposal generator, precomputed proposals (an Instances with "
    "proposal_boxes and objectness_logits) must come with each input under 'proposals'",
}


def register_pixel_normalization(module: torch.nn.Module, pixel_mean: Sequence[float],
                                 pixel_std: Sequence[float]) -> None:
    """Give ``module`` the (C, 1, 1) buffers ``pixel_mean`` and ``pixel_std`` that
    :func:`normalize_and_pad_images` reads, as every detectron2 meta-architecture has them.

    Non-persistent: they come from the config, and detectron2 checkpoints do not store them.
    ValueError when the two differ in length.
    """
    module.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
    module.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
    if module.pixel_mean.shape != module.pixel_std.shape:
        raise ValueError(
            f"pixel_mean {tuple(pixel_mean)} and pixel_std {tuple(pixel_std)} have different shapes "
            f"(one value per input channel each)"
        )


def check_batched_inputs(batched_inputs: Any, num_channels: int, need: tuple[str, ...] = ()) -> None:
    """Raise a ValueError if ``batched_inputs`` is not a non-empty list of dicts whose "image" is
    a non-empty (num_channels, H, W) uint8/float tensor and which carry an Instances under every
    key of ``need`` (training passes ``("instances",)``).
    """
    if not isinstance(batched_inputs, (list, tuple)) or len(batched_inputs) == 0:
        raise ValueError(
            "The model expects a non-empty list of dicts, one per image, each with an 'image' "
            f"(C, H, W) tensor; got {type(batched_inputs).__name__}"
            + (" of length 0" if isinstance(batched_inputs, (list, tuple)) else "")
        )
    for i, x in enumerate(batched_inputs):
        if not isinstance(x, dict):
            raise ValueError(f"batched_inputs[{i}] must be a dict with key 'image', got {type(x).__name__}")
        if "image" not in x:
            raise ValueError(
                f"batched_inputs[{i}] has no 'image' key (keys: {sorted(x)}); expected a "
                f"({num_channels}, H, W) tensor under 'image'"
            )
        img = x["image"]
        if not isinstance(img, torch.Tensor):
            raise ValueError(
                f"batched_inputs[{i}]['image'] must be a torch.Tensor of shape ({num_channels}, H, W), "
                f"got {type(img).__name__}"
            )
        if img.dtype == torch.bool or img.is_complex():
            raise ValueError(
                f"batched_inputs[{i}]['image'] has dtype {img.dtype}; expected uint8 or a floating dtype"
            )
        if img.dim() != 3 or img.shape[0] != num_channels:
            raise ValueError(
                f"batched_inputs[{i}]['image'] has shape {tuple(img.shape)}; expected ({num_channels}, H, W) "
                "(channels first, as cfg.INPUT.FORMAT)"
            )
        if img.shape[1] == 0 or img.shape[2] == 0:
            raise ValueError(f"batched_inputs[{i}]['image'] is empty: shape {tuple(img.shape)}")
        for key in need:
            if key not in x:
                raise ValueError(
                    f"batched_inputs[{i}] has no {key!r} key (keys: {sorted(x)}); "
                    + _MISSING_KEY_HINTS.get(key, f"the model needs {key!r} here")
                )
            if not isinstance(x[key], Instances):
                raise ValueError(
                    f"batched_inputs[{i}][{key!r}] must be an Instances, got {type(x[key]).__name__}"
                )


def require_event_storage(model_name: str) -> EventStorage:
    """The current EventStorage; a RuntimeError naming ``model_name`` and the fix if there is none."""
    try:
        return get_event_storage()
    except RuntimeError:
        raise RuntimeError(
            f"{model_name} in training mode records statistics in an EventStorage: run it inside "
            "`with EventStorage(start_iter):` (from det.core import EventStorage), "
            "or call model.eval() for inference."
        ) from None


def normalize_and_pad_images(
    batched_inputs: Sequence[dict[str, Any]],
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    backbone: Any,
) -> ImageList:
    """Each input's "image" moved to ``pixel_mean``'s device, normalised and padded into one
    ImageList as ``backbone`` needs (its ``size_divisibility`` and ``padding_constraints``).

    In eval mode on the CPU the batch is channels_last (see :func:`inference_layout`)."""
    images = [(move_device_like(x["image"], pixel_mean) - pixel_mean) / pixel_std for x in batched_inputs]
    image_list = ImageList.from_tensors(
        images, backbone.size_divisibility, padding_constraints=backbone.padding_constraints
    )
    if not getattr(backbone, "training", True):
        image_list.tensor = inference_layout(image_list.tensor)
    return image_list


def inference_layout(batch: torch.Tensor) -> torch.Tensor:
    """``batch`` (N, C, H, W) in the memory layout inference should run in: channels_last on the CPU.

    oneDNN convolves NHWC directly, while for NCHW it reorders input and output around every
    convolution: a 256->256 3x3 layer at stride 4 runs at 376 GFLOP/s in NCHW and 471-513 in
    NHWC on the bench machine, and the whole model went from 2.14 to 1.69 s (bench/README.md).
    Convolutions, norms and pooling keep the layout, so setting it on the input batch is enough.
    Training keeps NCHW: its losses stay bit-identical to detectron2's (the golden train.pt test),
    which a different accumulation order would not give; inference moves by float rounding only.
    Where the machine's choice says NCHW (:func:`det.core.machine.inference_choices`) the batch is
    returned as it is.
    """
    if batch.device.type == "cpu" and batch.dim() == 4 and inference_choices().channels_last:
        return batch.contiguous(memory_format=torch.channels_last)
    return batch


REGIONS_PER_CHUNK = 25
"""Regions a per-region head (mask, keypoint) computes at once at inference."""


def in_region_chunks(layers: Any, regions: torch.Tensor, per_chunk: int = REGIONS_PER_CHUNK) -> torch.Tensor:
    """``layers(regions)`` computed ``per_chunk`` regions at a time and concatenated.

    Per-region heads are independent across regions, so the result is the same (bit for bit on the
    bench machine), but only one chunk's activations are alive at a time: the mask head's upsampled
    (100, 256, 28, 28) map alone is 80 MB at 100 detections. On the bench model chunks of 25 cost no
    time (bench/README.md).
    """
    if regions.shape[0] <= per_chunk:
        return layers(regions)
    return torch.cat([layers(chunk) for chunk in regions.split(per_chunk)])
