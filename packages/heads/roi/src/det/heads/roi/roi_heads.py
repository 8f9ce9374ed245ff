"""ROI heads: per-region prediction on top of the proposals (``ROIHeads``, ``StandardROIHeads``,
``Res5ROIHeads``) and the helpers that pick the regions each sub-head trains on.

The mask and keypoint heads come from other distributions (det-heads-mask, det-heads-keypoint):
they are found by name through det's registry (``ROI_MASK_HEAD`` / ``ROI_KEYPOINT_HEAD``) and
called with detectron2's interface: ``head(features, instances)`` returns a dict of losses in
training and the instances (with predictions added) at inference.
"""

from __future__ import annotations

import inspect
import logging
import numbers

import numpy as np
import torch
from torch import nn

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.layers import ShapeSpec, nonzero_tuple
from det.core.modeling import Matcher, ROIPooler, subsample_labels
from det.core.modeling.backbone import check_in_features
from det.core.modeling.build import build_roi_heads  # detectron2 defines it in this module
from det.core.registry import ROI_HEADS_REGISTRY  # detectron2 defines it in this module
from det.heads.roi.box_head import build_box_head
from det.heads.roi.fast_rcnn import FastRCNNOutputLayers
from det.heads.roi.proposal_utils import add_ground_truth_to_proposals
from det.structures import Boxes, ImageList, Instances, pairwise_iou

__all__ = [
    "ROI_HEADS_REGISTRY",
    "ROIHeads",
    "Res5ROIHeads",
    "StandardROIHeads",
    "build_keypoint_head",
    "build_mask_head",
    "build_roi_heads",
    "select_foreground_proposals",
    "select_proposals_with_visible_keypoints",
]

logger = logging.getLogger(__name__)


def build_mask_head(cfg, input_shape):
    """Build the mask head named by ``cfg.MODEL.ROI_MASK_HEAD.NAME`` (a ``ROI_MASK_HEAD`` component,
    e.g. from det-heads-mask)."""
    from det.core.registry import get_component

    return get_component("ROI_MASK_HEAD", cfg.MODEL.ROI_MASK_HEAD.NAME)(cfg, input_shape)


def build_keypoint_head(cfg, input_shape):
    """Build the keypoint head named by ``cfg.MODEL.ROI_KEYPOINT_HEAD.NAME`` (a
    ``ROI_KEYPOINT_HEAD`` component, e.g. from det-heads-keypoint)."""
    from det.core.registry import get_component

    return get_component("ROI_KEYPOINT_HEAD", cfg.MODEL.ROI_KEYPOINT_HEAD.NAME)(cfg, input_shape)


