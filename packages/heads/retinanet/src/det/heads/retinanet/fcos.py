"""FCOS (:paper:`fcos`, Tian et al. 2019/2020) as detectron2 builds it: ``FCOS`` and ``FCOSHead``.

One anchor *point* per feature position, represented (as in detectron2) by a square box of side
equal to the level's stride centred on the point, so the anchor generator, the box encoding
(``Box2BoxTransformLinear``: distances to the four sides in units of the stride) and the decoding
shared with RetinaNet apply unchanged.

Shape shorthand: N images, M ground-truth boxes of an image, R anchor points of an image over all
levels, K classes.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.layers import ShapeSpec, batched_nms, sigmoid_focal_loss_jit
from det.core.modeling import Box2BoxTransformLinear, DefaultAnchorGenerator, _dense_box_regression_loss
from det.heads.retinanet.dense_detector import DenseDetector
from det.heads.retinanet.retinanet import RetinaNetHead
from det.structures import Boxes, ImageList, Instances, pairwise_point_box_distance

__all__ = ["FCOS", "FCOSHead"]

logger = logging.getLogger(__name__)


class FCOS(DenseDetector):
    """Anchor-free one-stage detector: per-point classification (focal loss), distances to the box
    sides (GIoU loss) and centerness (BCE), scored as sqrt(class probability x centerness).

    Invariant: a point is foreground for a ground-truth box when it lies inside the box, within
    ``center_sampling_radius`` strides of its centre, and the largest of its four distances falls
    in its level's range ((0, 8s] for the first level, (4s, 8s) in between, (4s, inf) for the last,
    s = the level's stride); among several such boxes it takes the smallest. Training returns
    ``{"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"}``, each divided by an EMA (momentum 0.9,
    start 300) of the foreground points. It is built from keyword arguments (detectron2 configures
    it only through LazyConfig, ``COCO-Detection/fcos_R_50_FPN_1x.py``)::

        model = FCOS(backbone=fpn, head=FCOSHead(input_shape=[ShapeSpec(channels=256)] * 5,
                     conv_dims=[256] * 4, num_classes=80, norm="GN"),
                     head_in_features=["p3", "p4", "p5", "p6", "p7"], num_classes=80,
                     pixel_mean=[103.53, 116.28, 123.675], pixel_std=[1.0, 1.0, 1.0])
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        head_in_features: list[str] | None = None,
        box2box_transform: Box2BoxTransformLinear | None = None,
        num_classes: int,
        center_sampling_radius: float = 1.5,
        focal_loss_alpha: float = 0.25,
        focal_loss_gamma: float = 2.0,
        test_score_thresh: float = 0.2,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.6,
        max_detections_per_image: int = 100,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
    ) -> None:
        """
        Args:
            center_sampling_radius: in strides: how far from a box centre (per axis) a point may
                be and still be foreground for it.
            box2box_transform: default ``Box2BoxTransformLinear(normalize_by_size=True)``.
            The others mean what they mean for :class:`RetinaNet`.
        """
        super().__init__(backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes <= 0:
            raise ValueError(f"FCOS: num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes

        # one point per position, as a stride x stride box: DefaultAnchorGenerator's offset 0.5
        # puts it at the cell centre, where FCOS places its locations
        # a det Backbone, duck-typed as DenseDetector.backbone
        feature_shapes = cast(Any, backbone).output_shape()
        fpn_strides = [feature_shapes[k].stride for k in self.head_in_features]
        self.anchor_generator = DefaultAnchorGenerator(
            sizes=[[k] for k in fpn_strides], aspect_ratios=[1.0], strides=fpn_strides
        )
        if box2box_transform is None:
            box2box_transform = Box2BoxTransformLinear(normalize_by_size=True)
        self.box2box_transform = box2box_transform

        self.center_sampling_radius = float(center_sampling_radius)
        self.focal_loss_alpha = focal_loss_alpha
        self.focal_loss_gamma = focal_loss_gamma

        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        raise ValueError(
            "FCOS has no YAML config keys (detectron2 configures it only through LazyConfig): load "
            "COCO-Detection/fcos_R_50_FPN_1x.py with LazyConfig.load and instantiate(cfg.model), or "
            "build FCOS(backbone=..., head=FCOSHead(...), num_classes=..., pixel_mean=..., pixel_std=...)"
        )

    def forward_training(
        self,
        images: ImageList,
        features: list[Tensor],
        predictions: list[list[Tensor]],
        gt_instances: list[Instances],
    ) -> dict[str, Tensor]:
        self._check_gt_instances(gt_instances, self.num_classes, "FCOS num_classes")
        pred_logits, pred_anchor_deltas, pred_centerness = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4, 1]
        )
        anchors = self.anchor_generator(features)
        gt_labels, gt_boxes = self.label_anchors(anchors, gt_instances)
        return self.losses(anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes, pred_centerness)

    @torch.no_grad()
    def _match_anchors(self, gt_boxes: Boxes, anchors: list[Boxes]) -> Tensor:
        """(M, R) match quality of every ground-truth box with every anchor point: 0 where the
        point may not predict the box (see the class invariant), else ``1e8 - area`` so that
        the smallest eligible box has the highest quality."""
        num_anchors_per_level = [len(x) for x in anchors]
        anchors_cat = Boxes.cat(anchors)  # (R, 4)
        anchor_centers = anchors_cat.get_centers()  # (R, 2)
        anchor_sizes = anchors_cat.tensor[:, 2] - anchors_cat.tensor[:, 0]  # (R,) = the stride

        # each level predicts boxes whose largest point-to-side distance is in (4s, 8s); the
        # first level takes everything smaller, the last everything larger
        lower_bound = anchor_sizes * 4
        lower_bound[: num_anchors_per_level[0]] = 0
        upper_bound = anchor_sizes * 8
        upper_bound[-num_anchors_per_level[-1]:] = float("inf")

        # center sampling: within radius * stride of the box centre along both axes
        gt_centers = gt_boxes.get_centers()  # (M, 2)
        center_dists = (anchor_centers[None, :, :] - gt_centers[:, None, :]).abs_()  # (M, R, 2)
        sampling_regions = self.center_sampling_radius * anchor_sizes[None, :]
        match = center_dists.max(dim=2).values < sampling_regions

        side_dists = pairwise_point_box_distance(anchor_centers, gt_boxes).permute(1, 0, 2)  # (M, R, 4)
        match &= side_dists.min(dim=2).values > 0  # strictly inside the box
        largest = side_dists.max(dim=2).values
        match &= (largest > lower_bound[None, :]) & (largest < upper_bound[None, :])

        quality = match.to(torch.float32)
        quality *= 1e8 - gt_boxes.area()[:, None]
        return quality

    @torch.no_grad()
    def label_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """:meth:`RetinaNet.label_anchors` with FCOS's rule (no ignored points).

        Returns:
            list[Tensor]: per image, (R,) labels: a class in [0, K) or K (background).
            list[Tensor]: per image, (R, 4) the matched box (box 0 for background points).
        """
        gt_labels, matched_gt_boxes = [], []
        for inst in gt_instances:
            if len(inst) > 0:
                match_quality, matched_idxs = self._match_anchors(inst.gt_boxes, anchors).max(dim=0)
                matched_idxs[match_quality < 1e-5] = -1  # = Matcher([1e-5], [0, 1]) on the quality
                matched_gt_boxes_i = inst.gt_boxes.tensor[matched_idxs.clip(min=0)]
                gt_labels_i = inst.gt_classes[matched_idxs.clip(min=0)]
                gt_labels_i[matched_idxs < 0] = self.num_classes
            else:
                matched_gt_boxes_i = torch.zeros_like(Boxes.cat(anchors).tensor)
                gt_labels_i = torch.full(
                    (len(matched_gt_boxes_i),), self.num_classes, dtype=torch.long, device=matched_gt_boxes_i.device
                )
            gt_labels.append(gt_labels_i)
            matched_gt_boxes.append(matched_gt_boxes_i)
        return gt_labels, matched_gt_boxes

    def losses(
        self,
        anchors: list[Boxes],
        pred_logits: list[Tensor],
        gt_labels: list[Tensor],
        pred_anchor_deltas: list[Tensor],
        gt_boxes: list[Tensor],
        pred_centerness: list[Tensor],
    ) -> dict[str, Tensor]:
        """:meth:`RetinaNet.losses` (focal loss over every point, GIoU box loss over foreground)
        plus ``loss_fcos_ctr``: binary cross-entropy of the centerness logits against
        :meth:`compute_ctrness_targets` on foreground points."""
        num_images = len(gt_labels)
        gt_labels_all = torch.stack(gt_labels)  # (N, R)

        pos_mask = (gt_labels_all >= 0) & (gt_labels_all != self.num_classes)
        num_pos_anchors = pos_mask.sum().item()
        get_event_storage().put_scalar("num_pos_anchors", num_pos_anchors / num_images)
        normalizer = self._ema_update("loss_normalizer", max(num_pos_anchors, 1), 300)

        # background points are all-zero targets: drop the background column of the one-hot
        gt_labels_target = F.one_hot(gt_labels_all, num_classes=self.num_classes + 1)[:, :, :-1]
        loss_cls = sigmoid_focal_loss_jit(
            torch.cat(pred_logits, dim=1),
            gt_labels_target.to(pred_logits[0].dtype),
            alpha=self.focal_loss_alpha,
            gamma=self.focal_loss_gamma,
            reduction="sum",
        )
        loss_box_reg = _dense_box_regression_loss(
            anchors, self.box2box_transform, pred_anchor_deltas, gt_boxes, pos_mask, box_reg_loss_type="giou"
        )

        ctrness_targets = self.compute_ctrness_targets(anchors, gt_boxes)  # (N, R)
        pred_centerness_all = torch.cat(pred_centerness, dim=1).squeeze(dim=2)  # (N, R)
        ctrness_loss = F.binary_cross_entropy_with_logits(
            pred_centerness_all[pos_mask], ctrness_targets[pos_mask], reduction="sum"
        )
        return {
            "loss_fcos_cls": loss_cls / normalizer,
            "loss_fcos_loc": loss_box_reg / normalizer,
            "loss_fcos_ctr": ctrness_loss / normalizer,
        }

    def compute_ctrness_targets(self, anchors: list[Boxes], gt_boxes: list[Tensor]) -> Tensor:
        """(N, R) centerness of every point in its matched box:
        sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) (meaningless for background points)."""
        anchors_cat = Boxes.cat(anchors).tensor  # (R, 4)
        reg_targets = [self.box2box_transform.get_deltas(anchors_cat, m) for m in gt_boxes]
        if len(reg_targets) == 0:
            return anchors_cat.new_zeros(0)
        reg_targets_t = torch.stack(reg_targets, dim=0)  # (N, R, 4)
        left_right = reg_targets_t[:, :, [0, 2]]
        top_bottom = reg_targets_t[:, :, [1, 3]]
        ctrness = (left_right.min(dim=-1).values / left_right.max(dim=-1).values) * (
            top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values
        )
        return torch.sqrt(ctrness)

    def forward_inference(
        self, images: ImageList, features: list[Tensor], predictions: list[list[Tensor]]
    ) -> list[Instances]:
        pred_logits, pred_anchor_deltas, pred_centerness = self._transpose_dense_predictions(
            predictions, [self.num_classes, 4, 1]
        )
        anchors = self.anchor_generator(features)

        results: list[Instances] = []
        for img_idx, image_size in enumerate(images.image_sizes):
            # geometric mean of class probability and centerness (eq. 4 of the FCOS journal paper)
            scores_per_image = [
                torch.sqrt(x[img_idx].sigmoid_() * y[img_idx].sigmoid_()) for x, y in zip(pred_logits, pred_centerness)
            ]
            deltas_per_image = [x[img_idx] for x in pred_anchor_deltas]
            results.append(self.inference_single_image(anchors, scores_per_image, deltas_per_image, image_size))
        return results

    def inference_single_image(
        self, anchors: list[Boxes], box_cls: list[Tensor], box_delta: list[Tensor], image_size: tuple[int, int]
    ) -> Instances:
        """Per-level top-k candidates above ``test_score_thresh``, class-wise NMS, the best
        ``max_detections_per_image`` (as :meth:`RetinaNet.inference_single_image`)."""
        pred = self._decode_multi_level_predictions(
            anchors, box_cls, box_delta, self.test_score_thresh, self.test_topk_candidates, image_size
        )
        keep = batched_nms(pred.pred_boxes.tensor, pred.scores, pred.pred_classes, self.test_nms_thresh)
        return pred[keep[: self.max_detections_per_image]]


