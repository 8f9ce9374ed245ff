"""Rescaling of model outputs from the network's input resolution to the requested one."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from det.core.layers import paste_masks_in_image
from det.structures import BitMasks, Instances, ROIMasks

__all__ = ["detector_postprocess", "sem_seg_postprocess"]


def detector_postprocess(
    results: Instances, output_height: int, output_width: int, mask_threshold: float = 0.5
) -> Instances:
    """Rescale detections from the resized input to ``(output_height, output_width)``.

    Boxes (``pred_boxes``, or ``proposal_boxes`` for proposals) are scaled and clipped, instances
    whose box became empty are dropped, ``pred_masks`` (N, 1, M, M) or ROIMasks are pasted into
    (N, output_height, output_width) bool masks at ``mask_threshold``, keypoints are scaled.

    Returns:
        Instances: a new object of image_size (output_height, output_width).
    """
    if isinstance(output_width, torch.Tensor):
        # traced models: keep the size a tensor so it follows the inputs
        output_width_tmp = output_width.float()
        output_height_tmp = output_height.float()
        new_size = torch.stack([output_height, output_width])
    else:
        new_size = (output_height, output_width)
        output_width_tmp = output_width
        output_height_tmp = output_height

    scale_x, scale_y = (
        output_width_tmp / results.image_size[1],
        output_height_tmp / results.image_size[0],
    )
    results = Instances(new_size, **results.get_fields())

    if results.has("pred_boxes"):
        output_boxes = results.pred_boxes
    elif results.has("proposal_boxes"):
        output_boxes = results.proposal_boxes
    else:
        output_boxes = None
    if output_boxes is None:
        raise ValueError(
            "detector_postprocess: predictions must contain boxes (pred_boxes or proposal_boxes)!"
        )

    output_boxes.scale(scale_x, scale_y)
    output_boxes.clip(results.image_size)

    results = results[output_boxes.nonempty()]

    if results.has("pred_masks"):
        if isinstance(results.pred_masks, ROIMasks):
            roi_masks = results.pred_masks
        else:
            # (N, 1, M, M) mask probabilities, one per box
            roi_masks = ROIMasks(results.pred_masks[:, 0, :, :])
        # Through the op table, so a paste kernel of a plugin (det-ops-cuda) serves the model too.
        pasted = paste_masks_in_image(
            roi_masks.tensor, results.pred_boxes, (output_height, output_width), mask_threshold
        )
        results.pred_masks = BitMasks(pasted).tensor  # bool, even for no instances (paste gives uint8)

    if results.has("pred_keypoints"):
        results.pred_keypoints[:, :, 0] *= scale_x
        results.pred_keypoints[:, :, 1] *= scale_y

    return results


def sem_seg_postprocess(
    result: torch.Tensor, img_size: tuple[int, int], output_height: int, output_width: int
):
    """Crop the padding off semantic segmentation logits and resize them to the output size.

    Args:
        result: (C, H, W) logits of the padded batch entry.
        img_size: (h, w) of the image before padding.

    Returns:
        Tensor: (C, output_height, output_width) logits (bilinear, align_corners=False).
    """
    result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    result = F.interpolate(result, size=(output_height, output_width), mode="bilinear", align_corners=False)[
        0
    ]
    return result