def select_foreground_proposals(
    proposals: list[Instances], bg_label: int
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Keep the regions whose ``gt_classes`` is neither ignore (-1) nor background (``bg_label``).

    Returns:
        per image, the foreground ``Instances`` and the boolean mask that selected them.
    """
    if not isinstance(proposals, (list, tuple)):
        raise TypeError(f"select_foreground_proposals expects a list of Instances, got {type(proposals).__name__}")
    if len(proposals) and not isinstance(proposals[0], Instances):
        raise TypeError(f"select_foreground_proposals expects Instances, got {type(proposals[0]).__name__}")
    if len(proposals) and not proposals[0].has("gt_classes"):
        raise ValueError("select_foreground_proposals needs proposals labelled with 'gt_classes'")
    fg_proposals = []
    fg_selection_masks = []
    for proposals_per_image in proposals:
        gt_classes = proposals_per_image.gt_classes
        fg_selection_mask = (gt_classes != -1) & (gt_classes != bg_label)
        fg_idxs = fg_selection_mask.nonzero().squeeze(1)
        fg_proposals.append(proposals_per_image[fg_idxs])
        fg_selection_masks.append(fg_selection_mask)
    return fg_proposals, fg_selection_masks


def select_proposals_with_visible_keypoints(proposals: list[Instances]) -> list[Instances]:
    """Keep the regions that contain at least one visible keypoint of their matched ground truth.

    Regions with no visible keypoint inside the box would give an all-ignore keypoint target,
    which wastes compute. Puts ``keypoint_head/num_fg_samples`` (mean per image) into the
    EventStorage.
    """
    ret = []
    all_num_fg = []
    for proposals_per_image in proposals:
        # an empty image has no gt_keypoints field
        if len(proposals_per_image) == 0:
            ret.append(proposals_per_image)
            continue
        gt_keypoints = proposals_per_image.gt_keypoints.tensor
        # #fg x K x 3
        vis_mask = gt_keypoints[:, :, 2] >= 1
        xs, ys = gt_keypoints[:, :, 0], gt_keypoints[:, :, 1]
        proposal_boxes = proposals_per_image.proposal_boxes.tensor.unsqueeze(dim=1)  # #fg x 1 x 4
        kp_in_box = (
            (xs >= proposal_boxes[:, :, 0])
            & (xs <= proposal_boxes[:, :, 2])
            & (ys >= proposal_boxes[:, :, 1])
            & (ys <= proposal_boxes[:, :, 3])
        )
        selection = (kp_in_box & vis_mask).any(dim=1)
        selection_idxs = nonzero_tuple(selection)[0]
        all_num_fg.append(selection_idxs.numel())
        ret.append(proposals_per_image[selection_idxs])

    storage = get_event_storage()
    storage.put_scalar("keypoint_head/num_fg_samples", np.mean(all_num_fg) if all_num_fg else 0.0)
    return ret


class ROIHeads(nn.Module):
    """Base of the ROI heads: matches proposals to the ground truth and samples the regions to
    train on. Subclasses implement ``forward``.

    Invariant: ``label_and_sample_proposals`` returns, per image, at most
    ``batch_size_per_image`` regions, each with ``gt_classes`` in [0, num_classes] (num_classes
    = background) and, when the image has ground truth, every ``gt_*`` field of its matched
    target::

        heads = StandardROIHeads(cfg, backbone.output_shape())
        sampled = heads.label_and_sample_proposals(proposals, targets)   # inside an EventStorage
        sampled[0].gt_classes, sampled[0].gt_boxes
    """

    @configurable
    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_matcher: Matcher,
        proposal_append_gt: bool = True,
    ):
        """
        Args:
            num_classes: number of foreground classes (the background label is ``num_classes``).
            batch_size_per_image: regions sampled per image for training.
            positive_fraction: target fraction of foreground among them.
            proposal_matcher: labels proposals by IoU with the ground truth (1 foreground,
                0 background, -1 ignore).
            proposal_append_gt: add the ground-truth boxes to the proposals before sampling.
        """
        super().__init__()
        if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes <= 0:
            raise ValueError(f"ROIHeads: num_classes must be a positive int, got {num_classes!r}")
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"ROIHeads: positive_fraction must be in [0, 1], got {positive_fraction!r}")
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.num_classes = num_classes
        self.proposal_matcher = proposal_matcher
        self.proposal_append_gt = proposal_append_gt

    @classmethod
    def from_config(cls, cfg):
        return {
            "batch_size_per_image": cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION,
            "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            "proposal_append_gt": cfg.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT,
            # low-quality matches would make poorly overlapping regions foreground
            "proposal_matcher": Matcher(
                cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS,
                cfg.MODEL.ROI_HEADS.IOU_LABELS,
                allow_low_quality_matches=False,
            ),
        }

    def _sample_proposals(
        self, matched_idxs: torch.Tensor, matched_labels: torch.Tensor, gt_classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample regions by their matching result.

        Args:
            matched_idxs: (R,) index of the matched ground truth of each region.
            matched_labels: (R,) matcher labels (1 fg, 0 bg, -1 ignore).
            gt_classes: (M,) classes of the image's ground truth.

        Returns:
            the indices of the sampled regions, and their classification targets in
            [0, num_classes] (num_classes: background).
        """
        has_gt = gt_classes.numel() > 0
        if has_gt:
            gt_classes = gt_classes[matched_idxs]
            gt_classes[matched_labels == 0] = self.num_classes
            gt_classes[matched_labels == -1] = -1
        else:
            gt_classes = torch.zeros_like(matched_idxs) + self.num_classes

        sampled_fg_idxs, sampled_bg_idxs = subsample_labels(
            gt_classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
        )

        sampled_idxs = torch.cat([sampled_fg_idxs, sampled_bg_idxs], dim=0)
        return sampled_idxs, gt_classes[sampled_idxs]

    def _match_quality(self, targets_per_image: Instances, proposals_per_image: Instances) -> torch.Tensor:
        """(G, P) IoU of one image's ground truth with its proposals (RROIHeads: rotated IoU)."""
        return pairwise_iou(targets_per_image.gt_boxes, proposals_per_image.proposal_boxes)

    def _attach_targets(self, proposals_per_image: Instances, targets_per_image: Instances,
                        sampled_targets: torch.Tensor) -> None:
        """Give each sampled proposal its matched target's fields. Here every ``gt_*`` field
        (boxes, masks, keypoints, ...); sub-heads filter the regions again, so this indexes some
        data twice."""
        for trg_name, trg_value in targets_per_image.get_fields().items():
            if trg_name.startswith("gt_") and not proposals_per_image.has(trg_name):
                proposals_per_image.set(trg_name, trg_value[sampled_targets])

    @torch.no_grad()
    def label_and_sample_proposals(self, proposals: list[Instances], targets: list[Instances]) -> list[Instances]:
        """Match proposals with the ground truth and sample the training regions.

        Args:
            proposals: per image, ``proposal_boxes`` and ``objectness_logits``.
            targets: per image, the ground truth (``gt_boxes``, ``gt_classes``, other ``gt_*``).

        Returns:
            per image, the sampled proposals with ``gt_classes`` and (when the image has ground
            truth) the matched target's ``gt_*`` fields. Puts ``roi_head/num_fg_samples`` and
            ``roi_head/num_bg_samples`` (means per image) into the EventStorage.
        """
        if targets is None or len(targets) != len(proposals):
            raise ValueError(
                f"label_and_sample_proposals needs one target Instances per image: got "
                f"{len(proposals)} proposal lists and {None if targets is None else len(targets)} targets"
            )
        # The proposals of a fresh RPN are poor; appending the ground truth gives the second
        # stage good foreground regions from the first iteration on.
        if self.proposal_append_gt:
            proposals = add_ground_truth_to_proposals(targets, proposals)

        proposals_with_gt = []

        bg_counts: list[torch.Tensor] = []
        num_samples: list[int] = []
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            has_gt = len(targets_per_image) > 0
            match_quality_matrix = self._match_quality(targets_per_image, proposals_per_image)
            matched_idxs, matched_labels = self.proposal_matcher(match_quality_matrix)
            sampled_idxs, gt_classes = self._sample_proposals(
                matched_idxs, matched_labels, targets_per_image.gt_classes
            )

            proposals_per_image = proposals_per_image[sampled_idxs]
            proposals_per_image.gt_classes = gt_classes

            if has_gt:
                self._attach_targets(proposals_per_image, targets_per_image, matched_idxs[sampled_idxs])
            # Without ground truth there is no sensible dummy target: such proposals only carry
            # gt_classes (all background).

            bg_counts.append((gt_classes == self.num_classes).sum())
            num_samples.append(gt_classes.numel())
            proposals_with_gt.append(proposals_per_image)

        # every image's count in one transfer (one host synchronisation on a GPU, not one per image)
        num_bg_samples = torch.stack(bg_counts).tolist() if bg_counts else []
        num_fg_samples = [total - bg for total, bg in zip(num_samples, num_bg_samples)]
        storage = get_event_storage()
        storage.put_scalar("roi_head/num_fg_samples", np.mean(num_fg_samples))
        storage.put_scalar("roi_head/num_bg_samples", np.mean(num_bg_samples))

        return proposals_with_gt

    def forward(
        self,
        images: ImageList,
        features: dict[str, torch.Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """
        Args:
            images: the input images (most heads do not use them).
            features: feature maps by name.
            proposals: per image, ``proposal_boxes`` and ``objectness_logits``.
            targets: per image, the ground truth; required in training.

        Returns:
            In training, the sampled proposals and a dict of losses; at inference, per image
            ``Instances`` with the predictions and an empty dict.
        """
        raise NotImplementedError()


def _require_targets(targets, name: str) -> None:
    if not targets:
        raise ValueError(
            f"{name}: the 'targets' argument (ground-truth Instances per image) is required "
            "during training; call model.eval() for inference"
        )


def _check_inputs(features, proposals, in_features: list[str], name: str) -> None:
    """Clear errors for the usual mistakes, before they become deep torch errors."""
    if not isinstance(proposals, (list, tuple)) or not all(isinstance(p, Instances) for p in proposals):
        got = type(proposals).__name__ if not isinstance(proposals, (list, tuple)) else [type(p).__name__ for p in proposals]
        raise TypeError(f"{name}: proposals must be a list of Instances (one per image), got {got}")
    for p in proposals:
        if not p.has("proposal_boxes"):
            raise ValueError(
                f"{name}: each proposals Instances needs a 'proposal_boxes' field, got fields {sorted(p.get_fields())}"
            )
    missing = [f for f in in_features if f not in features]
    if missing:
        raise KeyError(f"{name} needs features {list(in_features)} but got {sorted(features)} (missing {missing})")


class Res5ROIHeads(ROIHeads):
    """The ROI heads of the C4 models (:paper:`ResNet` Faster R-CNN): ROI pooling on one feature
    map, then ResNet's last stage ``res5`` shared by the box (and mask) predictor.

    Invariant: ``in_features`` has exactly one feature; ``res5`` is detectron2's
    ``roi_heads.res5.{0,1,2}`` Bottleneck blocks, so C4 checkpoints load unchanged::

        heads = Res5ROIHeads(cfg, backbone.output_shape())
        detections, _ = heads.eval()(images, {"res4": res4}, proposals)
        detections[0].pred_boxes, detections[0].scores, detections[0].pred_classes
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: list[str],
        pooler: ROIPooler,
        res5: nn.Module,
        box_predictor: nn.Module,
        mask_head: nn.Module | None = None,
        **kwargs,
    ):
        """
        Args:
            in_features: the single feature map to pool from.
            pooler: pools that feature map into each region.
            res5: the shared ResNet stage (a module, or a list of blocks).
            box_predictor: predicts classes and boxes from the averaged ``res5`` features.
            mask_head: optional, applied to the ``res5`` features of foreground regions.
            kwargs: passed to :class:`ROIHeads`.
        """
        super().__init__(**kwargs)
        if len(in_features) != 1:
            raise ValueError(f"Res5ROIHeads pools from exactly one feature map, got in_features={in_features}")
        self.in_features = list(in_features)
        self.pooler = pooler
        if isinstance(res5, (list, tuple)):
            res5 = nn.Sequential(*res5)
        self.res5 = res5
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        if self.mask_on:
            self.mask_head = mask_head

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg)
        in_features = ret["in_features"] = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        pooler_resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        pooler_type = cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE
        if len(in_features) != 1:
            raise ValueError(
                f"Res5ROIHeads pools from one feature map; MODEL.ROI_HEADS.IN_FEATURES is {in_features}"
            )
        if in_features[0] not in input_shape:
            raise ValueError(
                f"MODEL.ROI_HEADS.IN_FEATURES names {in_features[0]!r}, which the backbone does not "
                f"produce; available: {sorted(input_shape)}"
            )
        if cfg.MODEL.KEYPOINT_ON:
            raise ValueError("Res5ROIHeads does not support keypoints (MODEL.KEYPOINT_ON); use StandardROIHeads")
        pooler_scales = (1.0 / input_shape[in_features[0]].stride,)
        sampling_ratio = cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO

        ret["pooler"] = ROIPooler(
            output_size=pooler_resolution,
            scales=pooler_scales,
            sampling_ratio=sampling_ratio,
            pooler_type=pooler_type,
        )

        # subclasses that override _build_res5_block as a plain method still work
        if not inspect.ismethod(cls._build_res5_block):
            logger.warning("The behavior of _build_res5_block may change. Please do not depend on private methods.")
            cls._build_res5_block = classmethod(cls._build_res5_block)

        ret["res5"], out_channels = cls._build_res5_block(cfg)
        ret["box_predictor"] = FastRCNNOutputLayers(cfg, ShapeSpec(channels=out_channels, height=1, width=1))

        if cfg.MODEL.MASK_ON:
            ret["mask_head"] = build_mask_head(
                cfg,
                ShapeSpec(channels=out_channels, width=pooler_resolution, height=pooler_resolution),
            )
        return ret

    @classmethod
    def _build_res5_block(cls, cfg):
        # res5 is made by det-backbones (the extra det-heads-roi[c4]): imported here so that
        # det-heads-roi imports without it until a C4 model is built
        try:
            from det.backbones.resnet import BottleneckBlock, ResNet
        except ImportError as e:
            raise ImportError(
                "Res5ROIHeads builds its res5 stage with det-backbones' ResNet: pip install 'det-heads-roi[c4]'"
            ) from e

        stage_channel_factor = 2**3  # res5 is 8x res2
        num_groups = cfg.MODEL.RESNETS.NUM_GROUPS
        width_per_group = cfg.MODEL.RESNETS.WIDTH_PER_GROUP
        bottleneck_channels = num_groups * width_per_group * stage_channel_factor
        out_channels = cfg.MODEL.RESNETS.RES2_OUT_CHANNELS * stage_channel_factor
        stride_in_1x1 = cfg.MODEL.RESNETS.STRIDE_IN_1X1
        norm = cfg.MODEL.RESNETS.NORM
        if cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE[-1]:
            raise ValueError(
                "Deformable conv is not yet supported in res5 head "
                "(MODEL.RESNETS.DEFORM_ON_PER_STAGE[-1] must be False with Res5ROIHeads)"
            )

        blocks = ResNet.make_stage(
            BottleneckBlock,
            3,
            stride_per_block=[2, 1, 1],
            in_channels=out_channels // 2,
            bottleneck_channels=bottleneck_channels,
            out_channels=out_channels,
            num_groups=num_groups,
            norm=norm,
            stride_in_1x1=stride_in_1x1,
        )
        return nn.Sequential(*blocks), out_channels

    def _shared_roi_transform(self, features: list[torch.Tensor], boxes: list[Boxes]) -> torch.Tensor:
        x = self.pooler(features, boxes)
        return self.res5(x)

    def forward(self, images, features, proposals, targets=None):
        """See :meth:`ROIHeads.forward`."""
        del images
        _check_inputs(features, proposals, self.in_features, "Res5ROIHeads")

        if self.training:
            _require_targets(targets, "Res5ROIHeads")
            proposals = self.label_and_sample_proposals(proposals, targets)
        del targets

        proposal_boxes = [x.proposal_boxes for x in proposals]
        box_features = self._shared_roi_transform([features[f] for f in self.in_features], proposal_boxes)
        predictions = self.box_predictor(box_features.mean(dim=[2, 3]))

        if self.training:
            del features
            losses = self.box_predictor.losses(predictions, proposals)
            if self.mask_on:
                proposals, fg_selection_masks = select_foreground_proposals(proposals, self.num_classes)
                # the res5 features are shared: the mask head reuses those of the foreground regions
                mask_features = box_features[torch.cat(fg_selection_masks, dim=0)]
                del box_features
                losses.update(self.mask_head(mask_features, proposals))
            return [], losses
        else:
            pred_instances, _ = self.box_predictor.inference(predictions, proposals)
            pred_instances = self.forward_with_given_boxes(features, pred_instances)
            return pred_instances, {}

    def forward_with_given_boxes(self, features: dict[str, torch.Tensor], instances: list[Instances]) -> list[Instances]:
        """Run the mask head (if any) on given detections (``pred_boxes``, ``pred_classes``).

        Returns:
            the instances, with ``pred_masks`` added when the mask head is on.
        """
        if self.training:
            raise RuntimeError("forward_with_given_boxes is for inference: call .eval() first")
        if not (instances[0].has("pred_boxes") and instances[0].has("pred_classes")):
            raise ValueError("forward_with_given_boxes needs instances with 'pred_boxes' and 'pred_classes'")

        if self.mask_on:
            feature_list = [features[f] for f in self.in_features]
            x = self._shared_roi_transform(feature_list, [x.pred_boxes for x in instances])
            return self.mask_head(x, instances)
        return instances


def _init_optional_branch(branch: str, on: bool, cfg, head_cfg, input_shape, build_head) -> dict:
    """The ``{branch}_in_features``, ``{branch}_pooler`` and ``{branch}_head`` arguments of the mask
    or keypoint branch (none when ``on`` is false): ``MODEL.ROI_HEADS.IN_FEATURES`` pooled as
    ``head_cfg`` (ROI_MASK_HEAD / ROI_KEYPOINT_HEAD) says, the head built on the pooled shape."""
    if not on:
        return {}
    in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
    pooler, shape = _optional_pooler(head_cfg, input_shape, in_features)
    return {f"{branch}_in_features": in_features, f"{branch}_pooler": pooler, f"{branch}_head": build_head(cfg, shape)}


def _optional_pooler(head_cfg, input_shape: dict[str, ShapeSpec], in_features: list[str]):
    """The ROIPooler a mask/keypoint head config node asks for, and the input shape of its head.

    An empty ``POOLER_TYPE`` means the head pools by itself: no pooler, and the head is given
    the shapes of ``in_features`` instead of one pooled ShapeSpec.
    """
    if not head_cfg.POOLER_TYPE:
        return None, {f: input_shape[f] for f in in_features}
    resolution = head_cfg.POOLER_RESOLUTION
    pooler = ROIPooler(
        output_size=resolution,
        scales=tuple(1.0 / input_shape[k].stride for k in in_features),
        sampling_ratio=head_cfg.POOLER_SAMPLING_RATIO,
        pooler_type=head_cfg.POOLER_TYPE,
    )
    in_channels = input_shape[in_features[0]].channels
    return pooler, ShapeSpec(channels=in_channels, width=resolution, height=resolution)


class StandardROIHeads(ROIHeads):
    """The ROI heads of the FPN models: a box head and predictor on pooled region features, plus
    optional mask and keypoint heads, each with its own pooler.

    Invariant: attributes keep detectron2's names: ``box_pooler``, ``box_head``,
    ``box_predictor``, ``in_features`` (== ``box_in_features``), and when on ``mask_pooler``,
    ``mask_head``, ``mask_in_features``, ``keypoint_pooler``, ``keypoint_head``,
    ``keypoint_in_features``::

        heads = StandardROIHeads(cfg, backbone.output_shape())
        proposals, losses = heads(images, features, proposals, targets)   # training
        detections, _ = heads.eval()(images, features, proposals)          # inference

    At inference the mask/keypoint heads run on the final detections only (cascaded).
    Subclasses customise a part by overriding the ``_init_*_head`` classmethods.
    """

    @configurable
    def __init__(
        self,
        *,
        box_in_features: list[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: nn.Module,
        mask_in_features: list[str] | None = None,
        mask_pooler: ROIPooler | None = None,
        mask_head: nn.Module | None = None,
        keypoint_in_features: list[str] | None = None,
        keypoint_pooler: ROIPooler | None = None,
        keypoint_head: nn.Module | None = None,
        train_on_pred_boxes: bool = False,
        **kwargs,
    ):
        """
        Args:
            box_in_features: feature maps the box pooler reads.
            box_pooler: pools region features for the box head.
            box_head: turns pooled features into per-region features.
            box_predictor: predicts classes and box deltas (``FastRCNNOutputLayers``-like).
            mask_in_features: feature maps for the mask head (None: no mask head).
            mask_pooler: pools region features for the mask head; None passes the feature dict.
            mask_head: the mask head.
            keypoint_in_features, keypoint_pooler, keypoint_head: likewise for keypoints.
            train_on_pred_boxes: train the mask/keypoint heads on the box head's predicted
                boxes instead of the proposals.
            kwargs: passed to :class:`ROIHeads`.
        """
        super().__init__(**kwargs)
        # keep self.in_features for backward compatibility
        self.in_features = self.box_in_features = box_in_features
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor

        # the optional branches: self.mask_on, self.mask_in_features/_pooler/_head; likewise keypoint
        for branch, in_features, pooler, head in (
            ("mask", mask_in_features, mask_pooler, mask_head),
            ("keypoint", keypoint_in_features, keypoint_pooler, keypoint_head),
        ):
            setattr(self, f"{branch}_on", in_features is not None)
            if in_features is not None:
                if head is None:
                    raise ValueError(f"StandardROIHeads: {branch}_in_features is given but {branch}_head is None")
                setattr(self, f"{branch}_in_features", in_features)
                setattr(self, f"{branch}_pooler", pooler)
                setattr(self, f"{branch}_head", head)

        self.train_on_pred_boxes = train_on_pred_boxes

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg)
        ret["train_on_pred_boxes"] = cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES
        check_in_features("MODEL.ROI_HEADS.IN_FEATURES", cfg.MODEL.ROI_HEADS.IN_FEATURES, input_shape)
        # Subclasses that override _init_*_head as plain methods (not classmethods) opt out of
        # this: they build their parts in __init__ (old detectron2 subclassing style).
        if inspect.ismethod(cls._init_box_head):
            ret.update(cls._init_box_head(cfg, input_shape))
        if inspect.ismethod(cls._init_mask_head):
            ret.update(cls._init_mask_head(cfg, input_shape))
        if inspect.ismethod(cls._init_keypoint_head):
            ret.update(cls._init_keypoint_head(cfg, input_shape))
        return ret

    @classmethod
    def _init_box_pooler(cls, cfg, input_shape) -> tuple[list[str], ROIPooler, ShapeSpec]:
        """The box branch's ``MODEL.ROI_HEADS.IN_FEATURES``, its ``MODEL.ROI_BOX_HEAD.POOLER_*``
        pooler and the shape of what it pools (what box heads are built from)."""
        in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        pooler_resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        # one box head serves every level, so the levels must have the same width
        in_channels = [input_shape[f].channels for f in in_features]
        if len(set(in_channels)) != 1:
            raise ValueError(f"{cls.__name__}: every input feature needs the same channels, got {in_channels}")
        box_pooler = ROIPooler(
            output_size=pooler_resolution,
            scales=tuple(1.0 / input_shape[k].stride for k in in_features),
            sampling_ratio=cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
            pooler_type=cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE,
        )
        return in_features, box_pooler, ShapeSpec(channels=in_channels[0], height=pooler_resolution,
                                                  width=pooler_resolution)

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        in_features, box_pooler, pooled_shape = cls._init_box_pooler(cfg, input_shape)
        # The box head is built from the pooler's output shape; the predictor from the head's.
        box_head = build_box_head(cfg, pooled_shape)
        box_predictor = cls._build_box_predictor(cfg, box_head.output_shape)
        return {
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_head": box_head,
            "box_predictor": box_predictor,
        }

    @classmethod
    def _build_box_predictor(cls, cfg, input_shape):
        """The box predictor over the box head's output (subclasses swap the class)."""
        return FastRCNNOutputLayers(cfg, input_shape)

    @classmethod
    def _init_mask_head(cls, cfg, input_shape):
        return _init_optional_branch("mask", cfg.MODEL.MASK_ON, cfg, cfg.MODEL.ROI_MASK_HEAD, input_shape,
                                     build_mask_head)

    @classmethod
    def _init_keypoint_head(cls, cfg, input_shape):
        return _init_optional_branch("keypoint", cfg.MODEL.KEYPOINT_ON, cfg, cfg.MODEL.ROI_KEYPOINT_HEAD, input_shape,
                                     build_keypoint_head)

    def forward(self, images, features, proposals, targets=None):
        """See :meth:`ROIHeads.forward`."""
        del images
        _check_inputs(features, proposals, self.box_in_features, type(self).__name__)
        if self.training:
            _require_targets(targets, type(self).__name__)
            proposals = self.label_and_sample_proposals(proposals, targets)

        if self.training:
            losses = self._box_losses(features, proposals, targets)
            # With train_on_pred_boxes, _forward_box replaced the proposal boxes by the box
            # head's predictions; the mask and keypoint heads then train on those.
            losses.update(self._forward_mask(features, proposals))
            losses.update(self._forward_keypoint(features, proposals))
            return proposals, losses
        else:
            pred_instances = self._forward_box(features, proposals)
            # cascaded inference: masks and keypoints only for the final detections
            pred_instances = self.forward_with_given_boxes(features, pred_instances)
            return pred_instances, {}

    def _box_losses(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                    targets: list[Instances] | None) -> dict[str, torch.Tensor]:
        """The box branch's training losses (CascadeROIHeads' stages also need the targets)."""
        del targets
        return self._forward_box(features, proposals)

    def forward_with_given_boxes(self, features: dict[str, torch.Tensor], instances: list[Instances]) -> list[Instances]:
        """Run the mask and keypoint heads on given detections (``pred_boxes``, ``pred_classes``),
        e.g. to use boxes from elsewhere.

        Returns:
            the same instances with ``pred_masks`` / ``pred_keypoints`` added when those heads are on.
        """
        if self.training:
            raise RuntimeError("forward_with_given_boxes is for inference: call .eval() first")
        if not (instances[0].has("pred_boxes") and instances[0].has("pred_classes")):
            raise ValueError("forward_with_given_boxes needs instances with 'pred_boxes' and 'pred_classes'")

        instances = self._forward_mask(features, instances)
        instances = self._forward_keypoint(features, instances)
        return instances

    def _forward_box(self, features: dict[str, torch.Tensor], proposals: list[Instances]):
        """Box head and predictor: losses in training, detections (list[Instances]) at inference."""
        features = [features[f] for f in self.box_in_features]
        box_features = self.box_pooler(features, [x.proposal_boxes for x in proposals])
        box_features = self.box_head(box_features)
        predictions = self.box_predictor(box_features)
        del box_features

        if self.training:
            losses = self.box_predictor.losses(predictions, proposals)
            # the losses above read the original proposal boxes, so replace them only now
            if self.train_on_pred_boxes:
                with torch.no_grad():
                    pred_boxes = self.box_predictor.predict_boxes_for_gt_classes(predictions, proposals)
                    for proposals_per_image, pred_boxes_per_image in zip(proposals, pred_boxes):
                        proposals_per_image.proposal_boxes = Boxes(pred_boxes_per_image)
            return losses
        else:
            pred_instances, _ = self.box_predictor.inference(predictions, proposals)
            return pred_instances

    def _forward_mask(self, features: dict[str, torch.Tensor], instances: list[Instances]):
        """Mask head: its losses (training, foreground regions only) or the instances with
        ``pred_masks`` (inference). A no-op when the mask head is off."""
        if not self.mask_on:
            return {} if self.training else instances

        if self.training:
            # the mask loss is defined on foreground regions only
            instances, _ = select_foreground_proposals(instances, self.num_classes)

        return self.mask_head(self._branch_inputs(features, instances, self.mask_in_features, self.mask_pooler),
                             instances)

    def _branch_inputs(self, features: dict[str, torch.Tensor], instances: list[Instances], in_features: list[str],
                       pooler: ROIPooler | None):
        """What the mask or keypoint head reads: the features pooled over the regions (proposals in
        training, detections at inference), or the feature dict itself when the branch has no pooler."""
        if pooler is None:
            return {f: features[f] for f in in_features}
        boxes = [x.proposal_boxes if self.training else x.pred_boxes for x in instances]
        return pooler([features[f] for f in in_features], boxes)

    def _forward_keypoint(self, features: dict[str, torch.Tensor], instances: list[Instances]):
        """Keypoint head: its losses (training, foreground regions with a visible keypoint) or
        the instances with ``pred_keypoints`` (inference). A no-op when the head is off."""
        if not self.keypoint_on:
            return {} if self.training else instances

        if self.training:
            instances, _ = select_foreground_proposals(instances, self.num_classes)
            instances = select_proposals_with_visible_keypoints(instances)

        return self.keypoint_head(self._branch_inputs(features, instances, self.keypoint_in_features, self.keypoint_pooler),
                             instances)