class FCOSHead(RetinaNetHead):
    """:class:`RetinaNetHead` with one anchor per position and a centerness branch ``ctrness``
    (3x3 conv) on the box tower's features.

    Invariant: ``forward`` returns three lists over levels: logits (N, K, Hi, Wi), distances
    (N, 4, Hi, Wi), centerness logits (N, 1, Hi, Wi). As in detectron2, there is no learnable
    per-level scale (the regression targets are already divided by the stride)::

        head = FCOSHead(input_shape=[ShapeSpec(channels=16)] * 5, conv_dims=[16] * 4, num_classes=80, norm="GN")
    """

    def __init__(self, *, input_shape: list[ShapeSpec], conv_dims: list[int], **kwargs: Any) -> None:
        if "num_anchors" in kwargs:
            raise ValueError("FCOSHead predicts one point per position: do not pass num_anchors")
        super().__init__(input_shape=input_shape, conv_dims=conv_dims, num_anchors=1, **kwargs)
        conv_dims = list(conv_dims)
        last_dim = conv_dims[-1] if conv_dims else cast(int, input_shape[0].channels)
        self.ctrness = nn.Conv2d(last_dim, 1, kernel_size=3, stride=1, padding=1)
        nn.init.normal_(self.ctrness.weight, std=0.01)
        nn.init.constant_(cast(Tensor, self.ctrness.bias), 0)

    # a third output (centerness) where RetinaNetHead has two, as detectron2's FCOSHead
    def forward(self, features: list[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:  # type: ignore[override]
        if not isinstance(features, (list, tuple)) or len(features) != self._num_features:
            got = len(features) if isinstance(features, (list, tuple)) else type(features).__name__
            raise ValueError(f"FCOSHead was built for {self._num_features} feature levels, got {got}")
        logits, bbox_reg, ctrness = [], [], []
        for feature in features:
            logits.append(self.cls_score(self.cls_subnet(feature)))
            bbox_feature = self.bbox_subnet(feature)
            bbox_reg.append(self.bbox_pred(bbox_feature))
            ctrness.append(self.ctrness(bbox_feature))
        return logits, bbox_reg, ctrness
