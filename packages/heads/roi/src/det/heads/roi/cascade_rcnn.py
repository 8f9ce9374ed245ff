"""Cascade R-CNN (:paper:`Cascade R-CNN`): box heads in stages, each refining the previous one's boxes."""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import Function

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.modeling import Box2BoxTransform, Matcher, ROIPooler
from det.heads.roi.box_head import build_box_head
from det.heads.roi.fast_rcnn import FastRCNNOutputLayers, fast_rcnn_inference
from det.heads.roi.roi_heads import StandardROIHeads
from det.structures import Boxes, Instances, pairwise_iou

__all__ = ["CascadeROIHeads"]


class _ScaleGradient(Function):
    """Identity forward; multiplies the gradient by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx, input, scale):
        ctx.scale = scale
        return input

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.scale, None


class CascadeROIHeads(StandardROIHeads):
    """``StandardROIHeads`` with a cascade of box heads: stage k takes the boxes predicted by
    stage k-1 as its proposals, matched to the ground truth with a higher IoU threshold.

    Invariant: ``box_head``, ``box_predictor`` and ``proposal_matchers`` have one entry per stage
    (``box_head.{i}`` / ``box_predictor.{i}`` in checkpoints); at inference the class scores are
    averaged over stages and the boxes come from the last stage::

        cfg.MODEL.ROI_HEADS.NAME = "CascadeROIHeads"   # + CLS_AGNOSTIC_BBOX_REG True
        heads = CascadeROIHeads(cfg, backbone.output_shape())
        losses = heads(images, features, proposals, targets)[1]   # loss_cls_stage0, ...
    """

    @configurable
    def __init__(
        self,
        *,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_heads: list[nn.Module],
        box_predictors: list[nn.Module],
        proposal_matchers: list[Matcher],
        **kwargs,
    ):
        """
        Args:
            box_pooler: pools region features, shared by all stages.
            box_heads, box_predictors, proposal_matchers: one per stage; matcher k labels the
                regions that stage k trains on.
            kwargs: passed to :class:`StandardROIHeads` (not ``proposal_matcher``).
        """
        if "proposal_matcher" in kwargs:
            raise TypeError(
                "CascadeROIHeads takes 'proposal_matchers=' for each stage instead of one 'proposal_matcher='."
            )
        num_stages = len(box_heads)
        if num_stages == 0:
            raise ValueError("CascadeROIHeads needs at least one stage")
        if len(box_predictors) != num_stages or len(proposal_matchers) != num_stages:
            raise ValueError(
                f"CascadeROIHeads: {num_stages} box heads, {len(box_predictors)} box predictors and "
                f"{len(proposal_matchers)} proposal matchers; expected one of each per stage"
            )
        # the first matcher matches RPN proposals with the ground truth, in the base class
        kwargs["proposal_matcher"] = proposal_matchers[0]
        box_heads = nn.ModuleList(box_heads)
        box_predictors = nn.ModuleList(box_predictors)
        super().__init__(
            box_in_features=box_in_features,
            box_pooler=box_pooler,
            box_head=box_heads,
            box_predictor=box_predictors,
            **kwargs,
        )
        self.num_cascade_stages = num_stages
        self.proposal_matchers = proposal_matchers

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.pop("proposal_matcher")
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        cascade_bbox_reg_weights = cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS
        cascade_ious = cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS
        if len(cascade_bbox_reg_weights) != len(cascade_ious):
            raise ValueError(
                f"MODEL.ROI_BOX_CASCADE_HEAD: {len(cascade_bbox_reg_weights)} BBOX_REG_WEIGHTS for "
                f"{len(cascade_ious)} IOUS; expected one of each per stage"
            )
        if not cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG:
            raise ValueError(
                "CascadeROIHeads only support class-agnostic regression now! "
                "Set MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG True"
            )
        if cascade_ious[0] != cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS[0]:
            raise ValueError(
                f"MODEL.ROI_BOX_CASCADE_HEAD.IOUS[0] ({cascade_ious[0]}) must equal "
                f"MODEL.ROI_HEADS.IOU_THRESHOLDS[0] ({cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS[0]})"
            )
        in_features, box_pooler, pooled_shape = cls._init_box_pooler(cfg, input_shape)

        box_heads, box_predictors, proposal_matchers = [], [], []
        for match_iou, bbox_reg_weights in zip(cascade_ious, cascade_bbox_reg_weights):
            box_head = build_box_head(cfg, pooled_shape)
            box_heads.append(box_head)
            box_predictors.append(
                FastRCNNOutputLayers(
                    cfg,
                    box_head.output_shape,
                    box2box_transform=Box2BoxTransform(weights=bbox_reg_weights),
                )
            )
            proposal_matchers.append(Matcher([match_iou], [0, 1], allow_low_quality_matches=False))
        return {
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_heads": box_heads,
            "box_predictors": box_predictors,
            "proposal_matchers": proposal_matchers,
        }

    def _box_losses(self, features, proposals, targets):
        """Training losses of every stage (``loss_cls_stage{k}``, ``loss_box_reg_stage{k}``): later
        stages re-match their proposals with the targets."""
        return self._forward_box(features, proposals, targets)

    def _forward_box(self, features, proposals, targets=None):
        """
        Args:
            features, targets: as in ``forward``.
            proposals: the sampled proposals (training) or the RPN proposals (inference).
        """
        features = [features[f] for f in self.box_in_features]
        head_outputs = []  # (predictor, predictions, proposals)
        prev_pred_boxes = None
        image_sizes = [x.image_size for x in proposals]
        for k in range(self.num_cascade_stages):
            if k > 0:
                # the previous stage's boxes are this stage's proposals
                proposals = self._create_proposals_from_boxes(prev_pred_boxes, image_sizes)
                if self.training:
                    proposals = self._match_and_label_boxes(proposals, k, targets)
            predictions = self._run_stage(features, proposals, k)
            prev_pred_boxes = self.box_predictor[k].predict_boxes(predictions, proposals)
            head_outputs.append((self.box_predictor[k], predictions, proposals))

        if self.training:
            losses = {}
            storage = get_event_storage()
            for stage, (predictor, predictions, proposals) in enumerate(head_outputs):
                with storage.name_scope(f"stage{stage}"):
                    stage_losses = predictor.losses(predictions, proposals)
                losses.update({f"{k}_stage{stage}": v for k, v in stage_losses.items()})
            return losses
        else:
            # per stage, per image: (Ri, K+1) probabilities
            scores_per_stage = [h[0].predict_probs(h[1], h[2]) for h in head_outputs]
            scores = [
                sum(list(scores_per_image)) * (1.0 / self.num_cascade_stages)
                for scores_per_image in zip(*scores_per_stage)
            ]
            predictor, predictions, proposals = head_outputs[-1]
            boxes = predictor.predict_boxes(predictions, proposals)
            pred_instances, _ = fast_rcnn_inference(
                boxes,
                scores,
                image_sizes,
                predictor.test_score_thresh,
                predictor.test_nms_thresh,
                predictor.test_topk_per_image,
            )
            return pred_instances

    @torch.no_grad()
    def _match_and_label_boxes(self, proposals: list[Instances], stage: int, targets: list[Instances]):
        """Label the proposals of ``stage`` with its matcher; every proposal is kept (no sampling).

        Adds ``gt_classes`` and ``gt_boxes`` to each proposal and puts
        ``stage{k}/roi_head/num_fg_samples`` / ``num_bg_samples`` into the EventStorage.
        """
        num_fg_samples, num_bg_samples = [], []
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            match_quality_matrix = pairwise_iou(targets_per_image.gt_boxes, proposals_per_image.proposal_boxes)
            # proposal_labels are 0 or 1
            matched_idxs, proposal_labels = self.proposal_matchers[stage](match_quality_matrix)
            if len(targets_per_image) > 0:
                gt_classes = targets_per_image.gt_classes[matched_idxs]
                gt_classes[proposal_labels == 0] = self.num_classes
                gt_boxes = targets_per_image.gt_boxes[matched_idxs]
            else:
                gt_classes = torch.zeros_like(matched_idxs) + self.num_classes
                gt_boxes = Boxes(targets_per_image.gt_boxes.tensor.new_zeros((len(proposals_per_image), 4)))
            proposals_per_image.gt_classes = gt_classes
            proposals_per_image.gt_boxes = gt_boxes

            num_fg_samples.append((proposal_labels == 1).sum().item())
            num_bg_samples.append(proposal_labels.numel() - num_fg_samples[-1])

        storage = get_event_storage()
        storage.put_scalar(f"stage{stage}/roi_head/num_fg_samples", sum(num_fg_samples) / len(num_fg_samples))
        storage.put_scalar(f"stage{stage}/roi_head/num_bg_samples", sum(num_bg_samples) / len(num_bg_samples))
        return proposals

    def _run_stage(self, features: list[torch.Tensor], proposals: list[Instances], stage: int):
        box_features = self.box_pooler(features, [x.proposal_boxes for x in proposals])
        # The paper averages the stage losses but scales up the heads' gradients; equivalently,
        # losses are summed and the gradient reaching the shared features is scaled down.
        if self.training:
            box_features = _ScaleGradient.apply(box_features, 1.0 / self.num_cascade_stages)
        box_features = self.box_head[stage](box_features)
        return self.box_predictor[stage](box_features)

    def _create_proposals_from_boxes(self, boxes: list[torch.Tensor], image_sizes: list[tuple[int, int]]):
        # like RPN proposals, these are constants for the next stage
        boxes = [Boxes(b.detach()) for b in boxes]
        proposals = []
        for boxes_per_image, image_size in zip(boxes, image_sizes):
            boxes_per_image.clip(image_size)
            if self.training:
                # empty boxes are kept at inference: the stages' scores must stay aligned
                boxes_per_image = boxes_per_image[boxes_per_image.nonempty()]
            prop = Instances(image_size)
            prop.proposal_boxes = boxes_per_image
            proposals.append(prop)
        return proposals
