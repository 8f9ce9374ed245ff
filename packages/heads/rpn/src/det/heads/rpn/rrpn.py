"""Rotated Region Proposal Network (:paper:`RRPN`): ``RRPN`` proposes ``RotatedBoxes``.

It is ``RPN`` with rotated anchors (``RotatedAnchorGenerator``, box_dim 5), rotated IoU for
matching, ``Box2BoxTransformRotated`` and rotated NMS.
"""

from __future__ import annotations

from typing import Any

import torch

from det.core.config import configurable
from det.core.layers import ShapeSpec, batched_nms_rotated, box_iou_rotated
from det.core.modeling import Box2BoxTransformRotated
from det.heads.rpn.proposal_utils import select_proposals_per_image
from det.heads.rpn.rpn import RPN
from det.structures import Boxes, Instances, RotatedBoxes

__all__ = ["RRPN", "find_top_rrpn_proposals"]


def find_top_rrpn_proposals(proposals: list[torch.Tensor], pred_objectness_logits: list[torch.Tensor],
                            image_sizes: list[tuple[int, int]], nms_thresh: float, pre_nms_topk: int,
                            post_nms_topk: int, min_box_size: float, training: bool) -> list[Instances]:
    """The rotated counterpart of :func:`find_top_rpn_proposals`: per-level top-k, clip (boxes
    that are nearly horizontal), drop small boxes, per-level rotated NMS, top-k per image.

    Args:
        proposals: L tensors (N, Hi*Wi*A, 5) of (cx, cy, w, h, angle) boxes.
        pred_objectness_logits: L tensors (N, Hi*Wi*A).
        other arguments: as in :func:`find_top_rpn_proposals`.

    Returns:
        N ``Instances`` with ``proposal_boxes`` (RotatedBoxes) and ``objectness_logits``.
    """
    num_images = len(image_sizes)
    device = proposals[0].device

    topk_scores = []
    topk_proposals = []
    level_ids = []
    batch_idx = torch.arange(num_images, device=device)
    for level_id, (proposals_i, logits_i) in enumerate(zip(proposals, pred_objectness_logits)):
        Hi_Wi_A = logits_i.shape[1]
        num_proposals_i = min(pre_nms_topk, Hi_Wi_A)
        # detectron2 sorts here (rather than topk); ties then come out in the same order
        logits_i, idx = logits_i.sort(descending=True, dim=1)
        topk_scores_i = logits_i[batch_idx, :num_proposals_i]
        topk_idx = idx[batch_idx, :num_proposals_i]
        topk_proposals.append(proposals_i[batch_idx[:, None], topk_idx])
        topk_scores.append(topk_scores_i)
        level_ids.append(torch.full((num_proposals_i,), level_id, dtype=torch.int64, device=device))

    return select_proposals_per_image(
        RotatedBoxes, batched_nms_rotated, topk_proposals, topk_scores, level_ids, image_sizes,
        nms_thresh, post_nms_topk, min_box_size, training,
    )


class RRPN(RPN):
    """Rotated RPN: ``RPN`` whose anchors, ground truth and proposals are ``RotatedBoxes``.

    Invariant: proposals are ``RotatedBoxes`` (N, 5) as (cx, cy, w, h, angle in degrees); the
    anchor generator must have ``box_dim == 5``::

        cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RRPN"
        cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
        rrpn = RRPN(cfg, backbone.output_shape())
    """

    @configurable
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.anchor_boundary_thresh >= 0:
            raise NotImplementedError(
                "RRPN: anchor_boundary_thresh (MODEL.RPN.BOUNDARY_THRESH) is a legacy option that RRPN "
                "does not implement; set it to -1"
            )
        if getattr(self.anchor_generator, "box_dim", 5) != 5:
            raise ValueError(
                "RRPN needs rotated anchors (box_dim 5, e.g. RotatedAnchorGenerator); the anchor "
                f"generator {type(self.anchor_generator).__name__} has box_dim {self.anchor_generator.box_dim}"
            )

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        ret = super().from_config(cfg, input_shape)
        ret["box2box_transform"] = Box2BoxTransformRotated(weights=cfg.MODEL.RPN.BBOX_REG_WEIGHTS)
        return ret

    def _match_quality(self, gt_boxes: Boxes, anchors: Boxes) -> torch.Tensor:
        # label_and_sample_anchors matches rotated anchors by rotated IoU; matched boxes are (R, 5)
        return box_iou_rotated(gt_boxes.tensor, anchors.tensor)

    @torch.no_grad()
    def predict_proposals(
        self,
        anchors: list[Boxes],
        pred_objectness_logits: list[torch.Tensor],
        pred_anchor_deltas: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[Instances]:
        return self._find_top_proposals(find_top_rrpn_proposals, anchors, pred_objectness_logits,
                                        pred_anchor_deltas, image_sizes)
