"""Region Proposal Network (:paper:`Faster R-CNN`): ``RPN`` and its default head ``StandardRPNHead``.

Shape shorthand: N images, L feature levels, A anchors per position, Hi/Wi the size of level i,
B the box dimension (4 for axis-aligned boxes, 5 for rotated ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.layers import Conv2d, ShapeSpec, cat
from det.core.modeling import (
    BOX_REG_LOSS_TYPES,
    Box2BoxTransform,
    Matcher,
    _dense_box_regression_loss,
    build_anchor_generator,
    subsample_labels,
)
from det.core.modeling.backbone import check_in_features
from det.core.registry import RPN_HEAD_REGISTRY  # detectron2 defines it in this module
from det.heads.rpn.proposal_utils import find_top_rpn_proposals
from det.structures import Boxes, ImageList, Instances, pairwise_iou

__all__ = ["RPN", "RPN_HEAD_REGISTRY", "StandardRPNHead", "build_rpn_head"]



def build_rpn_head(cfg: Any, input_shape: list[ShapeSpec]) -> nn.Module:
    """Build the RPN head named by ``cfg.MODEL.RPN.HEAD_NAME`` (an ``RPN_HEAD`` component)."""
    from det.core.registry import get_component

    head: nn.Module = get_component("RPN_HEAD", cfg.MODEL.RPN.HEAD_NAME)(cfg, input_shape)
    return head


class StandardRPNHead(nn.Module):
    """Shared conv(s) then two 1x1 convs: objectness logits (A per position) and anchor deltas
    (A*box_dim per position), applied with the same weights to every level.

    Invariant: every input level has ``in_channels`` channels; level i of the outputs has shapes
    (N, A, Hi, Wi) and (N, A*box_dim, Hi, Wi)::

        head = StandardRPNHead(in_channels=16, num_anchors=3)
        logits, deltas = head([torch.rand(2, 16, 20, 30)])
        logits[0].shape, deltas[0].shape  # (2, 3, 20, 30), (2, 12, 20, 30)

    ``conv_dims`` lists the output channels of the shared 3x3 convs (-1: same as the input); one
    entry gives a single conv named ``conv``, several give ``conv.conv0``, ``conv.conv1``, ...
    """

    # final layers: they stay float32 under fast mode's bfloat16 (det.core.fast's protocol)
    float32_layers = ("objectness_logits", "anchor_deltas")

    @configurable
    def __init__(
        self, *, in_channels: int, num_anchors: int, box_dim: int = 4, conv_dims: Sequence[int] = (-1,)
    ) -> None:
        """
        Args:
            in_channels: channels of every input feature map.
            num_anchors: anchors per spatial position (A).
            box_dim: deltas per anchor: 4 for Boxes, 5 for RotatedBoxes.
            conv_dims: output channels of each shared 3x3 conv; -1 keeps the input width.
        """
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_anchors", num_anchors), ("box_dim", box_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"StandardRPNHead: {name} must be a positive int, got {value!r}")
        conv_dims = list(conv_dims)
        if len(conv_dims) == 0:
            raise ValueError("StandardRPNHead: conv_dims must name at least one conv, e.g. (-1,)")
        cur_channels = in_channels
        if len(conv_dims) == 1:
            out_channels = cur_channels if conv_dims[0] == -1 else conv_dims[0]
            if out_channels <= 0:
                raise ValueError(f"StandardRPNHead: conv_dims must be positive or -1, got {conv_dims}")
            # a single conv keeps the historical name "conv", so old checkpoints load
            self.conv = self._get_rpn_conv(cur_channels, out_channels)
            cur_channels = out_channels
        else:
            self.conv = nn.Sequential()
            for k, conv_dim in enumerate(conv_dims):
                out_channels = cur_channels if conv_dim == -1 else conv_dim
                if out_channels <= 0:
                    raise ValueError(
                        f"StandardRPNHead: conv_dims must be positive or -1, got {conv_dims}"
                    )
                self.conv.add_module(f"conv{k}", self._get_rpn_conv(cur_channels, out_channels))
                cur_channels = out_channels
        self.objectness_logits = nn.Conv2d(cur_channels, num_anchors, kernel_size=1, stride=1)
        self.anchor_deltas = nn.Conv2d(cur_channels, num_anchors * box_dim, kernel_size=1, stride=1)

        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(cast(torch.Tensor, layer.bias), 0)  # every conv here has a bias

    def _get_rpn_conv(self, in_channels: int, out_channels: int) -> nn.Module:
        return Conv2d(
            in_channels, out_channels, kernel_size=3, stride=1, padding=1, activation=nn.ReLU()
        )

    @classmethod
    def from_config(cls, cfg: Any, input_shape: list[ShapeSpec]) -> dict[str, Any]:
        in_channels = [s.channels for s in input_shape]
        if len(set(in_channels)) != 1:
            raise ValueError(
                f"StandardRPNHead is shared across levels, so every level must have the same "
                f"number of channels; got {in_channels}"
            )
        # the head must predict as many anchors per position as the RPN's anchor generator makes
        # build_anchor_generator (det.core.modeling) is not annotated yet
        anchor_generator = cast("Callable[..., Any]", build_anchor_generator)(cfg, input_shape)
        num_anchors = anchor_generator.num_anchors
        if len(set(num_anchors)) != 1:
            raise ValueError(
                f"StandardRPNHead needs the same number of anchors per position on every level; "
                f"the anchor generator makes {num_anchors}"
            )
        return {
            "in_channels": in_channels[0],
            "num_anchors": num_anchors[0],
            "box_dim": anchor_generator.box_dim,
            "conv_dims": cfg.MODEL.RPN.CONV_DIMS,
        }

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            features: L feature maps (N, C, Hi, Wi).

        Returns:
            L objectness logit maps (N, A, Hi, Wi) and L delta maps (N, A*box_dim, Hi, Wi).
        """
        if not isinstance(features, (list, tuple)):
            raise TypeError(
                f"StandardRPNHead expects a list of feature maps (one per level), got {type(features).__name__}"
            )
        pred_objectness_logits = []
        pred_anchor_deltas = []
        for x in features:
            t = self.conv(x)
            pred_objectness_logits.append(self.objectness_logits(t))
            pred_anchor_deltas.append(self.anchor_deltas(t))
        return pred_objectness_logits, pred_anchor_deltas


