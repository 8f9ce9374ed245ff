"""Semantic segmentation (:paper:`PanopticFPN`'s semantic branch): ``SemSegFPNHead`` and the
``SemanticSegmentor`` meta-architecture (backbone + semantic segmentation head)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.layers import Conv2d, ShapeSpec, c2_msra_fill, get_norm, move_device_like
from det.core.modeling import build_backbone, build_sem_seg_head, sem_seg_postprocess
from det.core.modeling.backbone import check_in_features
from det.core.modeling.inputs import (
    check_batched_inputs,
    normalize_and_pad_images,
    register_pixel_normalization,
    require_event_storage,
)
from det.core.registry import SEM_SEG_HEADS_REGISTRY  # detectron2 defines it in this module
from det.structures import ImageList

__all__ = ["SEM_SEG_HEADS_REGISTRY", "SemSegFPNHead", "SemanticSegmentor"]


def _pad_sem_seg_targets(
    batched_inputs: Sequence[dict[str, Any]], backbone: Any, ignore_value: int, device_like: Tensor
) -> Tensor:
    """Batch the inputs' "sem_seg" (H, W) label maps, padded exactly like the images (so every
    label lines up with its pixel) with ``ignore_value`` (so padding costs no loss)."""
    targets = []
    for i, x in enumerate(batched_inputs):
        if "sem_seg" not in x:
            raise ValueError(
                f"batched_inputs[{i}] has no 'sem_seg' key (keys: {sorted(x)}); training needs the "
                "semantic ground truth as an (H, W) integer tensor of class ids under 'sem_seg'"
            )
        seg = x["sem_seg"]
        if not isinstance(seg, Tensor) or seg.dim() != 2 or seg.is_floating_point() or seg.dtype == torch.bool:
            desc = f"{seg.dtype} tensor of shape {tuple(seg.shape)}" if isinstance(seg, Tensor) else type(seg).__name__
            raise ValueError(f"batched_inputs[{i}]['sem_seg'] must be an (H, W) integer tensor, got a {desc}")
        if tuple(seg.shape) != tuple(x["image"].shape[-2:]):
            raise ValueError(
                f"batched_inputs[{i}]['sem_seg'] has shape {tuple(seg.shape)} but the image is "
                f"{tuple(x['image'].shape[-2:])}; they must have the same height and width"
            )
        targets.append(move_device_like(seg, device_like))
    return ImageList.from_tensors(
        targets, backbone.size_divisibility, ignore_value, padding_constraints=backbone.padding_constraints
    ).tensor.long()


def _shape_specs(input_shape: Any) -> dict[str, ShapeSpec]:
    """``input_shape`` as {name: ShapeSpec}. Like detectron2, any mapping whose values have
    ``channels`` and ``stride`` attributes is accepted: LazyConfigs pass an omegaconf DictConfig
    of not-yet-instantiated ``L(ShapeSpec)(...)`` nodes (``common/models/panoptic_fpn.py``)."""
    if not isinstance(input_shape, Mapping) or not input_shape:
        raise ValueError("SemSegFPNHead(input_shape=) must be a non-empty dict of feature name -> ShapeSpec, "
                         f"got {input_shape!r}")
    shapes = {}
    for name, spec in input_shape.items():
        try:
            channels, stride = spec.channels, spec.stride
        except AttributeError:
            raise ValueError(f"SemSegFPNHead(input_shape=): the shape of {name!r} ({spec!r}) needs channels "
                             "and stride") from None
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (channels, stride)):
            raise ValueError(f"SemSegFPNHead(input_shape=): {name!r} needs positive int channels and stride, got "
                             f"channels={channels!r}, stride={stride!r}")
        shapes[str(name)] = ShapeSpec(channels=channels, stride=stride)
    return shapes


class SemSegFPNHead(nn.Module):
    """The semantic branch of Panoptic FPN: every level is brought to ``common_stride`` by
    conv(3x3)+upsample(x2) steps, the levels are summed, and a 1x1 conv predicts class logits.

    Invariant: the tower of level ``f`` is registered under the name ``f`` (``p2.0.weight``,
    ``p4.2.norm.weight``, ... as detectron2, also listed in ``scale_heads`` in ``in_features``
    order) and the classifier is ``predictor``; in eval ``forward`` returns
    (N, num_classes, H, W) logits at the input resolution (``common_stride`` x the sum),
    in training ``(None, {"loss_sem_seg": ...})``::

        head = SemSegFPNHead({"p2": ShapeSpec(channels=16, stride=4), "p3": ShapeSpec(channels=16, stride=8)},
                             num_classes=5, conv_dims=32, common_stride=4, norm="GN")
        logits, _ = head.eval()({"p2": torch.rand(1, 16, 8, 8), "p3": torch.rand(1, 16, 4, 4)})  # (1, 5, 32, 32)
    """

    # final layers: they stay float32 under fast mode's bfloat16 (det.core.fast's protocol)
    float32_layers = ("predictor",)

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        num_classes: int,
        conv_dims: int,
        common_stride: int,
        loss_weight: float = 1.0,
        norm: str | None = None,
        ignore_value: int = -1,
    ) -> None:
        """
        Args:
            input_shape: the features the head reads (name -> channels and stride).
            num_classes: number of classes to predict.
            conv_dims: output channels of every tower conv.
            common_stride: the stride all levels are brought to before summing (a power of 2 not
                above the smallest input stride).
            loss_weight: multiplies the cross-entropy loss.
            norm: normalisation of the tower convs (a get_norm name or None).
            ignore_value: label of pixels that count in no loss (also the padding value).
        """
        super().__init__()
        input_shape = _shape_specs(input_shape)
        for name, value in (("num_classes", num_classes), ("conv_dims", conv_dims), ("common_stride", common_stride)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SemSegFPNHead: {name} must be a positive int, got {value!r}")
        # _shape_specs made every stride and channels a positive int
        sorted_shapes = sorted(input_shape.items(), key=lambda x: cast(int, x[1].stride))
        self.in_features = [k for k, v in sorted_shapes]
        feature_strides = [cast(int, v.stride) for k, v in sorted_shapes]
        feature_channels = [cast(int, v.channels) for k, v in sorted_shapes]
        if feature_strides[0] < common_stride:
            raise ValueError(
                f"SemSegFPNHead: common_stride {common_stride} is larger than the stride "
                f"{feature_strides[0]} of feature {self.in_features[0]!r}; levels are only upsampled"
            )

        self.ignore_value = ignore_value
        self.common_stride = common_stride
        self.loss_weight = loss_weight

        # a plain list: the towers are registered under their feature names (checkpoint names)
        self.scale_heads: list[nn.Module] = []
        for in_feature, stride, channels in zip(self.in_features, feature_strides, feature_channels):
            head_ops: list[nn.Module] = []
            head_length = max(1, int(math.log2(stride) - math.log2(self.common_stride)))
            for k in range(head_length):
                conv = Conv2d(channels if k == 0 else conv_dims, conv_dims, kernel_size=3, stride=1, padding=1,
                              bias=not norm, norm=get_norm(norm, conv_dims), activation=F.relu)
                c2_msra_fill(conv)
                head_ops.append(conv)
                if stride != self.common_stride:
                    head_ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*head_ops))
            self.add_module(in_feature, self.scale_heads[-1])
        self.predictor = Conv2d(conv_dims, num_classes, kernel_size=1, stride=1, padding=0)
        c2_msra_fill(self.predictor)

    def class_dependent_parameters(self) -> list[str]:
        """The predictor: one channel per semantic class (see
        :func:`det.checkpoint.class_dependent_parameter_names`)."""
        return ["predictor.weight", "predictor.bias"]

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        wanted = check_in_features("MODEL.SEM_SEG_HEAD.IN_FEATURES", cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES, input_shape)
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in wanted},
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "conv_dims": cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM,
            "common_stride": cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE,
            "norm": cfg.MODEL.SEM_SEG_HEAD.NORM,
            "loss_weight": cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT,
        }

    def forward(
        self, features: dict[str, Tensor], targets: Tensor | None = None
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """
        Args:
            features: the backbone features (at least ``in_features``).
            targets: training only, (N, H, W) int64 labels at the padded input resolution.

        Returns:
            training: ``(None, {"loss_sem_seg": Tensor})``; eval: ``((N, C, H, W) logits, {})``.
        """
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise ValueError(f"SemSegFPNHead needs features {self.in_features}; missing {missing}")
        x = self.layers(features)
        if self.training:
            if targets is None:
                raise ValueError("SemSegFPNHead in training mode needs targets: (N, H, W) int64 class ids")
            return None, self.losses(x, targets)
        x = F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        return x, {}

    def layers(self, features: dict[str, Tensor]) -> Tensor:
        """Logits at ``common_stride``: the sum of every level's tower, then ``predictor``."""
        x = self.scale_heads[0](features[self.in_features[0]])
        for head, f in zip(self.scale_heads[1:], self.in_features[1:]):
            x = x + head(features[f])
        logits: Tensor = self.predictor(x)
        return logits

    def losses(self, predictions: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Pixel-wise cross-entropy (mean over non-ignored pixels) times ``loss_weight``."""
        predictions = predictions.float()  # fp16 interpolation then cross-entropy loses too much
        predictions = F.interpolate(predictions, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        if targets.shape[-2:] != predictions.shape[-2:] or targets.shape[0] != predictions.shape[0]:
            raise ValueError(
                f"SemSegFPNHead: targets of shape {tuple(targets.shape)} do not match the predictions "
                f"(N, H, W) = {(predictions.shape[0], *predictions.shape[-2:])}; pad them like the images"
            )
        num_classes = predictions.shape[1]
        labels = targets[targets != self.ignore_value]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(
                f"SemSegFPNHead: sem_seg labels must be in [0, {num_classes}) or ignore_value "
                f"{self.ignore_value}; got values in [{int(labels.min())}, {int(labels.max())}]"
            )
        loss = F.cross_entropy(predictions, targets, reduction="mean", ignore_index=self.ignore_value)
        return {"loss_sem_seg": loss * self.loss_weight}


class SemanticSegmentor(nn.Module):
    """Backbone + semantic segmentation head.

    Invariant: in training ``forward`` returns the head's losses (``loss_sem_seg``), inside an
    EventStorage; in eval one ``{"sem_seg": (num_classes, H, W) logits}`` per input, cropped
    to the image and resized to its ``height``/``width``::

        model = build_model(cfg)    # cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"
        with EventStorage(0):
            losses = model([{"image": img, "sem_seg": labels_hw}])
        model.eval()([{"image": img}])[0]["sem_seg"].argmax(0)   # (H, W) class ids
    """

    # the (C, 1, 1) buffers of register_pixel_normalization
    pixel_mean: Tensor
    pixel_std: Tensor

    @configurable
    def __init__(self, *, backbone: nn.Module, sem_seg_head: nn.Module, pixel_mean: tuple[float, ...],
                 pixel_std: tuple[float, ...]) -> None:
        """
        Args:
            backbone: a det Backbone.
            sem_seg_head: maps the backbone features (and targets) to (logits, losses); must have
                ``ignore_value``.
            pixel_mean, pixel_std: per-channel normalisation of the input image.
        """
        super().__init__()
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        register_pixel_normalization(self, pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        backbone = build_backbone(cfg)
        sem_seg_head = build_sem_seg_head(cfg, backbone.output_shape())
        return {
            "backbone": backbone,
            "sem_seg_head": sem_seg_head,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(self, batched_inputs: list[dict[str, Tensor]]) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """
        Args:
            batched_inputs: one dict per image: "image" (C, H, W); "sem_seg" (H, W) integer class
                ids for training; optional "height"/"width" (output size).

        Returns:
            training: dict of losses. eval: list of ``{"sem_seg": (C, height, width) logits}``.
        """
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0])
        if self.training:
            require_event_storage(type(self).__name__)

        images = normalize_and_pad_images(batched_inputs, self.pixel_mean, self.pixel_std, self.backbone)
        features = self.backbone(images.tensor)

        if self.training or "sem_seg" in batched_inputs[0]:
            targets = _pad_sem_seg_targets(
                batched_inputs, self.backbone, cast(int, self.sem_seg_head.ignore_value), self.pixel_mean
            )
        else:
            targets = None
        losses: dict[str, Tensor]
        results, losses = self.sem_seg_head(features, targets)

        if self.training:
            return losses

        processed_results = []
        for result, input_per_image, image_size in zip(results, batched_inputs, images.image_sizes):
            # detectron2 annotates the inputs' values Tensor; "height" and "width" are ints
            height = cast(int, input_per_image.get("height", image_size[0]))
            width = cast(int, input_per_image.get("width", image_size[1]))
            r = sem_seg_postprocess(result, image_size, height, width)
            processed_results.append({"sem_seg": r})
        return processed_results
