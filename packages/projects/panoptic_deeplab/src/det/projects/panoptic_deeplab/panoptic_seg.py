"""Panoptic-DeepLab (:paper:`Panoptic-DeepLab`): the ``PanopticDeepLab`` meta-architecture, its
semantic head ``PanopticDeepLabSemSegHead`` and its instance head
``PanopticDeepLabInsEmbedHead`` (center heatmap + offsets), both DeepLabV3+ decoders of
det-deeplab, and the ``INS_EMBED_BRANCHES`` registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.layers import ShapeSpec, move_device_like
from det.core.modeling import build_backbone, build_sem_seg_head, sem_seg_postprocess
from det.core.modeling.inputs import check_batched_inputs, require_event_storage
from det.core.registry import Registry, get_component
from det.projects.deeplab.semantic_seg import (
    DeepLabV3PlusHead,
    build_sem_seg_loss,
    decoder_args_from_config,
    predictor_conv,
    separable_conv5x5,
    two_conv3x3,
)
from det.projects.panoptic_deeplab.post_processing import get_panoptic_segmentation
from det.structures import BitMasks, ImageList, Instances

__all__ = [
    "INS_EMBED_BRANCHES_REGISTRY",
    "PanopticDeepLab",
    "PanopticDeepLabInsEmbedHead",
    "PanopticDeepLabSemSegHead",
    "build_ins_embed_branch",
]

INS_EMBED_BRANCHES_REGISTRY = Registry(
    "INS_EMBED_BRANCHES",
    """Instance embedding branches: from the backbone's features to Panoptic-DeepLab's center
    heatmap and offsets. Called with ``(cfg, input_shape)``; ``MODEL.INS_EMBED_HEAD.NAME`` picks one.""",
)


def build_ins_embed_branch(cfg: Any, input_shape: dict[str, ShapeSpec]) -> nn.Module:
    """The instance embedding branch named by ``cfg.MODEL.INS_EMBED_HEAD.NAME`` (a component of
    kind ``INS_EMBED_BRANCHES``: declared by a plugin or registered in-process)."""
    return get_component("INS_EMBED_BRANCHES", cfg.MODEL.INS_EMBED_HEAD.NAME)(cfg, input_shape)


def _pad_stack(tensors: list[torch.Tensor], size_divisibility: int, pad_value: float = 0.0) -> torch.Tensor:
    return ImageList.from_tensors(tensors, size_divisibility, pad_value).tensor


class PanopticDeepLab(nn.Module):
    """Backbone + semantic head + instance (center/offset) head; panoptic ids by grouping.

    Invariant: in training ``forward`` returns ``loss_sem_seg``, ``loss_center`` and
    ``loss_offset`` (inputs carry ``sem_seg``, ``center``, ``center_weights``, ``offset``,
    ``offset_weights`` and optionally ``sem_seg_weights``: what :class:`PanopticDeeplabDatasetMapper`
    makes); in eval, per image, ``sem_seg`` (C, H, W) logits, ``panoptic_seg`` ((H, W) ids
    ``class * label_divisor + instance``, -1 void; ``None`` segments_info, as detectron2) and, with
    ``predict_instances``, ``instances`` (one per thing segment) when there are any::

        model = build_model(cfg)   # cfg.MODEL.META_ARCHITECTURE = "PanopticDeepLab"
        out = model.eval()([{"image": img}])[0]
        ids, _ = out["panoptic_seg"]

    The thing classes and ``label_divisor`` come from the metadata of ``DATASETS.TRAIN[0]``.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        sem_seg_head: nn.Module,
        ins_embed_head: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        meta: Any,
        stuff_area: int,
        threshold: float,
        nms_kernel: int,
        top_k: int,
        predict_instances: bool = True,
        use_depthwise_separable_conv: bool = False,
        size_divisibility: int = -1,
        benchmark_network_speed: bool = False,
    ) -> None:
        """
        Args:
            backbone, sem_seg_head, ins_embed_head: the parts (attribute names as detectron2's).
            pixel_mean, pixel_std: per-channel normalisation of the input image.
            meta: dataset metadata with ``thing_dataset_id_to_contiguous_id`` and ``label_divisor``
                (read at inference).
            stuff_area, threshold, nms_kernel, top_k: post-processing (``MODEL.PANOPTIC_DEEPLAB.*``).
            predict_instances: also return ``instances``.
            size_divisibility: pad images to a multiple of it (> 0), else the backbone's.
            benchmark_network_speed: eval returns ``[]`` (no post-processing).
        """
        super().__init__()
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        self.ins_embed_head = ins_embed_head
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.meta = meta
        self.stuff_area = stuff_area
        self.threshold = threshold
        self.nms_kernel = nms_kernel
        self.top_k = top_k
        self.predict_instances = predict_instances
        self.use_depthwise_separable_conv = use_depthwise_separable_conv
        self.size_divisibility = size_divisibility
        self.benchmark_network_speed = benchmark_network_speed

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        from det.data import MetadataCatalog

        p = cfg.MODEL.PANOPTIC_DEEPLAB
        if cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV != p.USE_DEPTHWISE_SEPARABLE_CONV:
            raise ValueError(
                "MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV "
                f"({cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV}) and MODEL.PANOPTIC_DEEPLAB."
                f"USE_DEPTHWISE_SEPARABLE_CONV ({p.USE_DEPTHWISE_SEPARABLE_CONV}) must be equal")
        if not cfg.DATASETS.TRAIN:
            raise ValueError("PanopticDeepLab reads its thing classes from the metadata of DATASETS.TRAIN[0]; "
                             "DATASETS.TRAIN is empty")
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "sem_seg_head": build_sem_seg_head(cfg, backbone.output_shape()),
            "ins_embed_head": build_ins_embed_branch(cfg, backbone.output_shape()),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "meta": MetadataCatalog.get(cfg.DATASETS.TRAIN[0]),
            "stuff_area": p.STUFF_AREA,
            "threshold": p.CENTER_THRESHOLD,
            "nms_kernel": p.NMS_KERNEL,
            "top_k": p.TOP_K_INSTANCE,
            "predict_instances": p.PREDICT_INSTANCES,
            "use_depthwise_separable_conv": p.USE_DEPTHWISE_SEPARABLE_CONV,
            "size_divisibility": p.SIZE_DIVISIBILITY,
            "benchmark_network_speed": p.BENCHMARK_NETWORK_SPEED,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _thing_ids_and_divisor(self) -> tuple[list[int], int]:
        name = getattr(self.meta, "name", "?")
        mapping = getattr(self.meta, "thing_dataset_id_to_contiguous_id", None)
        divisor = getattr(self.meta, "label_divisor", None)
        if mapping is None or divisor is None:
            raise ValueError(
                f"PanopticDeepLab needs the metadata of dataset {name!r} (DATASETS.TRAIN[0]) to have "
                "'thing_dataset_id_to_contiguous_id' and 'label_divisor' (set them with "
                f"MetadataCatalog.get({name!r}).set(...) or register the dataset)")
        return [int(v) for v in mapping.values()], int(divisor)

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: one dict per image: "image" (C, H, W); for training "sem_seg",
                "center", "center_weights", "offset", "offset_weights" (and "sem_seg_weights");
                optional "height"/"width" (output size).

        Returns:
            training: dict of losses; eval: list of dicts (see the class docstring).
        """
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0])
        if self.training:
            require_event_storage(type(self).__name__)
            missing = [k for k in ("sem_seg", "center", "center_weights", "offset", "offset_weights")
                       if k not in batched_inputs[0]]
            if missing:
                raise ValueError(f"PanopticDeepLab training needs {missing} in each input (keys: "
                                 f"{sorted(batched_inputs[0])}); PanopticDeeplabDatasetMapper makes them")
        images = [(move_device_like(x["image"], self.pixel_mean) - self.pixel_mean) / self.pixel_std
                  for x in batched_inputs]
        # one padding for images and targets; a fixed multiple keeps ASPP's pooling window valid
        size_divisibility = self.size_divisibility if self.size_divisibility > 0 else self.backbone.size_divisibility
        image_list = ImageList.from_tensors(images, size_divisibility)
        features = self.backbone(image_list.tensor)

        def batch(key: str, pad_value: float = 0.0) -> torch.Tensor:
            return _pad_stack([move_device_like(x[key], self.pixel_mean) for x in batched_inputs],
                              size_divisibility, pad_value)

        losses: dict[str, torch.Tensor] = {}
        targets = weights = None
        if "sem_seg" in batched_inputs[0]:
            targets = batch("sem_seg", self.sem_seg_head.ignore_value).long()
            if "sem_seg_weights" in batched_inputs[0]:
                weights = batch("sem_seg_weights")
        sem_seg_results, sem_seg_losses = self.sem_seg_head(features, targets, weights)
        losses.update(sem_seg_losses)

        if "center" in batched_inputs[0] and "offset" in batched_inputs[0]:
            center_targets = batch("center")[:, None]
            center_weights = batch("center_weights")
            offset_targets = batch("offset")
            offset_weights = batch("offset_weights")
        else:
            center_targets = center_weights = offset_targets = offset_weights = None
        center_results, offset_results, center_losses, offset_losses = self.ins_embed_head(
            features, center_targets, center_weights, offset_targets, offset_weights)
        losses.update(center_losses)
        losses.update(offset_losses)

        if self.training:
            return losses
        if self.benchmark_network_speed:
            return []
        thing_ids, label_divisor = self._thing_ids_and_divisor()
        return [
            self._postprocess(sem, center, offset, x, size, thing_ids, label_divisor)
            for sem, center, offset, x, size in zip(
                sem_seg_results, center_results, offset_results, batched_inputs, image_list.image_sizes)
        ]

    def _postprocess(self, sem_seg: torch.Tensor, center: torch.Tensor, offset: torch.Tensor,
                     input_per_image: dict[str, Any], image_size: tuple[int, int], thing_ids: list[int],
                     label_divisor: int) -> dict[str, Any]:
        height = input_per_image.get("height", image_size[0])
        width = input_per_image.get("width", image_size[1])
        r = sem_seg_postprocess(sem_seg, image_size, height, width)
        c = sem_seg_postprocess(center, image_size, height, width)
        o = sem_seg_postprocess(offset, image_size, height, width)
        panoptic, _ = get_panoptic_segmentation(
            r.argmax(dim=0, keepdim=True), c, o, thing_ids=thing_ids, label_divisor=label_divisor,
            stuff_area=self.stuff_area, void_label=-1, threshold=self.threshold, nms_kernel=self.nms_kernel,
            top_k=self.top_k,
        )  # fmt: skip
        panoptic = panoptic[0]
        result: dict[str, Any] = {"sem_seg": r, "panoptic_seg": (panoptic, None)}
        if not self.predict_instances:
            return result
        semantic_prob = F.softmax(r, dim=0)
        instances = []
        for label in np.unique(panoptic.cpu().numpy()).tolist():
            if label == -1:
                continue
            pred_class = label // label_divisor
            if pred_class not in thing_ids:
                continue
            mask = panoptic == label
            instance = Instances((height, width))
            instance.pred_classes = torch.tensor([pred_class], device=panoptic.device)
            instance.pred_masks = mask[None]
            # score: mean semantic probability of the class over the mask x center heatmap at
            # the mask's centroid
            sem_score = semantic_prob[pred_class][mask].mean()
            ys, xs = torch.nonzero(mask, as_tuple=True)
            center_score = c[0, int(ys.float().mean().item()), int(xs.float().mean().item())]
            instance.scores = torch.stack([sem_score * center_score])
            instance.pred_boxes = BitMasks(instance.pred_masks).get_bounding_boxes()
            instances.append(instance)
        if instances:
            result["instances"] = Instances.cat(instances)
        return result


class PanopticDeepLabSemSegHead(DeepLabV3PlusHead):
    """Panoptic-DeepLab's semantic head: a decoder-only :class:`DeepLabV3PlusHead`, then ``head``
    (two 3x3 convs to ``head_channels``, or one 5x5 depthwise-separable conv) and a 1x1
    ``predictor``. Its loss takes per-pixel ``weights`` (small instances weigh more).

    Invariant: state-dict keys are detectron2's (``decoder.*``, ``head.*``, ``predictor.*``);
    eval returns ((N, C, H, W) logits at the input resolution, {}), training (None, losses)::

        head = PanopticDeepLabSemSegHead(cfg, backbone.output_shape())
        logits, _ = head.eval()(features)
    """

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        decoder_channels: Sequence[int],
        norm: str | Callable[[int], nn.Module],
        head_channels: int,
        loss_weight: float,
        loss_type: str,
        loss_top_k: float,
        ignore_value: int,
        num_classes: int,
        **kwargs: Any,
    ) -> None:
        """``head_channels``: the extra convs' output; ``loss_top_k``: the hardest-pixel fraction
        of "hard_pixel_mining"; the other arguments as :class:`DeepLabV3PlusHead`'s."""
        super().__init__(input_shape, decoder_channels=decoder_channels, norm=norm, ignore_value=ignore_value,
                         **kwargs)
        assert self.decoder_only
        self.loss_weight = loss_weight
        self.loss_type = loss_type
        if self.use_depthwise_separable_conv:
            self.head: nn.Module = separable_conv5x5(decoder_channels[0], head_channels, norm)
        else:
            self.head = two_conv3x3(decoder_channels[0], decoder_channels[0], head_channels, norm)
        self.predictor = predictor_conv(head_channels, num_classes)
        self.loss = build_sem_seg_loss(loss_type, ignore_value, top_k=loss_top_k)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        ret = super().from_config(cfg, input_shape)
        ret["head_channels"] = cfg.MODEL.SEM_SEG_HEAD.HEAD_CHANNELS
        ret["loss_top_k"] = cfg.MODEL.SEM_SEG_HEAD.LOSS_TOP_K
        return ret

    def forward(self, features: dict[str, torch.Tensor], targets: torch.Tensor | None = None,
                weights: torch.Tensor | None = None) -> Any:
        y = self.layers(features)
        if self.training:
            return None, self.losses(y, targets, weights)
        return F.interpolate(y, scale_factor=self.common_stride, mode="bilinear", align_corners=False), {}

    def layers(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.predictor(self.head(super().layers(features)))

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor | None,  # type: ignore[override]
               weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions.float(), scale_factor=self.common_stride, mode="bilinear",
                                    align_corners=False)
        if targets is None:
            raise ValueError("PanopticDeepLabSemSegHead in training mode needs targets: (N, H, W) int64 class ids")
        if isinstance(self.loss, nn.CrossEntropyLoss):
            if weights is not None:
                raise ValueError("per-pixel sem_seg_weights need MODEL.SEM_SEG_HEAD.LOSS_TYPE='hard_pixel_mining'")
            loss = self.loss(predictions, targets)
        else:
            loss = self.loss(predictions, targets, weights)
        return {"loss_sem_seg": loss * self.loss_weight}