class RPN(nn.Module):
    """Region Proposal Network: scores and refines anchors, returns the top proposals per image.

    Invariant: ``forward`` returns one ``Instances`` per image with ``proposal_boxes`` and
    ``objectness_logits`` (at most ``post_nms_topk[training]`` of them, best first), plus the
    losses ``loss_rpn_cls`` / ``loss_rpn_loc`` in training (empty dict at inference)::

        rpn = RPN(cfg, backbone.output_shape())            # or with explicit kwargs
        proposals, losses = rpn(images, features, gt_instances)   # training
        proposals, _ = rpn.eval()(images, features)               # inference

    Anchor sampling uses ``subsample_labels`` (``torch.randperm``) exactly as detectron2 does, so
    the same seed gives the same samples.
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: list[str],
        head: nn.Module,
        anchor_generator: nn.Module,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransform,
        batch_size_per_image: int,
        positive_fraction: float,
        pre_nms_topk: tuple[int, int],
        post_nms_topk: tuple[int, int],
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        anchor_boundary_thresh: float = -1.0,
        loss_weight: float | dict[str, float] = 1.0,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
    ) -> None:
        """
        Args:
            in_features: names of the input features to use.
            head: predicts (objectness logits, anchor deltas) per level from a list of features.
            anchor_generator: makes the anchors of a list of features (``num_anchors``, ``box_dim``).
            anchor_matcher: labels anchors by their IoU with the ground truth.
            box2box_transform: anchor <-> box parameterisation.
            batch_size_per_image: anchors sampled per image for the losses.
            positive_fraction: target fraction of foreground among sampled anchors.
            pre_nms_topk, post_nms_topk: (train, test) numbers kept before / after NMS.
            nms_thresh: NMS IoU threshold for proposals.
            min_box_size: proposals with a side smaller than this (input pixels) are removed.
            anchor_boundary_thresh: legacy: ignore anchors that leave the image by more than
                this many pixels (negative: disabled).
            loss_weight: one weight for both losses, or a dict with keys ``loss_rpn_cls`` and
                ``loss_rpn_loc``.
            box_reg_loss_type: "smooth_l1", "giou", "diou" or "ciou".
            smooth_l1_beta: beta of the smooth L1 loss (0 means L1).
        """
        super().__init__()
        if box_reg_loss_type not in BOX_REG_LOSS_TYPES:
            raise ValueError(
                f"RPN: invalid box_reg_loss_type {box_reg_loss_type!r}; expected one of {BOX_REG_LOSS_TYPES}"
            )
        for name, value in (("pre_nms_topk", pre_nms_topk), ("post_nms_topk", post_nms_topk)):
            if len(value) != 2:
                raise ValueError(f"RPN: {name} must be a (train, test) pair, got {value!r}")
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        # indexed by self.training, so train and test settings switch with .train()/.eval()
        self.pre_nms_topk = {True: pre_nms_topk[0], False: pre_nms_topk[1]}
        self.post_nms_topk = {True: post_nms_topk[0], False: post_nms_topk[1]}
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        self.anchor_boundary_thresh = anchor_boundary_thresh
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_rpn_cls": float(loss_weight), "loss_rpn_loc": float(loss_weight)}
        self.loss_weight = loss_weight
        self.box_reg_loss_type = box_reg_loss_type
        self.smooth_l1_beta = smooth_l1_beta

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        in_features = check_in_features("MODEL.RPN.IN_FEATURES", cfg.MODEL.RPN.IN_FEATURES, input_shape)
        shapes = [input_shape[f] for f in in_features]
        return {
            "in_features": in_features,
            "min_box_size": cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE,
            "nms_thresh": cfg.MODEL.RPN.NMS_THRESH,
            "batch_size_per_image": cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": cfg.MODEL.RPN.POSITIVE_FRACTION,
            "loss_weight": {
                "loss_rpn_cls": cfg.MODEL.RPN.LOSS_WEIGHT,
                "loss_rpn_loc": cfg.MODEL.RPN.BBOX_REG_LOSS_WEIGHT * cfg.MODEL.RPN.LOSS_WEIGHT,
            },
            "anchor_boundary_thresh": cfg.MODEL.RPN.BOUNDARY_THRESH,
            "box2box_transform": Box2BoxTransform(weights=cfg.MODEL.RPN.BBOX_REG_WEIGHTS),
            "box_reg_loss_type": cfg.MODEL.RPN.BBOX_REG_LOSS_TYPE,
            "smooth_l1_beta": cfg.MODEL.RPN.SMOOTH_L1_BETA,
            "pre_nms_topk": (cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN, cfg.MODEL.RPN.PRE_NMS_TOPK_TEST),
            "post_nms_topk": (cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, cfg.MODEL.RPN.POST_NMS_TOPK_TEST),
            "anchor_generator": cast("Callable[..., Any]", build_anchor_generator)(cfg, shapes),
            "anchor_matcher": Matcher(
                cfg.MODEL.RPN.IOU_THRESHOLDS, cfg.MODEL.RPN.IOU_LABELS, allow_low_quality_matches=True
            ),
            "head": build_rpn_head(cfg, shapes),
        }

    def _subsample_labels(self, label: torch.Tensor) -> torch.Tensor:
        """Keep a random sample of positives and negatives (in place); the rest become -1."""
        pos_idx, neg_idx = subsample_labels(label, self.batch_size_per_image, self.positive_fraction, 0)
        label.fill_(-1)
        label.scatter_(0, pos_idx, 1)
        label.scatter_(0, neg_idx, 0)
        return label

    def _match_quality(self, gt_boxes: Boxes, anchors: Boxes) -> torch.Tensor:
        """(G, R) IoU of one image's ground truth with all anchors (rotated IoU in RRPN)."""
        return pairwise_iou(gt_boxes, anchors)

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """
        Args:
            anchors: the anchors of each level.
            gt_instances: the ground truth of each image (``gt_boxes``).

        Returns:
            per image, a label vector over all R = sum(Hi*Wi*A) anchors with values -1 (ignore),
            0 (background) or 1 (foreground), and the (R, 4) boxes of the matched ground truth
            (meaningful only where the label is 1).
        """
        all_anchors = type(anchors[0]).cat(anchors)  # Boxes; RotatedBoxes in RRPN

        gt_boxes = [x.gt_boxes for x in gt_instances]
        image_sizes = [x.image_size for x in gt_instances]
        del gt_instances

        gt_labels = []
        matched_gt_boxes = []
        for image_size_i, gt_boxes_i in zip(image_sizes, gt_boxes):
            match_quality_matrix = self._match_quality(gt_boxes_i, all_anchors)
            matched_idxs, gt_labels_i = self.anchor_matcher(match_quality_matrix)
            gt_labels_i = gt_labels_i.to(device=gt_boxes_i.device)
            del match_quality_matrix

            if self.anchor_boundary_thresh >= 0:
                # legacy (Detectron1) behaviour, off by default: anchors crossing the border are ignored.
                anchors_inside_image = all_anchors.inside_box(image_size_i, self.anchor_boundary_thresh)
                gt_labels_i[~anchors_inside_image] = -1

            gt_labels_i = self._subsample_labels(gt_labels_i)

            if len(gt_boxes_i) == 0:
                # every anchor is background, so the regression targets are never read
                matched_gt_boxes_i = torch.zeros_like(all_anchors.tensor)
            else:
                matched_gt_boxes_i = gt_boxes_i[matched_idxs].tensor

            gt_labels.append(gt_labels_i)
            matched_gt_boxes.append(matched_gt_boxes_i)
        return gt_labels, matched_gt_boxes

    def losses(self, anchors: list[Boxes], pred_objectness_logits: list[torch.Tensor],
               gt_labels: list[torch.Tensor], pred_anchor_deltas: list[torch.Tensor],
               gt_boxes: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The RPN losses, both normalised by ``batch_size_per_image * N``.

        Args:
            anchors: anchors of each level, (Hi*Wi*A, B) each.
            pred_objectness_logits: L tensors (N, Hi*Wi*A).
            gt_labels: output of :meth:`label_and_sample_anchors`.
            pred_anchor_deltas: L tensors (N, Hi*Wi*A, B).
            gt_boxes: output of :meth:`label_and_sample_anchors`.

        Returns:
            ``{"loss_rpn_cls": ..., "loss_rpn_loc": ...}``, weighted by ``loss_weight``. Also puts
            ``rpn/num_pos_anchors`` and ``rpn/num_neg_anchors`` (per image) into the EventStorage.
        """
        num_images = len(gt_labels)
        gt_labels_all = torch.stack(gt_labels)  # (N, sum(Hi*Wi*A))

        pos_mask = gt_labels_all == 1
        # both counts in one transfer (one host synchronisation on a GPU)
        num_pos_anchors, num_neg_anchors = torch.stack([pos_mask.sum(), (gt_labels_all == 0).sum()]).tolist()
        storage = get_event_storage()
        storage.put_scalar("rpn/num_pos_anchors", num_pos_anchors / num_images)
        storage.put_scalar("rpn/num_neg_anchors", num_neg_anchors / num_images)

        localization_loss = _dense_box_regression_loss(
            anchors, self.box2box_transform, pred_anchor_deltas, gt_boxes, pos_mask,
            box_reg_loss_type=self.box_reg_loss_type, smooth_l1_beta=self.smooth_l1_beta,
        )

        valid_mask = gt_labels_all >= 0
        objectness_loss = F.binary_cross_entropy_with_logits(
            cat(pred_objectness_logits, dim=1)[valid_mask],
            gt_labels_all[valid_mask].to(torch.float32),
            reduction="sum",
        )
        normalizer = self.batch_size_per_image * num_images
        losses = {
            "loss_rpn_cls": objectness_loss / normalizer,
            # detectron2 normalises by the sampled anchors, not by the positives only
            "loss_rpn_loc": localization_loss / normalizer,
        }
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        gt_instances: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """
        Args:
            images: the N input images (``image_sizes`` is used to clip proposals).
            features: feature maps by name; ``in_features`` are used.
            gt_instances: N ground-truth ``Instances`` with ``gt_boxes``; required in training.

        Returns:
            proposals (list[Instances]) with ``proposal_boxes`` and ``objectness_logits``, and the
            losses (dict, empty at inference).
        """
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise KeyError(
                f"RPN needs features {self.in_features} but got {sorted(features)} (missing {missing})"
            )
        feature_maps = [features[f] for f in self.in_features]
        anchors = self.anchor_generator(feature_maps)

        pred_objectness_logits, pred_anchor_deltas = self.rpn_head(feature_maps)
        # (N, A, Hi, Wi) -> (N, Hi*Wi*A): anchors are ordered position-major, anchor-minor
        pred_objectness_logits = [score.permute(0, 2, 3, 1).flatten(1) for score in pred_objectness_logits]
        # (N, A*B, Hi, Wi) -> (N, Hi*Wi*A, B)
        pred_anchor_deltas = [
            x.view(x.shape[0], -1, self.anchor_generator.box_dim, x.shape[-2], x.shape[-1])
            .permute(0, 3, 4, 1, 2)
            .flatten(1, -2)
            for x in pred_anchor_deltas
        ]

        losses: dict[str, torch.Tensor]
        if self.training:
            if gt_instances is None:
                raise ValueError(
                    "RPN requires gt_instances in training (a list of Instances with gt_boxes, "
                    "one per image); call model.eval() for inference"
                )
            gt_labels, gt_boxes = self.label_and_sample_anchors(anchors, gt_instances)
            losses = self.losses(anchors, pred_objectness_logits, gt_labels, pred_anchor_deltas, gt_boxes)
        else:
            losses = {}
        proposals = self.predict_proposals(
            anchors, pred_objectness_logits, pred_anchor_deltas, images.image_sizes
        )
        return proposals, losses

    def predict_proposals(self, anchors: list[Boxes], pred_objectness_logits: list[torch.Tensor],
                          pred_anchor_deltas: list[torch.Tensor],
                          image_sizes: list[tuple[int, int]]) -> list[Instances]:
        """Decode the deltas and keep the top proposals (see :func:`find_top_rpn_proposals`).

        Returns N ``Instances`` with ``proposal_boxes`` and ``objectness_logits``, sorted by
        decreasing objectness.
        """
        # Proposals are treated as constants by the ROI heads (approximate joint training):
        # no gradient flows back through the proposal coordinates.
        with torch.no_grad():
            return self._find_top_proposals(find_top_rpn_proposals, anchors, pred_objectness_logits,
                                            pred_anchor_deltas, image_sizes)

    def _find_top_proposals(
        self,
        find_top: Callable[..., list[Instances]],
        anchors: list[Boxes],
        pred_objectness_logits: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[Instances]:
        """``find_top`` (:func:`find_top_rpn_proposals` or the rotated form) over the decoded
        proposals, with this RPN's NMS settings for the current mode."""
        pred_proposals = self._decode_proposals(anchors, pred_anchor_deltas)
        return find_top(pred_proposals, pred_objectness_logits, image_sizes, self.nms_thresh,
                        self.pre_nms_topk[self.training], self.post_nms_topk[self.training], self.min_box_size,
                        self.training)

    def _decode_proposals(
        self, anchors: list[Boxes], pred_anchor_deltas: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """Apply the deltas to the anchors: L tensors (N, Hi*Wi*A, B)."""
        N = pred_anchor_deltas[0].shape[0]
        proposals = []
        for anchors_i, pred_anchor_deltas_i in zip(anchors, pred_anchor_deltas):
            B = anchors_i.tensor.size(1)
            pred_anchor_deltas_i = pred_anchor_deltas_i.reshape(-1, B)
            # the same anchors for every image: (N*Hi*Wi*A, B)
            anchors_i_tensor = anchors_i.tensor.unsqueeze(0).expand(N, -1, -1).reshape(-1, B)
            proposals_i = self.box2box_transform.apply_deltas(pred_anchor_deltas_i, anchors_i_tensor)
            proposals.append(proposals_i.view(N, -1, B))
        return proposals
