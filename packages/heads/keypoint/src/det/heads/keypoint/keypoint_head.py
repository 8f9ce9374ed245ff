"""Keypoint R-CNN heads: per-region keypoint heatmaps, their training loss and their decoding.

The heads are found by name through det's registry (``ROI_KEYPOINT_HEAD``); ``StandardROIHeads``
calls them as detectron2 does: ``keypoint_head(features, instances)`` returns
``{"loss_keypoint": ...}`` in training and the instances with ``pred_keypoints`` and
``pred_keypoint_heatmaps`` at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.layers import Conv2d, ConvTranspose2d, ShapeSpec, cat, interpolate
from det.core.modeling.inputs import in_region_chunks, inference_layout
from det.core.registry import ROI_KEYPOINT_HEAD_REGISTRY  # detectron2 defines it in this module
from det.heads.roi.roi_heads import build_keypoint_head
from det.structures import Instances, heatmaps_to_keypoints

__all__ = [
    "ROI_KEYPOINT_HEAD_REGISTRY",
    "BaseKeypointRCNNHead",
    "KRCNNConvDeconvUpsampleHead",
    "build_keypoint_head",
    "keypoint_rcnn_inference",
    "keypoint_rcnn_loss",
]

# Training batches whose regions had no visible keypoint, over the life of the process (detectron2
# reports this running count as "kpts_num_skipped_batches").
_TOTAL_SKIPPED = 0


def _check_logits(pred_keypoint_logits: torch.Tensor, where: str) -> None:
    if not isinstance(pred_keypoint_logits, torch.Tensor) or pred_keypoint_logits.dim() != 4:
        shape = (
            tuple(pred_keypoint_logits.shape)
            if isinstance(pred_keypoint_logits, torch.Tensor)
            else type(pred_keypoint_logits).__name__
        )
        raise ValueError(f"{where}: pred_keypoint_logits must be an (N, K, S, S) tensor, got {shape}")


def _check_instances(instances: list[Instances], num_regions: int, where: str) -> None:
    if not isinstance(instances, (list, tuple)) or not all(isinstance(i, Instances) for i in instances):
        raise TypeError(f"{where}: instances must be a list of Instances (one per image), got {type(instances).__name__}")
    total = sum(len(i) for i in instances)
    if total != num_regions:
        raise ValueError(
            f"{where}: got {num_regions} keypoint predictions for {total} regions; "
            "need one prediction per region of `instances`"
        )


def keypoint_rcnn_loss(
    pred_keypoint_logits: torch.Tensor, instances: list[Instances], normalizer: float | None
) -> torch.Tensor:
    """The Keypoint R-CNN loss: for each visible keypoint, the cross-entropy of its heatmap (a
    softmax over the S x S cells) against the cell the ground-truth keypoint falls in.

    Args:
        pred_keypoint_logits: (N, K, S, S) logits; N regions over all images, K keypoints.
        instances: per image, the regions in the same order, with ``proposal_boxes`` and
            ``gt_keypoints`` (``Keypoints``).
        normalizer: the summed loss is divided by it; None divides by the number of visible
            keypoints in the batch.

    Returns:
        the scalar loss; 0 (connected to the graph) when no keypoint is visible, counting such
        batches in the EventStorage as ``kpts_num_skipped_batches``.
    """
    _check_logits(pred_keypoint_logits, "keypoint_rcnn_loss")
    _check_instances(instances, pred_keypoint_logits.shape[0], "keypoint_rcnn_loss")
    heatmaps: list[torch.Tensor] = []
    valid_per_image_list: list[torch.Tensor] = []

    keypoint_side_len = pred_keypoint_logits.shape[2]
    for instances_per_image in instances:
        if len(instances_per_image) == 0:
            continue
        if not instances_per_image.has("gt_keypoints"):
            raise ValueError(
                "keypoint_rcnn_loss: training regions have no 'gt_keypoints'; give the ground-truth "
                "Instances a gt_keypoints field (Keypoints)"
            )
        keypoints = instances_per_image.gt_keypoints
        heatmaps_per_image, valid_per_image = keypoints.to_heatmap(
            instances_per_image.proposal_boxes.tensor, keypoint_side_len
        )
        heatmaps.append(heatmaps_per_image.view(-1))
        valid_per_image_list.append(valid_per_image.view(-1))

    valid = torch.zeros(0, dtype=torch.long)
    if len(heatmaps):
        keypoint_targets = cat(heatmaps, dim=0)
        valid = torch.nonzero(cat(valid_per_image_list, dim=0).to(dtype=torch.uint8)).squeeze(1)

    # cross_entropy's mean over nothing is nan: report and return a connected zero instead
    if len(heatmaps) == 0 or valid.numel() == 0:
        global _TOTAL_SKIPPED
        _TOTAL_SKIPPED += 1
        storage = get_event_storage()
        storage.put_scalar("kpts_num_skipped_batches", _TOTAL_SKIPPED, smoothing_hint=False)
        return pred_keypoint_logits.sum() * 0

    n, k, h, w = pred_keypoint_logits.shape
    pred_keypoint_logits = pred_keypoint_logits.view(n * k, h * w)

    keypoint_loss = F.cross_entropy(
        pred_keypoint_logits[valid], keypoint_targets[valid].to(pred_keypoint_logits.device), reduction="sum"
    )

    if normalizer is None:
        normalizer = valid.numel()
    keypoint_loss /= normalizer

    return keypoint_loss


def keypoint_rcnn_inference(pred_keypoint_logits: torch.Tensor, pred_instances: list[Instances]) -> None:
    """Decode heatmap logits into keypoints in image coordinates.

    Args:
        pred_keypoint_logits: (N, K, S, S) logits; N detections over all images.
        pred_instances: per image, the detections in the same order, with ``pred_boxes``.

    Sets on each ``Instances``: ``pred_keypoints`` (N, K, 3) of (x, y, score), x/y in the input
    image's coordinates, score the softmax value at the arg-max of the box-sized bicubic
    upsampling (normalised over the S x S map, see ``heatmaps_to_keypoints``); and
    ``pred_keypoint_heatmaps`` (N, K, S, S), the raw logits.
    """
    _check_logits(pred_keypoint_logits, "keypoint_rcnn_inference")
    _check_instances(pred_instances, pred_keypoint_logits.shape[0], "keypoint_rcnn_inference")
    if not all(i.has("pred_boxes") for i in pred_instances):
        raise ValueError("keypoint_rcnn_inference: every Instances needs 'pred_boxes'")
    bboxes_flat = cat([b.pred_boxes.tensor for b in pred_instances], dim=0)

    pred_keypoint_logits = pred_keypoint_logits.detach()
    keypoint_results = heatmaps_to_keypoints(pred_keypoint_logits, bboxes_flat.detach())
    num_instances_per_image = [len(i) for i in pred_instances]
    # (x, y, logit, score) -> (x, y, score)
    keypoints_per_images = torch.split(keypoint_results[:, :, [0, 1, 3]], num_instances_per_image, dim=0)
    heatmaps_per_images = torch.split(pred_keypoint_logits, num_instances_per_image, dim=0)

    for keypoints_per_image, heatmaps_per_image, instances_per_image in zip(
        keypoints_per_images, heatmaps_per_images, pred_instances
    ):
        instances_per_image.pred_keypoints = keypoints_per_image
        instances_per_image.pred_keypoint_heatmaps = heatmaps_per_image


class BaseKeypointRCNNHead(nn.Module):
    """The loss and inference of a Keypoint R-CNN head; subclasses supply ``layers``.

    Invariant: ``layers(x)`` maps region features to (N, num_keypoints, S, S) heatmap logits, one
    per region of ``instances``; ``forward`` adds the loss (training) or keypoints (inference)::

        class MyHead(BaseKeypointRCNNHead):
            def layers(self, x): return self.predictor(x)
        head = MyHead(num_keypoints=17); head.eval()(region_features, detections)   # pred_keypoints
    """

    @configurable
    def __init__(self, *, num_keypoints: int, loss_weight: float = 1.0, loss_normalizer: float | str = 1.0):
        """
        Args:
            num_keypoints: number of keypoints per instance.
            loss_weight: multiplier of the keypoint loss.
            loss_normalizer: "visible" divides the summed loss by the number of visible keypoints
                of the batch; a number divides it by ``number of images * loss_normalizer``.
        """
        super().__init__()
        if not isinstance(num_keypoints, int) or num_keypoints < 1:
            raise ValueError(f"{type(self).__name__}: num_keypoints must be a positive int, got {num_keypoints!r}")
        if not (loss_normalizer == "visible" or isinstance(loss_normalizer, (int, float))):
            raise ValueError(
                f"{type(self).__name__}: loss_normalizer must be 'visible' or a number, got {loss_normalizer!r}"
            )
        self.num_keypoints = num_keypoints
        self.loss_weight = loss_weight
        self.loss_normalizer = loss_normalizer

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        ret: dict[str, Any] = {
            "loss_weight": cfg.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT,
            "num_keypoints": cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS,
        }
        if cfg.MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS:
            ret["loss_normalizer"] = "visible"
        else:
            # the expected number of keypoints of a batch, so the loss does not swing with it
            ret["loss_normalizer"] = (
                ret["num_keypoints"]
                * cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE
                * cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION
            )
        return ret

    def forward(self, x: Any, instances: list[Instances]) -> dict[str, torch.Tensor] | list[Instances]:
        """
        Args:
            x: region features from the ROI heads.
            instances: per image, the regions of ``x``: foreground proposals with
                ``gt_keypoints`` in training, detections with ``pred_boxes`` at inference.

        Returns:
            ``{"loss_keypoint": loss}`` in training; at inference, ``instances`` with
            ``pred_keypoints`` and ``pred_keypoint_heatmaps``.
        """
        x = self.layers(x) if self.training else in_region_chunks(self.layers, inference_layout(x))
        if self.training:
            num_images = len(instances)
            normalizer = None if isinstance(self.loss_normalizer, str) else num_images * self.loss_normalizer
            return {"loss_keypoint": keypoint_rcnn_loss(x, instances, normalizer=normalizer) * self.loss_weight}
        keypoint_rcnn_inference(x, instances)
        return instances

    def layers(self, x: Any) -> torch.Tensor:
        """The network: region features -> (N, K, S, S) heatmap logits."""
        raise NotImplementedError


# An nn.Sequential, so that the layers run in the order they were added (see ``layers``).
class KRCNNConvDeconvUpsampleHead(BaseKeypointRCNNHead, nn.Sequential):  # type: ignore[misc]
    """3x3 convs (+ ReLU), a stride-2 ``ConvTranspose2d`` to one map per keypoint, then 2x
    bilinear upsampling: the head of :paper:`Mask R-CNN`'s keypoint variant.

    Invariant: (N, C, H, W) region features give (N, num_keypoints, 4H, 4W) logits (56 x 56 for
    the usual 14 x 14 pooling); parameters are named ``conv_fcn1..k`` and ``score_lowres`` as in
    detectron2's checkpoints::

        head = KRCNNConvDeconvUpsampleHead(ShapeSpec(channels=16), num_keypoints=17, conv_dims=[32] * 8)
        head.layers(torch.rand(2, 16, 14, 14)).shape   # (2, 17, 56, 56)
    """

    # final layers: they stay float32 under fast mode's bfloat16 (det.core.fast's protocol)
    float32_layers = ("score_lowres",)

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, num_keypoints: int, conv_dims: Sequence[int], **kwargs: Any) -> None:
        """
        Args:
            input_shape: shape of the region features (channels are used).
            num_keypoints: number of keypoints (output maps).
            conv_dims: widths of the 3x3 conv layers (may be empty).
            kwargs: passed to :class:`BaseKeypointRCNNHead` (``loss_weight``, ``loss_normalizer``).
        """
        super().__init__(num_keypoints=num_keypoints, **kwargs)
        if not isinstance(input_shape, ShapeSpec) or not input_shape.channels:
            raise ValueError(
                f"KRCNNConvDeconvUpsampleHead: input_shape must be a ShapeSpec with channels, got {input_shape!r}"
            )

        # detectron2 fixes the final bilinear upsampling at 2x
        up_scale = 2.0
        in_channels = input_shape.channels

        for idx, layer_channels in enumerate(conv_dims, 1):
            module = Conv2d(in_channels, layer_channels, 3, stride=1, padding=1)
            self.add_module(f"conv_fcn{idx}", module)
            self.add_module(f"conv_fcn_relu{idx}", nn.ReLU())
            in_channels = layer_channels

        deconv_kernel = 4
        self.score_lowres = ConvTranspose2d(
            in_channels, num_keypoints, deconv_kernel, stride=2, padding=deconv_kernel // 2 - 1
        )
        self.up_scale = up_scale

        for name, param in self.named_parameters():
            if "bias" in name:
                nn.init.constant_(param, 0)
            elif "weight" in name:
                # Caffe2's MSRAFill, as the original Detectron initialised this head
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")

    def class_dependent_parameters(self) -> list[str]:
        """The heatmap layer: one map per keypoint of the dataset (see
        :func:`det.checkpoint.class_dependent_parameter_names`)."""
        return ["score_lowres.weight", "score_lowres.bias"]

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        ret = super().from_config(cfg, input_shape)
        ret["input_shape"] = input_shape
        ret["conv_dims"] = list(cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS)
        return ret

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        x = interpolate(x, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
        return x