class PanopticDeepLabInsEmbedHead(DeepLabV3PlusHead):
    """Panoptic-DeepLab's instance head: a decoder-only :class:`DeepLabV3PlusHead`, then a center
    branch (``center_head``: two 3x3 convs; ``center_predictor``: 1 channel) and an offset branch
    (``offset_head``: two 3x3 convs or one 5x5 depthwise-separable conv; ``offset_predictor``:
    2 channels, (dy, dx) in pixels of the input).

    Invariant: eval returns ``(center (N, 1, H, W), offset (N, 2, H, W), {}, {})`` at the input
    resolution (offsets scaled by ``common_stride``); training ``(None, None, {"loss_center"},
    {"loss_offset"})``: weighted MSE and L1, each averaged over the weights' sum.
    """

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        decoder_channels: Sequence[int],
        norm: str | Callable[[int], nn.Module],
        head_channels: int,
        center_loss_weight: float,
        offset_loss_weight: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_shape, decoder_channels=decoder_channels, norm=norm, **kwargs)
        assert self.decoder_only
        self.center_loss_weight = center_loss_weight
        self.offset_loss_weight = offset_loss_weight
        self.center_head = two_conv3x3(decoder_channels[0], decoder_channels[0], head_channels, norm)
        self.center_predictor = predictor_conv(head_channels, 1)
        if self.use_depthwise_separable_conv:
            self.offset_head: nn.Module = separable_conv5x5(decoder_channels[0], head_channels, norm)
        else:
            self.offset_head = two_conv3x3(decoder_channels[0], decoder_channels[0], head_channels, norm)
        self.offset_predictor = predictor_conv(head_channels, 2)
        self.center_loss = nn.MSELoss(reduction="none")
        self.offset_loss = nn.L1Loss(reduction="none")

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        head = cfg.MODEL.INS_EMBED_HEAD
        return {
            **decoder_args_from_config(cfg, "INS_EMBED_HEAD", input_shape),
            "head_channels": head.HEAD_CHANNELS,
            "center_loss_weight": head.CENTER_LOSS_WEIGHT,
            "offset_loss_weight": head.OFFSET_LOSS_WEIGHT,
            # detectron2 reads the semantic head's switch here too
            "use_depthwise_separable_conv": cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV,
        }

    def forward(self, features: dict[str, torch.Tensor], center_targets: torch.Tensor | None = None,
                center_weights: torch.Tensor | None = None, offset_targets: torch.Tensor | None = None,
                offset_weights: torch.Tensor | None = None) -> Any:
        center, offset = self.layers(features)
        if self.training:
            if center_targets is None or center_weights is None or offset_targets is None or offset_weights is None:
                raise ValueError("PanopticDeepLabInsEmbedHead in training mode needs center/offset targets and "
                                 "weights")
            return (None, None, self.center_losses(center, center_targets, center_weights),
                    self.offset_losses(offset, offset_targets, offset_weights))
        center = F.interpolate(center, scale_factor=self.common_stride, mode="bilinear", align_corners=False)
        offset = F.interpolate(offset, scale_factor=self.common_stride, mode="bilinear",
                               align_corners=False) * self.common_stride
        return center, offset, {}, {}

    def layers(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        y = super().layers(features)
        return self.center_predictor(self.center_head(y)), self.offset_predictor(self.offset_head(y))

    @staticmethod
    def _weighted_mean(loss: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        loss = loss * weights
        total = weights.sum()
        return loss.sum() / total if total > 0 else loss.sum() * 0

    def center_losses(self, predictions: torch.Tensor, targets: torch.Tensor,
                      weights: torch.Tensor) -> dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions.float(), scale_factor=self.common_stride, mode="bilinear",
                                    align_corners=False)
        loss = self._weighted_mean(self.center_loss(predictions, targets), weights)
        return {"loss_center": loss * self.center_loss_weight}

    def offset_losses(self, predictions: torch.Tensor, targets: torch.Tensor,
                      weights: torch.Tensor) -> dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions.float(), scale_factor=self.common_stride, mode="bilinear",
                                    align_corners=False) * self.common_stride
        loss = self._weighted_mean(self.offset_loss(predictions, targets), weights)
        return {"loss_offset": loss * self.offset_loss_weight}
