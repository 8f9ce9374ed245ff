"""Point heads: per-point MLPs (1x1 ``Conv1d``) that predict logits from point features, and the
point loss of PointRend's mask head.

Found by name through det's registry, kind ``POINT_HEAD`` (detectron2's ``POINT_HEAD_REGISTRY``):
``build_point_head(cfg, ShapeSpec(channels=C))`` builds ``cfg.MODEL.POINT_HEAD.NAME``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from det.core.events import get_event_storage
from det.core.layers import ShapeSpec, c2_msra_fill, cat
from det.core.registry import Registry
from det.structures import Instances

__all__ = [
    "POINT_HEAD_REGISTRY",
    "ImplicitPointHead",
    "StandardPointHead",
    "build_point_head",
    "roi_mask_point_loss",
]

POINT_HEAD_REGISTRY = Registry(
    "POINT_HEAD",
    doc="Point heads: called with ``(cfg, input_shape)``; predict logits from (N, C, P) point features.",
)


def roi_mask_point_loss(mask_logits: Tensor, instances: list[Instances], point_labels: Tensor) -> Tensor:
    """Binary cross-entropy of point logits of each region's ground-truth class against point labels.

    Args:
        mask_logits: (R, C, P) logits (C = 1 class-agnostic), one row per region of ``instances``.
        instances: per image, the training regions (with ``gt_classes`` when class-specific).
        point_labels: (R, P) targets in [0, 1]; -1 is ignored.

    Returns:
        the mean loss over non-ignored points. Puts ``point/accuracy`` into the EventStorage.
    """
    num_regions = sum(len(x) for x in instances)
    if mask_logits.shape[0] != num_regions or point_labels.shape[0] != num_regions:
        raise ValueError(f"roi_mask_point_loss: got {mask_logits.shape[0]} point predictions and "
                         f"{point_labels.shape[0]} label rows for {num_regions} regions; need one each per region")
    if point_labels.shape[0] == 0:
        return mask_logits.sum() * 0
    if mask_logits.shape[1] == 1:
        mask_logits = mask_logits[:, 0]
    else:
        gt_classes = cat([x.gt_classes.to(torch.int64) for x in instances if len(x)], dim=0)
        mask_logits = mask_logits[torch.arange(num_regions, device=mask_logits.device), gt_classes.to(mask_logits.device)]
    valid = point_labels != -1
    correct = ((mask_logits > 0.0) == (point_labels > 0.5))[valid]
    get_event_storage().put_scalar("point/accuracy", correct.sum().item() / max(correct.numel(), 1.0))
    return F.binary_cross_entropy_with_logits(
        mask_logits, point_labels.to(torch.float32), weight=valid.to(mask_logits.dtype), reduction="mean")


class StandardPointHead(nn.Module):
    """PointRend's point MLP: ``NUM_FC`` 1x1 ``Conv1d`` + ReLU layers (``fc1``..) over the
    concatenated fine-grained and coarse point features (the coarse ones again before each layer
    when ``COARSE_PRED_EACH_LAYER``), then a 1x1 ``predictor``.

        head = StandardPointHead(cfg, ShapeSpec(channels=256))
        head(fine_grained (R, 256, P), coarse (R, num_classes, P))   # (R, num_classes, P) logits
    """

    def __init__(self, cfg, input_shape: ShapeSpec):
        super().__init__()
        num_classes = cfg.MODEL.POINT_HEAD.NUM_CLASSES
        fc_dim = cfg.MODEL.POINT_HEAD.FC_DIM
        num_fc = cfg.MODEL.POINT_HEAD.NUM_FC
        cls_agnostic_mask = cfg.MODEL.POINT_HEAD.CLS_AGNOSTIC_MASK
        self.coarse_pred_each_layer = cfg.MODEL.POINT_HEAD.COARSE_PRED_EACH_LAYER
        in_dim = input_shape.channels + num_classes
        self.fc_layers = []
        for k in range(num_fc):
            fc = nn.Conv1d(in_dim, fc_dim, kernel_size=1, stride=1, padding=0, bias=True)
            self.add_module(f"fc{k + 1}", fc)
            self.fc_layers.append(fc)
            in_dim = fc_dim + (num_classes if self.coarse_pred_each_layer else 0)
        self.predictor = nn.Conv1d(in_dim, 1 if cls_agnostic_mask else num_classes, kernel_size=1, stride=1, padding=0)
        for layer in self.fc_layers:
            c2_msra_fill(layer)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.constant_(self.predictor.bias, 0)

    def forward(self, fine_grained_features: Tensor, coarse_features: Tensor) -> Tensor:
        x = torch.cat((fine_grained_features, coarse_features), dim=1)
        for layer in self.fc_layers:
            x = F.relu(layer(x))
            if self.coarse_pred_each_layer:
                x = cat((x, coarse_features), dim=1)
        return self.predictor(x)


class ImplicitPointHead(nn.Module):
    """Implicit PointRend's point MLP: ``NUM_FC + 1`` layers whose weights and biases are not
    parameters but given per region (predicted by the mask head's ``parameter_head``). The input of
    each point is its fine-grained features (``IMAGE_FEATURE_ENABLED``) and/or a 256-channel random
    Fourier encoding of its box-normalised position (``POS_ENC_ENABLED``, buffer
    ``positional_encoding_gaussian_matrix``).

    ``num_params`` is the length of one region's parameter vector: every layer's weights, then
    every layer's biases.
    """

    def __init__(self, cfg, input_shape: ShapeSpec):
        super().__init__()
        self.num_layers = cfg.MODEL.POINT_HEAD.NUM_FC + 1
        self.channels = cfg.MODEL.POINT_HEAD.FC_DIM
        self.image_feature_enabled = cfg.MODEL.IMPLICIT_POINTREND.IMAGE_FEATURE_ENABLED
        self.positional_encoding_enabled = cfg.MODEL.IMPLICIT_POINTREND.POS_ENC_ENABLED
        self.num_classes = 1 if cfg.MODEL.POINT_HEAD.CLS_AGNOSTIC_MASK else cfg.MODEL.POINT_HEAD.NUM_CLASSES
        self.in_channels = input_shape.channels if self.image_feature_enabled else 0
        if self.positional_encoding_enabled:
            self.in_channels += 256
            self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((2, 128)))
        if self.in_channels <= 0:
            raise ValueError("ImplicitPointHead has no input: enable MODEL.IMPLICIT_POINTREND.IMAGE_FEATURE_ENABLED "
                             "or POS_ENC_ENABLED")
        if self.num_layers < 2:
            raise ValueError(f"ImplicitPointHead needs MODEL.POINT_HEAD.NUM_FC >= 1, got {self.num_layers - 1}")
        dims = [self.in_channels] + [self.channels] * (self.num_layers - 1) + [self.num_classes]
        self.num_weight_params = [dims[i] * dims[i + 1] for i in range(self.num_layers)]
        self.num_bias_params = [dims[i + 1] for i in range(self.num_layers)]
        self.num_params = sum(self.num_weight_params) + sum(self.num_bias_params)

    def forward(self, fine_grained_features: Tensor, point_coords: Tensor, parameters: Tensor) -> Tensor:
        """
        Args:
            fine_grained_features: (R, C, P) point features.
            point_coords: (R, P, 2) box-normalised points.
            parameters: (R, num_params) each region's MLP.

        Returns:
            (R, num_classes, P) logits.
        """
        num_instances, _, num_points = fine_grained_features.shape
        if num_instances == 0:
            return torch.zeros((0, 1, num_points), device=fine_grained_features.device)
        if parameters.dim() != 2 or parameters.shape[1] != self.num_params:
            raise ValueError(f"ImplicitPointHead expects (R, {self.num_params}) parameters, got {tuple(parameters.shape)}")
        x = fine_grained_features
        if self.positional_encoding_enabled:
            locations = (2 * point_coords.reshape(num_instances * num_points, 2) - 1) @ \
                self.positional_encoding_gaussian_matrix.to(point_coords.device)
            locations = 2 * math.pi * locations
            encoding = torch.cat([torch.sin(locations), torch.cos(locations)], dim=1)
            encoding = encoding.reshape(num_instances, num_points, 256).permute(0, 2, 1)
            x = torch.cat([encoding, x], dim=1) if self.image_feature_enabled else encoding
        x = x.reshape(num_instances, self.in_channels, num_points)
        weights, biases = self._parse_params(parameters, self.in_channels, self.channels, self.num_classes,
                                             self.num_weight_params, self.num_bias_params)
        return self._dynamic_mlp(x, weights, biases, num_instances).reshape(-1, self.num_classes, num_points)

    @staticmethod
    def _dynamic_mlp(features: Tensor, weights: list[Tensor], biases: list[Tensor], num_instances: int) -> Tensor:
        x = features
        for i, (w, b) in enumerate(zip(weights, biases)):
            x = torch.bmm(w, x) + b  # (R, out, in) @ (R, in, P)
            if i < len(weights) - 1:
                x = F.relu(x)
        return x

    @staticmethod
    def _parse_params(pred_params: Tensor, in_channels: int, channels: int, num_classes: int,
                      num_weight_params: list[int], num_bias_params: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        """Split (R, num_params) into per-layer (R, out, in) weights and (R, out, 1) biases."""
        n = pred_params.shape[0]
        num_layers = len(num_weight_params)
        splits = torch.split(pred_params, num_weight_params + num_bias_params, dim=1)
        outs = [channels] * (num_layers - 1) + [num_classes]
        ins = [in_channels] + [channels] * (num_layers - 1)
        weights = [splits[i].reshape(n, outs[i], ins[i]) for i in range(num_layers)]
        biases = [splits[num_layers + i].reshape(n, outs[i], 1) for i in range(num_layers)]
        return weights, biases


def build_point_head(cfg, input_channels: ShapeSpec) -> nn.Module:
    """The point head named by ``cfg.MODEL.POINT_HEAD.NAME`` (a ``POINT_HEAD`` component)."""
    return POINT_HEAD_REGISTRY.get(cfg.MODEL.POINT_HEAD.NAME)(cfg, input_channels)
