"""PointRend's mask heads (``ROI_MASK_HEAD`` components): a coarse mask from a small FC head,
refined at adaptively chosen points by a point head.

Both read the image-level features themselves (``MODEL.ROI_MASK_HEAD.POOLER_TYPE: ""``): the ROI
heads hand them ``{feature name: map}`` and the regions. Training returns ``loss_mask`` (the
coarse mask) and ``loss_mask_point``; inference sets ``pred_masks`` (R, 1, M, M) on the instances,
M = the subdivision's final resolution.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.layers import Conv2d, ShapeSpec, c2_msra_fill, c2_xavier_fill, cat
from det.heads.mask.mask_head import mask_rcnn_inference, mask_rcnn_loss
from det.projects.point_rend.point_features import (
    generate_regular_grid_point_coords,
    get_point_coords_wrt_image,
    get_uncertain_point_coords_on_grid,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    point_sample_fine_grained_features,
    put_point_logits,
    sample_point_labels,
)
from det.projects.point_rend.point_head import build_point_head, roi_mask_point_loss
from det.structures import Boxes, Instances

__all__ = ["ConvFCHead", "ImplicitPointRendMaskHead", "PointRendMaskHead", "calculate_uncertainty"]

logger = logging.getLogger(__name__)


def calculate_uncertainty(logits: Tensor, classes: Tensor) -> Tensor:
    """Uncertainty of mask logits: minus the absolute logit of each region's class (``classes``,
    ground-truth or predicted), so that logits near 0 are the most uncertain.

    Args:
        logits: (R, C, ...) logits, or (R, 1, ...) class-agnostic.
        classes: (R,) class of each region.

    Returns:
        (R, 1, ...) uncertainties.
    """
    if logits.shape[1] == 1:
        chosen = logits.clone()
    else:
        chosen = logits[torch.arange(logits.shape[0], device=logits.device), classes].unsqueeze(1)
    return -chosen.abs()


def _rename_prefixed(state_dict: dict, renames: Sequence[tuple[str, str]]) -> bool:
    """Rename every key starting with an old prefix to the new one; whether any was renamed."""
    renamed = False
    for key in list(state_dict):
        for old, new in renames:
            if key.startswith(old):
                state_dict[new + key[len(old):]] = state_dict.pop(key)
                renamed = True
                break
    return renamed


class ConvFCHead(nn.Module):
    """The coarse mask head: an optional 1x1 conv down to ``conv_dim`` channels
    (``reduce_channel_dim_conv``, only if the input is wider), a 2x2 stride-2 conv
    (``reduce_spatial_dim_conv``), FC layers ``fc1..`` (ReLU) and a linear ``prediction`` reshaped
    to ``output_shape``.

        head = ConvFCHead(ShapeSpec(channels=256, height=14, width=14), conv_dim=256,
                          fc_dims=[1024, 1024], output_shape=(80, 7, 7))
        head(torch.rand(5, 256, 14, 14)).shape    # (5, 80, 7, 7)
    """

    _version = 2

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, conv_dim: int, fc_dims: list[int], output_shape: tuple[int, ...]):
        """
        Args:
            input_shape: channels, height and width of the pooled region features.
            conv_dim: width of the conv layers.
            fc_dims: N > 0 widths of the FC layers.
            output_shape: the shape of one region's prediction.
        """
        super().__init__()
        if not fc_dims:
            raise ValueError("ConvFCHead needs at least one FC layer (MODEL.ROI_MASK_HEAD.NUM_FC >= 1)")
        if input_shape.channels < conv_dim:
            raise ValueError(f"ConvFCHead: the region features have {input_shape.channels} channels, fewer than "
                             f"conv_dim {conv_dim} (MODEL.ROI_MASK_HEAD.CONV_DIM); only a wider input is reduced")
        self.output_shape = tuple(output_shape)
        self.conv_layers = []
        if input_shape.channels > conv_dim:
            self.reduce_channel_dim_conv = Conv2d(input_shape.channels, conv_dim, kernel_size=1, stride=1, padding=0,
                                                  bias=True, activation=F.relu)
            self.conv_layers.append(self.reduce_channel_dim_conv)
        self.reduce_spatial_dim_conv = Conv2d(conv_dim, conv_dim, kernel_size=2, stride=2, padding=0, bias=True,
                                              activation=F.relu)
        self.conv_layers.append(self.reduce_spatial_dim_conv)

        in_dim = conv_dim * input_shape.height * input_shape.width // 4
        self.fcs = []
        for k, fc_dim in enumerate(fc_dims):
            fc = nn.Linear(in_dim, fc_dim)
            self.add_module(f"fc{k + 1}", fc)
            self.fcs.append(fc)
            in_dim = fc_dim
        self.prediction = nn.Linear(in_dim, math.prod(self.output_shape))
        nn.init.normal_(self.prediction.weight, std=0.001)
        nn.init.constant_(self.prediction.bias, 0)
        for layer in self.conv_layers:
            c2_msra_fill(layer)
        for layer in self.fcs:
            c2_xavier_fill(layer)

    @classmethod
    def from_config(cls, cfg, input_shape):
        side = cfg.MODEL.ROI_MASK_HEAD.OUTPUT_SIDE_RESOLUTION
        return {
            "input_shape": input_shape,
            "conv_dim": cfg.MODEL.ROI_MASK_HEAD.CONV_DIM,
            "fc_dims": [cfg.MODEL.ROI_MASK_HEAD.FC_DIM] * cfg.MODEL.ROI_MASK_HEAD.NUM_FC,
            "output_shape": (cfg.MODEL.ROI_HEADS.NUM_CLASSES, side, side),
        }

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        for layer in self.conv_layers:
            x = layer(x)
        x = torch.flatten(x, start_dim=1)
        for layer in self.fcs:
            x = F.relu(layer(x))
        return self.prediction(x).view(n, *self.output_shape)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # checkpoints before version 2 named the FC layers coarse_mask_fc1..
        version = local_metadata.get("version", None)
        if (version is None or version < 2) and _rename_prefixed(state_dict, [(prefix + "coarse_mask_fc", prefix + "fc")]):
            logger.warning("Renamed the old PointRend coarse head weights (coarse_mask_fc* -> fc*)")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class PointRendMaskHead(nn.Module):
    """PointRend's mask head (``MODEL.ROI_MASK_HEAD.NAME: PointRendMaskHead``).

    A ``coarse_head`` (:class:`ConvFCHead`) predicts an ``OUTPUT_SIDE_RESOLUTION``-square mask per
    region from features sampled on a ``POOLER_RESOLUTION`` grid of ``ROI_MASK_HEAD.IN_FEATURES``.
    With ``POINT_HEAD_ON``, a ``point_head`` refines it: in training at uncertain points
    (``loss_mask_point``), at inference by ``SUBDIVISION_STEPS`` rounds of 2x upsampling that
    recompute the ``SUBDIVISION_NUM_POINTS`` most uncertain cells.

    Parameters: ``coarse_head.*`` and ``point_head.*`` as in detectron2's checkpoints.
    """

    def __init__(self, cfg, input_shape: dict[str, ShapeSpec]):
        super().__init__()
        if not isinstance(input_shape, dict):
            raise ValueError(f"{type(self).__name__} reads the image features itself: set "
                             f"MODEL.ROI_MASK_HEAD.POOLER_TYPE to \"\" (got {cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE!r})")
        self._feature_scales = {k: 1.0 / v.stride for k, v in input_shape.items()}
        self._init_point_head(cfg, input_shape)
        self.roi_pooler_in_features = list(cfg.MODEL.ROI_MASK_HEAD.IN_FEATURES)
        self.roi_pooler_size = cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
        _check_features("MODEL.ROI_MASK_HEAD.IN_FEATURES", self.roi_pooler_in_features, input_shape)
        in_channels = sum(input_shape[f].channels for f in self.roi_pooler_in_features)
        self._init_roi_head(cfg, ShapeSpec(channels=in_channels, width=self.roi_pooler_size, height=self.roi_pooler_size))

    def _init_roi_head(self, cfg, input_shape: ShapeSpec) -> None:
        self.coarse_head = ConvFCHead(cfg, input_shape)

    def _init_point_head(self, cfg, input_shape: dict[str, ShapeSpec]) -> None:
        self.mask_point_on = cfg.MODEL.ROI_MASK_HEAD.POINT_HEAD_ON
        if not self.mask_point_on:
            return
        self._build_point_head(cfg, input_shape)
        self.mask_point_oversample_ratio = cfg.MODEL.POINT_HEAD.OVERSAMPLE_RATIO
        self.mask_point_importance_sample_ratio = cfg.MODEL.POINT_HEAD.IMPORTANCE_SAMPLE_RATIO
        self.mask_point_subdivision_init_resolution = cfg.MODEL.ROI_MASK_HEAD.OUTPUT_SIDE_RESOLUTION
        # a step after which every cell would be recomputed anyway is skipped: start at twice the
        # resolution instead (the result is the same)
        while 4 * self.mask_point_subdivision_init_resolution**2 <= self.mask_point_subdivision_num_points:
            self.mask_point_subdivision_init_resolution *= 2
            self.mask_point_subdivision_steps -= 1

    def _build_point_head(self, cfg, input_shape: dict[str, ShapeSpec]) -> None:
        """What both PointRend mask heads read of MODEL.POINT_HEAD, and their ``point_head``."""
        _check_num_classes(cfg)
        self.mask_point_in_features = list(cfg.MODEL.POINT_HEAD.IN_FEATURES)
        _check_features("MODEL.POINT_HEAD.IN_FEATURES", self.mask_point_in_features, input_shape)
        self.mask_point_train_num_points = cfg.MODEL.POINT_HEAD.TRAIN_NUM_POINTS
        self.mask_point_subdivision_steps = cfg.MODEL.POINT_HEAD.SUBDIVISION_STEPS
        self.mask_point_subdivision_num_points = cfg.MODEL.POINT_HEAD.SUBDIVISION_NUM_POINTS
        in_channels = sum(input_shape[f].channels for f in self.mask_point_in_features)
        self.point_head = build_point_head(cfg, ShapeSpec(channels=in_channels, width=1, height=1))

    def forward(self, features: dict[str, Tensor], instances: list[Instances]):
        """
        Args:
            features: image-level feature maps by name.
            instances: per image, the foreground proposals (training) or the detections.

        Returns:
            training: ``{"loss_mask", "loss_mask_point"}``; inference: ``instances`` with ``pred_masks``.
        """
        if self.training:
            proposal_boxes = [x.proposal_boxes for x in instances]
            coarse_mask = self.coarse_head(self._roi_pooler(features, proposal_boxes))
            losses = {"loss_mask": mask_rcnn_loss(coarse_mask, instances)}
            if not self.mask_point_on:
                return losses
            point_coords, point_labels = self._sample_train_points(coarse_mask, instances)
            fine_grained = self._point_pooler(features, proposal_boxes, point_coords)
            point_logits = self._get_point_logits(fine_grained, point_coords, coarse_mask)
            losses["loss_mask_point"] = roi_mask_point_loss(point_logits, instances, point_labels)
            return losses
        pred_boxes = [x.pred_boxes for x in instances]
        coarse_mask = self.coarse_head(self._roi_pooler(features, pred_boxes))
        if not self.mask_point_on:
            mask_rcnn_inference(coarse_mask, instances)
            return instances
        return self._subdivision_inference(features, coarse_mask, instances)

    def _roi_pooler(self, features: dict[str, Tensor], boxes: list[Boxes]) -> Tensor:
        """(R, C, S, S) region features sampled at the centres of an S x S grid over each box from
        every map of ``roi_pooler_in_features`` (concatenated): ROIAlign with one sample per bin."""
        num_boxes = sum(len(b) for b in boxes)
        size = self.roi_pooler_size
        grid = generate_regular_grid_point_coords(num_boxes, size, boxes[0].device)
        roi_features, _ = point_sample_fine_grained_features(
            [features[k] for k in self.roi_pooler_in_features],
            [self._feature_scales[k] for k in self.roi_pooler_in_features], boxes, grid)
        return roi_features.view(num_boxes, roi_features.shape[1], size, size)

    def _sample_train_points(self, coarse_mask: Tensor, instances: list[Instances]) -> tuple[Tensor, Tensor]:
        gt_classes = cat([x.gt_classes for x in instances])
        with torch.no_grad():
            point_coords = get_uncertain_point_coords_with_randomness(
                coarse_mask,
                lambda logits: calculate_uncertainty(logits, gt_classes),
                self.mask_point_train_num_points,
                self.mask_point_oversample_ratio,
                self.mask_point_importance_sample_ratio,
            )
            boxes = Boxes.cat([x.proposal_boxes for x in instances])
            point_labels = sample_point_labels(instances, get_point_coords_wrt_image(boxes.tensor, point_coords))
        return point_coords, point_labels

    def _point_pooler(self, features: dict[str, Tensor], boxes: list[Boxes], point_coords: Tensor) -> Tensor:
        fine_grained, _ = point_sample_fine_grained_features(
            [features[k] for k in self.mask_point_in_features],
            [self._feature_scales[k] for k in self.mask_point_in_features], boxes, point_coords)
        return fine_grained

    def _get_point_logits(self, fine_grained_features: Tensor, point_coords: Tensor, coarse_mask: Tensor) -> Tensor:
        coarse_features = point_sample(coarse_mask, point_coords, align_corners=False)
        return self.point_head(fine_grained_features, coarse_features)

    def _subdivision_inference(self, features: dict[str, Tensor], mask_representations: Tensor,
                               instances: list[Instances]) -> list[Instances]:
        pred_boxes = [x.pred_boxes for x in instances]
        pred_classes = cat([x.pred_classes for x in instances])
        side = self.mask_point_subdivision_init_resolution
        # step 0: the point head on a regular side x side grid gives the first mask
        point_coords = generate_regular_grid_point_coords(pred_classes.shape[0], side, pred_boxes[0].device)
        point_logits = self._get_point_logits(self._point_pooler(features, pred_boxes, point_coords), point_coords,
                                              mask_representations)
        r, c, _ = point_logits.shape
        mask_logits = point_logits.reshape(r, c, side, side)
        if r == 0:
            mask_rcnn_inference(mask_logits, instances)
            return instances
        for _ in range(self.mask_point_subdivision_steps):
            mask_logits = F.interpolate(mask_logits, scale_factor=2, mode="bilinear", align_corners=False)
            uncertainty_map = calculate_uncertainty(mask_logits, pred_classes)
            point_indices, point_coords = get_uncertain_point_coords_on_grid(
                uncertainty_map, self.mask_point_subdivision_num_points)
            point_logits = self._get_point_logits(self._point_pooler(features, pred_boxes, point_coords),
                                                  point_coords, mask_representations)
            mask_logits = put_point_logits(mask_logits, point_indices, point_logits)
        mask_rcnn_inference(mask_logits, instances)
        return instances


def _check_features(key: str, names: list[str], input_shape: dict[str, ShapeSpec]) -> None:
    missing = [f for f in names if f not in input_shape]
    if missing:
        raise ValueError(f"{key} names {missing}, which the mask head is not given; available: {sorted(input_shape)} "
                         "(MODEL.ROI_HEADS.IN_FEATURES)")


def _check_num_classes(cfg) -> None:
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES != cfg.MODEL.POINT_HEAD.NUM_CLASSES:
        raise ValueError(f"MODEL.POINT_HEAD.NUM_CLASSES ({cfg.MODEL.POINT_HEAD.NUM_CLASSES}) must equal "
                         f"MODEL.ROI_HEADS.NUM_CLASSES ({cfg.MODEL.ROI_HEADS.NUM_CLASSES})")


class ImplicitPointRendMaskHead(PointRendMaskHead):
    """Implicit PointRend's mask head (``MODEL.ROI_MASK_HEAD.NAME: ImplicitPointRendMaskHead``):
    a ``parameter_head`` (:class:`ConvFCHead`) predicts, per region, the weights of an
    :class:`ImplicitPointHead` MLP (``point_head``) that maps point features to mask logits.
    Training samples points uniformly (``loss_mask_point``) and penalises large parameters
    (``loss_l2``, weight ``MODEL.IMPLICIT_POINTREND.PARAMS_L2_REGULARIZER``); inference
    subdivides from a sqrt(SUBDIVISION_NUM_POINTS)-square grid.
    """

    def _init_roi_head(self, cfg, input_shape: ShapeSpec) -> None:
        self.parameter_head = ConvFCHead(cfg, input_shape, output_shape=(self.num_params,))
        self.regularizer = cfg.MODEL.IMPLICIT_POINTREND.PARAMS_L2_REGULARIZER

    def _init_point_head(self, cfg, input_shape: dict[str, ShapeSpec]) -> None:
        self.mask_point_on = True
        self._build_point_head(cfg, input_shape)
        self.num_params = self.point_head.num_params
        side = math.isqrt(self.mask_point_subdivision_num_points)
        if side * side != self.mask_point_subdivision_num_points:
            raise ValueError("ImplicitPointRendMaskHead starts from a square grid: MODEL.POINT_HEAD."
                             f"SUBDIVISION_NUM_POINTS must be a square number, got {self.mask_point_subdivision_num_points}")
        self.mask_point_subdivision_init_resolution = side

    def forward(self, features: dict[str, Tensor], instances: list[Instances]):
        if self.training:
            proposal_boxes = [x.proposal_boxes for x in instances]
            parameters = self.parameter_head(self._roi_pooler(features, proposal_boxes))
            losses = {"loss_l2": self.regularizer * (parameters**2).mean()}
            point_coords, point_labels = self._uniform_sample_train_points(instances)
            fine_grained = self._point_pooler(features, proposal_boxes, point_coords)
            point_logits = self._get_point_logits(fine_grained, point_coords, parameters)
            losses["loss_mask_point"] = roi_mask_point_loss(point_logits, instances, point_labels)
            return losses
        pred_boxes = [x.pred_boxes for x in instances]
        parameters = self.parameter_head(self._roi_pooler(features, pred_boxes))
        return self._subdivision_inference(features, parameters, instances)

    def _uniform_sample_train_points(self, instances: list[Instances]) -> tuple[Tensor, Tensor]:
        boxes = Boxes.cat([x.proposal_boxes for x in instances])
        point_coords = torch.rand(len(boxes), self.mask_point_train_num_points, 2, device=boxes.tensor.device)
        point_labels = sample_point_labels(instances, get_point_coords_wrt_image(boxes.tensor, point_coords))
        return point_coords, point_labels

    def _get_point_logits(self, fine_grained_features: Tensor, point_coords: Tensor, parameters: Tensor) -> Tensor:
        return self.point_head(fine_grained_features, point_coords, parameters)
