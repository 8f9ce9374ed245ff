"""RetinaNet (:paper:`RetinaNet`, Lin et al. 2017): ``RetinaNet`` and its head ``RetinaNetHead``.

Shape shorthand: N images, L feature levels, A anchors per position, K classes, R the number of
anchors of an image over all levels (sum of Hi*Wi*A).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.layers import CycleBatchNormList, ShapeSpec, batched_nms, cat, get_norm, sigmoid_focal_loss_jit
from det.core.modeling import (
    BOX_REG_LOSS_TYPES,
    Box2BoxTransform,
    Matcher,
    _dense_box_regression_loss,
    build_anchor_generator,
    build_backbone,
)
from det.core.modeling.backbone import check_in_features
from det.heads.retinanet.dense_detector import DenseDetector
from det.structures import Boxes, ImageList, Instances, pairwise_iou

__all__ = ["RetinaNet", "RetinaNetHead"]

logger = logging.getLogger(__name__)



class RetinaNetHead(nn.Module):
    """Two parallel conv towers (classification and box regression) shared by every level.

    Invariant: for L input levels (N, C, Hi, Wi), ``forward`` returns L logit maps
    (N, A*num_classes, Hi, Wi) and L delta maps (N, A*4, Hi, Wi); the towers are
    ``cls_subnet`` / ``bbox_subnet`` (``nn.Sequential`` of conv, [norm,] ReLU) and the predictors
    ``cls_score`` / ``bbox_pred`` (3x3 convs), as in detectron2::

        head = RetinaNetHead(input_shape=[ShapeSpec(channels=16)] * 5, num_classes=80,
                             num_anchors=9, conv_dims=[16] * 4)
        logits, deltas = head([torch.rand(1, 16, 32, 32)] * 5)  # 5 x (1, 720, 32, 32), 5 x (1, 36, 32, 32)
    """

    # final layers: they stay float32 under fast mode's bfloat16 (det.core.fast's protocol)
    float32_layers = ("cls_score", "bbox_pred")

    @configurable
    def __init__(
        self,
        *,
        input_shape: list[ShapeSpec],
        num_classes: int,
        num_anchors: int,
        conv_dims: list[int],
        norm: str = "",
        prior_prob: float = 0.01,
    ) -> None:
        """
        Args:
            input_shape: shape of each input level (all must have the same channels).
            num_classes: K, the number of foreground classes (no background logit: sigmoid).
            num_anchors: A, anchors per position (the same on every level).
            conv_dims: output channels of each conv of both towers.
            norm: normalisation after each tower conv (a get_norm name). "BN"/"SyncBN" get
                separate statistics per level (:class:`CycleBatchNormList`).
            prior_prob: initial foreground probability of every logit; the bias is set so that
                the huge number of background anchors does not swamp the first iterations.
        """
        super().__init__()
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) == 0:
            raise ValueError("RetinaNetHead: input_shape must be a non-empty list of ShapeSpec, one per level")
        if len({s.channels for s in input_shape}) != 1:
            raise ValueError(
                "RetinaNetHead is shared across levels, so every level needs the same channels; got "
                f"{[s.channels for s in input_shape]} (one per level)"
            )
        for name, value in (("num_classes", num_classes), ("num_anchors", num_anchors)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"RetinaNetHead: {name} must be a positive int, got {value!r}")
        if not 0.0 < prior_prob < 1.0:
            raise ValueError(f"RetinaNetHead: prior_prob must be in (0, 1), got {prior_prob}")
        conv_dims = list(conv_dims)
        self._num_features = len(input_shape)

        norm_spec: str | Callable[[int], nn.Module] = norm
        if norm in ("BN", "SyncBN"):
            logger.info(f"Using domain-specific {norm} in RetinaNetHead with len={self._num_features}.")
            bn_class = nn.BatchNorm2d if norm == "BN" else nn.SyncBatchNorm

            def cycle_bn_norm(c: int) -> nn.Module:  # a factory get_norm accepts in place of the name
                return CycleBatchNormList(length=self._num_features, bn_class=bn_class, num_features=c)

            norm_spec = cycle_bn_norm
        elif norm:
            norm_name = type(get_norm(norm, 32)).__name__
            if "BN" in norm_name or "BatchNorm" in norm_name:
                logger.warning(f"Shared BatchNorm (type={norm_name}) may not work well in RetinaNetHead.")

        in_channels = cast(int, input_shape[0].channels)  # the head needs its input channels known
        cls_subnet: list[nn.Module] = []
        bbox_subnet: list[nn.Module] = []
        for c_in, c_out in zip([in_channels, *conv_dims], conv_dims):
            cls_subnet.append(nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1))
            if norm_spec:  # then get_norm makes a module (None is for an empty name)
                cls_subnet.append(cast(nn.Module, get_norm(norm_spec, c_out)))
            cls_subnet.append(nn.ReLU())
            bbox_subnet.append(nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1))
            if norm_spec:
                bbox_subnet.append(cast(nn.Module, get_norm(norm_spec, c_out)))
            bbox_subnet.append(nn.ReLU())

        self.cls_subnet = nn.Sequential(*cls_subnet)
        self.bbox_subnet = nn.Sequential(*bbox_subnet)
        last_dim = conv_dims[-1] if conv_dims else in_channels
        self.cls_score = nn.Conv2d(last_dim, num_anchors * num_classes, kernel_size=3, stride=1, padding=1)
        self.bbox_pred = nn.Conv2d(last_dim, num_anchors * 4, kernel_size=3, stride=1, padding=1)

        for modules in [self.cls_subnet, self.bbox_subnet, self.cls_score, self.bbox_pred]:
            for layer in modules.modules():
                if isinstance(layer, nn.Conv2d):
                    nn.init.normal_(layer.weight, mean=0, std=0.01)
                    nn.init.constant_(cast(Tensor, layer.bias), 0)  # every conv here has a bias

        # sigmoid(bias) == prior_prob at the start (focal loss paper, section 4.1 "Initialization")
        bias_value = -math.log((1 - prior_prob) / prior_prob)
        nn.init.constant_(cast(Tensor, self.cls_score.bias), bias_value)

    def class_dependent_parameters(self) -> list[str]:
        """The classification layer: ``num_anchors * num_classes`` outputs (see
        :func:`det.checkpoint.class_dependent_parameter_names`)."""
        return ["cls_score.weight", "cls_score.bias"]

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        # build_anchor_generator (det.core.modeling) is not annotated yet
        num_anchors = cast("Callable[..., Any]", build_anchor_generator)(cfg, input_shape).num_cell_anchors
        if len(set(num_anchors)) != 1:
            raise ValueError(
                "RetinaNetHead needs the same number of anchors per position on every level; "
                f"MODEL.ANCHOR_GENERATOR makes {num_anchors}"
            )
        return {
            "input_shape": input_shape,
            "num_classes": cfg.MODEL.RETINANET.NUM_CLASSES,
            "conv_dims": [input_shape[0].channels] * cfg.MODEL.RETINANET.NUM_CONVS,
            "prior_prob": cfg.MODEL.RETINANET.PRIOR_PROB,
            "norm": cfg.MODEL.RETINANET.NORM,
            "num_anchors": num_anchors[0],
        }

    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """
        Args:
            features: the L feature maps (N, C, Hi, Wi), in the order of ``input_shape``.

        Returns:
            L logit maps (N, A*K, Hi, Wi) and L box-delta maps (N, A*4, Hi, Wi).
        """
        if not isinstance(features, (list, tuple)) or len(features) != self._num_features:
            got = len(features) if isinstance(features, (list, tuple)) else type(features).__name__
            raise ValueError(f"RetinaNetHead was built for {self._num_features} feature levels, got {got}")
        logits = []
        bbox_reg = []
        for feature in features:
            logits.append(self.cls_score(self.cls_subnet(feature)))
            bbox_reg.append(self.bbox_pred(self.bbox_subnet(feature)))
        return logits, bbox_reg


class RetinaNet(DenseDetector):
    """One-stage detector: dense anchors, sigmoid focal loss, per-level top-k + class-wise NMS.

    Invariant: training returns ``{"loss_cls", "loss_box_reg"}`` both divided by
    ``loss_normalizer``, an EMA (momentum 0.9, start 100) of the number of foreground anchors,
    and puts ``num_pos_anchors`` (per image) into the EventStorage; inference returns at most
    ``max_detections_per_image`` instances per image, by decreasing score::

        model = build_model(cfg)    # cfg.MODEL.META_ARCHITECTURE = "RetinaNet"
        with EventStorage(0):
            losses = model([{"image": img, "instances": gt}])   # loss_cls, loss_box_reg
        model.eval()([{"image": img}])[0]["instances"].pred_boxes
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        head_in_features: list[str],
        anchor_generator: nn.Module,
        box2box_transform: Box2BoxTransform,
        anchor_matcher: Matcher,
        num_classes: int,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        test_score_thresh: float = 0.05,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.5,
        max_detections_per_image: int = 100,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
        vis_period: int = 0,
        input_format: str = "BGR",
    ) -> None:
        """
        Args:
            backbone: a det Backbone.
            head: predicts (logits, deltas) per level from the list of ``head_in_features``.
            head_in_features: names of the backbone features the head reads.
            anchor_generator: makes the anchors of the head's feature levels.
            box2box_transform: anchor <-> box encoding of the deltas.
            anchor_matcher: labels each anchor foreground / background / ignored by IoU.
            num_classes: K; label K means background.
            focal_loss_alpha, focal_loss_gamma: of the sigmoid focal loss.
            smooth_l1_beta: beta of the smooth L1 box loss (0 = L1).
            box_reg_loss_type: "smooth_l1", "giou", "diou" or "ciou".
            test_score_thresh: candidates need a score > this.
            test_topk_candidates: candidates kept per level before NMS.
            test_nms_thresh: IoU threshold of the class-wise NMS.
            max_detections_per_image: detections kept per image after NMS.
            pixel_mean, pixel_std: per-channel normalisation of the input image.
            vis_period, input_format: as detectron2's; ``input_format`` is used by
                :meth:`visualize_training`, which (as in detectron2 v0.6) training does not call.
        """
        super().__init__(backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std)
        if box_reg_loss_type not in BOX_REG_LOSS_TYPES:
            raise ValueError(
                f"RetinaNet: invalid box_reg_loss_type {box_reg_loss_type!r}; expected one of {BOX_REG_LOSS_TYPES}"
            )
        if len(self.backbone.output_shape()) != len(self.head_in_features):
            logger.warning("[RetinaNet] Backbone produces unused features.")
        self.num_classes = num_classes

        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.anchor_matcher = anchor_matcher

        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma
        self.smooth_l1_beta = smooth_l1_beta
        self.box_reg_loss_type = box_reg_loss_type

        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

        self.vis_period = vis_period
        self.input_format = input_format

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        backbone = build_backbone(cfg)
        backbone_shape = backbone.output_shape()
        check_in_features("MODEL.RETINANET.IN_FEATURES", cfg.MODEL.RETINANET.IN_FEATURES, backbone_shape)
        feature_shapes = [backbone_shape[f] for f in cfg.MODEL.RETINANET.IN_FEATURES]
        head = RetinaNetHead(cfg, feature_shapes)
        anchor_generator = cast("Callable[..., Any]", build_anchor_generator)(cfg, feature_shapes)
        return {
            "backbone": backbone,
            "head": head,
            "anchor_generator": anchor_generator,
            "box2box_transform": Box2BoxTransform(weights=cfg.MODEL.RETINANET.BBOX_REG_WEIGHTS),
            "anchor_matcher": Matcher(
                cfg.MODEL.RETINANET.IOU_THRESHOLDS,
                cfg.MODEL.RETINANET.IOU_LABELS,
                allow_low_quality_matches=True,
            ),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "num_classes": cfg.MODEL.RETINANET.NUM_CLASSES,
            "head_in_features": cfg.MODEL.RETINANET.IN_FEATURES,
            "focal_loss_alpha": cfg.MODEL.RETINANET.FOCAL_LOSS_ALPHA,
            "focal_loss_gamma": cfg.MODEL.RETINANET.FOCAL_LOSS_GAMMA,
            "smooth_l1_beta": cfg.MODEL.RETINANET.SMOOTH_L1_LOSS_BETA,
            "box_reg_loss_type": cfg.MODEL.RETINANET.BBOX_REG_LOSS_TYPE,
            "test_score_thresh": cfg.MODEL.RETINANET.SCORE_THRESH_TEST,
            "test_topk_candidates": cfg.MODEL.RETINANET.TOPK_CANDIDATES_TEST,
            "test_nms_thresh": cfg.MODEL.RETINANET.NMS_THRESH_TEST,
            "max_detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "vis_period": cfg.VIS_PERIOD,
            "input_format": cfg.INPUT.FORMAT,
        }

    def forward_training(
        self,
        images: ImageList,
        features: list[Tensor],
        predictions: list[list[Tensor]],
        gt_instances: list[Instances],
    ) -> dict[str, Tensor]:
        self._check_gt_instances(gt_instances, self.num_classes, "MODEL.RETINANET.NUM_CLASSES")
        pred_logits, pred_anchor_deltas = self._transpose_dense_predictions(predictions, [self.num_classes, 4])
        anchors = self.anchor_generator(features)
        self._check_predictions_match_anchors(anchors, pred_logits, pred_anchor_deltas)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes)

    def _check_predictions_match_anchors(
        self, anchors: list[Boxes], pred_logits: list[Tensor], pred_anchor_deltas: list[Tensor]
    ) -> None:
        # a head built for another number of anchors per position reshapes without complaint,
        # then fails deep in torch (or silently mislabels); say what disagrees instead
        for level, (a, logits, deltas) in enumerate(zip(anchors, pred_logits, pred_anchor_deltas)):
            if logits.shape[1] != len(a) or deltas.shape[1] != len(a):
                raise ValueError(
                    f"RetinaNet level {self.head_in_features[level]!r}: the anchor generator made {len(a)} "
                    f"anchors but the head predicted {logits.shape[1]} class rows and {deltas.shape[1]} box "
                    "rows; the head's num_anchors must equal anchor_generator.num_cell_anchors"
                )

    def losses(
        self,
        anchors: list[Boxes],
        pred_logits: list[Tensor],
        gt_labels: list[Tensor],
        pred_anchor_deltas: list[Tensor],
        gt_boxes: list[Tensor],
    ) -> dict[str, Tensor]:
        """
        Args:
            anchors: list[Boxes], one per level.
            pred_logits, pred_anchor_deltas: per level, (N, Hi*Wi*A, K) and (N, Hi*Wi*A, 4).
            gt_labels, gt_boxes: from :meth:`label_anchors`, per image (R,) and (R, 4).

        Returns:
            ``{"loss_cls", "loss_box_reg"}``: sums over anchors divided by the EMA normaliser.
        """
        num_images = len(gt_labels)
        gt_labels_all = torch.stack(gt_labels)  # (N, R)

        valid_mask = gt_labels_all >= 0
        pos_mask = (gt_labels_all >= 0) & (gt_labels_all != self.num_classes)
        num_pos_anchors = pos_mask.sum().item()
        get_event_storage().put_scalar("num_pos_anchors", num_pos_anchors / num_images)
        normalizer = self._ema_update("loss_normalizer", max(num_pos_anchors, 1), 100)

        # one-hot over K+1 then drop the background column: background anchors are all-zero targets
        gt_labels_target = F.one_hot(gt_labels_all[valid_mask], num_classes=self.num_classes + 1)[:, :-1]
        loss_cls = sigmoid_focal_loss_jit(
            cat(pred_logits, dim=1)[valid_mask],
            gt_labels_target.to(pred_logits[0].dtype),
            alpha=self.focal_loss_alpha,
            gamma=self.focal_loss_gamma,
            reduction="sum",
        )
        loss_box_reg = _dense_box_regression_loss(
            anchors, self.box2box_transform, pred_anchor_deltas, gt_boxes, pos_mask,
            box_reg_loss_type=self.box_reg_loss_type, smooth_l1_beta=self.smooth_l1_beta,
        )
        return {"loss_cls": loss_cls / normalizer, "loss_box_reg": loss_box_reg / normalizer}

    @torch.no_grad()
    def label_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Match every anchor of every image with the ground truth.

        Returns:
            list[Tensor]: per image, (R,) int64 labels: a class in [0, K), K = background, -1 =
            ignored (IoU between the matcher's thresholds).
            list[Tensor]: per image, (R, 4) the matched ground-truth box of each anchor
            (meaningless for background anchors).
        """
        all_anchors = Boxes.cat(anchors)  # (R, 4)

        gt_labels = []
        matched_gt_boxes = []
        for gt_per_image in gt_instances:
            match_quality_matrix = pairwise_iou(gt_per_image.gt_boxes, all_anchors)
            matched_idxs, anchor_labels = self.anchor_matcher(match_quality_matrix)
            del match_quality_matrix  # (G, R) can be large; free it before the next image

            if len(gt_per_image) > 0:
                matched_gt_boxes_i = gt_per_image.gt_boxes.tensor[matched_idxs]
                gt_labels_i = gt_per_image.gt_classes[matched_idxs]
                gt_labels_i[anchor_labels == 0] = self.num_classes
                gt_labels_i[anchor_labels == -1] = -1
            else:
                matched_gt_boxes_i = torch.zeros_like(all_anchors.tensor)
                gt_labels_i = torch.zeros_like(matched_idxs) + self.num_classes

            gt_labels.append(gt_labels_i)
            matched_gt_boxes.append(matched_gt_boxes_i)
        return gt_labels, matched_gt_boxes

    def forward_inference(
        self, images: ImageList, features: list[Tensor], predictions: list[list[Tensor]]
    ) -> list[Instances]:
        pred_logits, pred_anchor_deltas = self._transpose_dense_predictions(predictions, [self.num_classes, 4])
        anchors = self.anchor_generator(features)
        self._check_predictions_match_anchors(anchors, pred_logits, pred_anchor_deltas)

        results: list[Instances] = []
        for img_idx, image_size in enumerate(images.image_sizes):
            scores_per_image = [x[img_idx].sigmoid_() for x in pred_logits]
            deltas_per_image = [x[img_idx] for x in pred_anchor_deltas]
            results.append(self.inference_single_image(anchors, scores_per_image, deltas_per_image, image_size))
        return results

    def inference_single_image(
        self,
        anchors: list[Boxes],
        box_cls: list[Tensor],
        box_delta: list[Tensor],
        image_size: tuple[int, int],
    ) -> Instances:
        """Detections of one image: per-level top-k candidates, class-wise NMS, best
        ``max_detections_per_image``.

        Args:
            anchors: per level, (Hi*Wi*A) Boxes.
            box_cls: per level, (Hi*Wi*A, K) probabilities.
            box_delta: per level, (Hi*Wi*A, 4) deltas.
            image_size: (height, width) of the image before padding.
        """
        pred = self._decode_multi_level_predictions(
            anchors, box_cls, box_delta, self.test_score_thresh, self.test_topk_candidates, image_size
        )
        keep = batched_nms(pred.pred_boxes.tensor, pred.scores, pred.pred_classes, self.test_nms_thresh)
        return pred[keep[: self.max_detections_per_image]]
