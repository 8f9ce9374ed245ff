"""Mask R-CNN mask heads: per-region mask logits, their training loss and their inference.

The heads are found by name through det's registry (``ROI_MASK_HEAD``); ``StandardROIHeads`` and
``Res5ROIHeads`` call them as detectron2 does: ``mask_head(features, instances)`` returns
``{"loss_mask": ...}`` in training and the instances with ``pred_masks`` at inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.layers import Conv2d, ConvTranspose2d, ShapeSpec, cat, get_norm, weight_init
from det.core.modeling.inputs import in_region_chunks, inference_layout
from det.core.registry import ROI_MASK_HEAD_REGISTRY  # detectron2 defines it in this module
from det.heads.roi.roi_heads import build_mask_head
from det.structures import Instances

__all__ = [
    "ROI_MASK_HEAD_REGISTRY",
    "BaseMaskRCNNHead",
    "MaskRCNNConvUpsampleHead",
    "build_mask_head",
    "mask_rcnn_inference",
    "mask_rcnn_loss",
]


def _check_mask_logits(pred_mask_logits: torch.Tensor, where: str) -> None:
    if not isinstance(pred_mask_logits, torch.Tensor) or pred_mask_logits.dim() != 4:
        shape = tuple(pred_mask_logits.shape) if isinstance(pred_mask_logits, torch.Tensor) else type(pred_mask_logits).__name__
        raise ValueError(f"{where}: pred_mask_logits must be a (B, C, M, M) tensor, got {shape}")
    if pred_mask_logits.size(2) != pred_mask_logits.size(3):
        raise ValueError(f"{where}: mask predictions must be square, got {tuple(pred_mask_logits.shape)}")


def _check_instances(instances: list[Instances], where: str) -> None:
    if not isinstance(instances, (list, tuple)) or not all(isinstance(i, Instances) for i in instances):
        raise TypeError(f"{where}: instances must be a list of Instances (one per image), got {type(instances).__name__}")


@torch.jit.unused
def mask_rcnn_loss(pred_mask_logits: torch.Tensor, instances: list[Instances], vis_period: int = 0) -> torch.Tensor:
    """The Mask R-CNN mask loss: mean per-pixel binary cross-entropy against the ground-truth mask
    cropped to each region and resized to the prediction's resolution.

    Args:
        pred_mask_logits: (B, C, M, M) logits, C = number of classes (or 1, class-agnostic); B is
            the number of foreground regions over all images.
        instances: per image, the foreground regions in the same order, with ``proposal_boxes``,
            ``gt_masks`` (``PolygonMasks`` or ``BitMasks``) and, class-specific, ``gt_classes``.
        vis_period: every ``vis_period`` iterations, put prediction|target images into the
            EventStorage (0: never).

    Returns:
        the scalar loss. Puts ``mask_rcnn/accuracy``, ``mask_rcnn/false_positive`` and
        ``mask_rcnn/false_negative`` (at logit 0) into the EventStorage.
    """
    _check_mask_logits(pred_mask_logits, "mask_rcnn_loss")
    _check_instances(instances, "mask_rcnn_loss")
    cls_agnostic_mask = pred_mask_logits.size(1) == 1
    total_num_masks = pred_mask_logits.size(0)
    mask_side_len = pred_mask_logits.size(2)
    num_instances = sum(len(x) for x in instances)
    if num_instances != total_num_masks:
        raise ValueError(
            f"mask_rcnn_loss: got {total_num_masks} mask predictions for {num_instances} regions; "
            "need one prediction per region of `instances`"
        )

    gt_classes_per_image_list: list[torch.Tensor] = []
    gt_masks_per_image_list: list[torch.Tensor] = []
    for instances_per_image in instances:
        if len(instances_per_image) == 0:
            continue
        if not instances_per_image.has("gt_masks"):
            raise ValueError(
                "mask_rcnn_loss: training regions have no 'gt_masks'; give the ground-truth "
                "Instances a gt_masks field (PolygonMasks or BitMasks)"
            )
        if not cls_agnostic_mask:
            gt_classes_per_image_list.append(instances_per_image.gt_classes.to(dtype=torch.int64))
        # Targets are the gt masks seen through each region's box, at the head's resolution.
        gt_masks_per_image = instances_per_image.gt_masks.crop_and_resize(
            instances_per_image.proposal_boxes.tensor, mask_side_len
        ).to(device=pred_mask_logits.device)
        gt_masks_per_image_list.append(gt_masks_per_image)

    if len(gt_masks_per_image_list) == 0:
        # no foreground: a zero that keeps every parameter in the graph (DDP needs that)
        return pred_mask_logits.sum() * 0

    gt_masks = cat(gt_masks_per_image_list, dim=0)

    if cls_agnostic_mask:
        pred_mask_logits = pred_mask_logits[:, 0]
    else:
        indices = torch.arange(total_num_masks, device=pred_mask_logits.device)
        gt_classes = cat(gt_classes_per_image_list, dim=0)
        pred_mask_logits = pred_mask_logits[indices, gt_classes]

    # crop_and_resize may give float masks (other mask types): 0.5 is the inside/outside line
    gt_masks_bool: torch.Tensor = gt_masks if gt_masks.dtype == torch.bool else gt_masks > 0.5
    gt_masks = gt_masks.to(dtype=torch.float32)

    mask_incorrect: torch.Tensor = (pred_mask_logits > 0.0) != gt_masks_bool
    # the four counts read in one transfer (one host synchronisation on a GPU, not four)
    num_incorrect, num_positive, num_false_positive, num_false_negative = torch.stack([
        mask_incorrect.sum(), gt_masks_bool.sum(), (mask_incorrect & ~gt_masks_bool).sum(),
        (mask_incorrect & gt_masks_bool).sum(),
    ]).tolist()
    mask_accuracy = 1 - (num_incorrect / max(mask_incorrect.numel(), 1.0))
    false_positive = num_false_positive / max(gt_masks_bool.numel() - num_positive, 1.0)
    false_negative = num_false_negative / max(num_positive, 1.0)

    storage = get_event_storage()
    storage.put_scalar("mask_rcnn/accuracy", mask_accuracy)
    storage.put_scalar("mask_rcnn/false_positive", false_positive)
    storage.put_scalar("mask_rcnn/false_negative", false_negative)
    if vis_period > 0 and storage.iter % vis_period == 0:
        pred_masks = pred_mask_logits.sigmoid()
        vis_masks = torch.cat([pred_masks, gt_masks], dim=2)
        name = "Left: mask prediction;   Right: mask GT"
        for idx, vis_mask in enumerate(vis_masks):
            vis_mask = torch.stack([vis_mask] * 3, dim=0)
            storage.put_image(name + f" ({idx})", vis_mask)

    return F.binary_cross_entropy_with_logits(pred_mask_logits, gt_masks, reduction="mean")


def mask_rcnn_inference(pred_mask_logits: torch.Tensor, pred_instances: list[Instances]) -> None:
    """Turn mask logits into probabilities of each detection's predicted class.

    Args:
        pred_mask_logits: (B, C, M, M) logits (C = 1 when class-agnostic); B is the number of
            detections over all images.
        pred_instances: per image, the detections in the same order, with ``pred_classes``.

    Sets ``pred_masks`` on each ``Instances``: (N, 1, M, M) soft masks in [0, 1], still in box
    coordinates. Pasting into the image and thresholding is left to the caller
    (``detector_postprocess``, ``paste_masks_in_image``).
    """
    _check_mask_logits(pred_mask_logits, "mask_rcnn_inference")
    _check_instances(pred_instances, "mask_rcnn_inference")
    num_boxes_per_image = [len(i) for i in pred_instances]
    if sum(num_boxes_per_image) != pred_mask_logits.size(0):
        raise ValueError(
            f"mask_rcnn_inference: got {pred_mask_logits.size(0)} mask predictions for "
            f"{sum(num_boxes_per_image)} detections; need one prediction per detection"
        )
    cls_agnostic_mask = pred_mask_logits.size(1) == 1

    if cls_agnostic_mask:
        mask_probs_pred = pred_mask_logits.sigmoid()
    else:
        if not all(i.has("pred_classes") for i in pred_instances):
            raise ValueError("mask_rcnn_inference: class-specific masks need 'pred_classes' on every Instances")
        num_masks = pred_mask_logits.shape[0]
        class_pred = cat([i.pred_classes for i in pred_instances])
        indices = torch.arange(num_masks, device=class_pred.device)
        mask_probs_pred = pred_mask_logits[indices, class_pred][:, None].sigmoid()

    for prob, instances in zip(torch.split(mask_probs_pred, num_boxes_per_image, dim=0), pred_instances):
        instances.pred_masks = prob  # (N, 1, M, M)


class BaseMaskRCNNHead(nn.Module):
    """The losses and inference of a Mask R-CNN mask head; subclasses supply ``layers``.

    Invariant: ``layers(x)`` maps region features to (B, C, M, M) mask logits, one per region of
    ``instances``; ``forward`` adds the loss (training) or ``pred_masks`` (inference)::

        class MyHead(BaseMaskRCNNHead):
            def layers(self, x): return self.predictor(x)
        losses = head(region_features, fg_proposals)   # {"loss_mask": ...}, inside an EventStorage
    """

    @configurable
    def __init__(self, *, loss_weight: float = 1.0, vis_period: int = 0):
        """
        Args:
            loss_weight: multiplier of the mask loss.
            vis_period: period (in iterations) of the prediction/target visualisation; 0 = never.
        """
        super().__init__()
        self.vis_period = vis_period
        self.loss_weight = loss_weight

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        return {"vis_period": cfg.VIS_PERIOD}

    def forward(self, x: Any, instances: list[Instances]) -> dict[str, torch.Tensor] | list[Instances]:
        """
        Args:
            x: region features from the ROI heads (pooled tensor, or whatever the pooler gives).
            instances: per image, the regions of ``x``: foreground proposals with ``gt_*``
                fields in training, detections with ``pred_classes`` at inference.

        Returns:
            ``{"loss_mask": loss}`` in training; at inference, ``instances`` with ``pred_masks``.
        """
        x = self.layers(x) if self.training else in_region_chunks(self.layers, inference_layout(x))
        if self.training:
            return {"loss_mask": mask_rcnn_loss(x, instances, self.vis_period) * self.loss_weight}
        mask_rcnn_inference(x, instances)
        return instances

    def layers(self, x: Any) -> torch.Tensor:
        """The network: region features -> (B, C, M, M) mask logits."""
        raise NotImplementedError


# An nn.Sequential, so that the layers run in the order they were added (see ``layers``).
class MaskRCNNConvUpsampleHead(BaseMaskRCNNHead, nn.Sequential):  # type: ignore[misc]
    """``len(conv_dims) - 1`` 3x3 convs (+ norm + ReLU), a 2x ``ConvTranspose2d`` upsampling (+ ReLU)
    and a 1x1 conv predicting one mask per class: detectron2's standard mask head.

    Invariant: the output is (B, num_classes, 2H, 2W) for (B, C, H, W) input; parameters are named
    ``mask_fcn1..k``, ``deconv`` and ``predictor`` as in detectron2's checkpoints::

        head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=16, height=14, width=14),
                                        num_classes=80, conv_dims=[32, 32, 32, 32, 32])
        head.layers(torch.rand(3, 16, 14, 14)).shape   # (3, 80, 28, 28)
    """

    # final layers: they stay float32 under fast mode's bfloat16 (det.core.fast's protocol)
    float32_layers = ("predictor",)

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, num_classes: int, conv_dims: Sequence[int],
                 conv_norm: str | Callable[[int], nn.Module] = "", **kwargs: Any) -> None:
        """
        Args:
            input_shape: shape of the region features (channels are used).
            num_classes: number of mask classes; 1 for class-agnostic masks.
            conv_dims: N > 0 widths: N - 1 conv layers, then the upsampling layer.
            conv_norm: normalisation after each conv (a ``get_norm`` name or callable).
            kwargs: passed to :class:`BaseMaskRCNNHead` (``loss_weight``, ``vis_period``).
        """
        super().__init__(**kwargs)
        if not isinstance(input_shape, ShapeSpec) or not input_shape.channels:
            raise ValueError(f"MaskRCNNConvUpsampleHead: input_shape must be a ShapeSpec with channels, got {input_shape!r}")
        if len(conv_dims) < 1:
            raise ValueError("MaskRCNNConvUpsampleHead: conv_dims must be non-empty (its last entry is the upsampling width)")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"MaskRCNNConvUpsampleHead: num_classes must be a positive int, got {num_classes!r}")

        self.conv_norm_relus = []
        cur_channels = input_shape.channels
        for k, conv_dim in enumerate(conv_dims[:-1]):
            conv = Conv2d(cur_channels, conv_dim, kernel_size=3, stride=1, padding=1, bias=not conv_norm,
                          norm=get_norm(conv_norm, conv_dim), activation=nn.ReLU())
            self.add_module(f"mask_fcn{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            cur_channels = conv_dim

        self.deconv = ConvTranspose2d(cur_channels, conv_dims[-1], kernel_size=2, stride=2, padding=0)
        self.add_module("deconv_relu", nn.ReLU())
        cur_channels = conv_dims[-1]

        self.predictor = Conv2d(cur_channels, num_classes, kernel_size=1, stride=1, padding=0)

        for layer in [*self.conv_norm_relus, self.deconv]:
            weight_init.c2_msra_fill(layer)
        # small initial logits: every mask starts near probability 0.5
        nn.init.normal_(self.predictor.weight, std=0.001)
        if self.predictor.bias is not None:
            nn.init.constant_(self.predictor.bias, 0)

    def class_dependent_parameters(self) -> list[str]:
        """The predictor: one mask channel per class (see
        :func:`det.checkpoint.class_dependent_parameter_names`)."""
        return ["predictor.weight", "predictor.bias"]

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        ret = super().from_config(cfg, input_shape)
        conv_dim = cfg.MODEL.ROI_MASK_HEAD.CONV_DIM
        num_conv = cfg.MODEL.ROI_MASK_HEAD.NUM_CONV
        ret.update(
            conv_dims=[conv_dim] * (num_conv + 1),  # the last one is the ConvTranspose
            conv_norm=cfg.MODEL.ROI_MASK_HEAD.NORM,
            input_shape=input_shape,
        )
        ret["num_classes"] = 1 if cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES
        return ret

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return x
