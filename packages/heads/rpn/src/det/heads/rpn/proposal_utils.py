"""Turning per-level RPN predictions into per-image proposals (detectron2's ``proposal_utils``).

Shape shorthand: N images, L feature levels, Hi*Wi*A anchors on level i, B the box dimension.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from det.core.layers import batched_nms, cat, move_device_like
from det.structures import Boxes, Instances

__all__ = ["find_top_rpn_proposals"]


def _is_tracing() -> bool:
    # torch.jit's __all__ leaves out is_scripting/is_tracing (so --strict sees them as private)
    # and torch's is_tracing is unannotated
    return torch.jit.is_scripting() or torch.jit.is_tracing()  # type: ignore[attr-defined,no-untyped-call]


def find_top_rpn_proposals(proposals: list[torch.Tensor], pred_objectness_logits: list[torch.Tensor],
                           image_sizes: list[tuple[int, int]], nms_thresh: float, pre_nms_topk: int,
                           post_nms_topk: int, min_box_size: float, training: bool) -> list[Instances]:
    """For each image: keep the ``pre_nms_topk`` best proposals of every level, clip them to the
    image, drop boxes with a side below ``min_box_size``, run NMS per level, keep ``post_nms_topk``.

    Args:
        proposals: L tensors of shape (N, Hi*Wi*A, 4), decoded boxes per level.
        pred_objectness_logits: L tensors of shape (N, Hi*Wi*A).
        image_sizes: N (height, width) pairs, the sizes boxes are clipped to.
        nms_thresh: IoU threshold of the per-level NMS, in [0, 1].
        pre_nms_topk, post_nms_topk: number kept per level before NMS, per image after it.
        min_box_size: proposals with width or height <= this (input pixels) are removed.
        training: in training, a non-finite box or score is an error (training diverged); at
            inference such proposals are dropped.

    Returns:
        N ``Instances`` with ``proposal_boxes`` (Boxes) and ``objectness_logits`` (Tensor), sorted
        by decreasing logit.
    """
    if len(proposals) != len(pred_objectness_logits):
        raise ValueError(
            f"find_top_rpn_proposals: {len(proposals)} levels of proposals but "
            f"{len(pred_objectness_logits)} levels of objectness logits; expected one of each per level"
        )
    num_images = len(image_sizes)
    device = proposals[0].device if proposals else torch.device("cpu")

    topk_scores = []
    topk_proposals = []
    level_ids = []
    batch_idx = move_device_like(torch.arange(num_images, device=device), proposals[0])
    for level_id, (proposals_i, logits_i) in enumerate(zip(proposals, pred_objectness_logits)):
        Hi_Wi_A = logits_i.shape[1]
        if isinstance(Hi_Wi_A, torch.Tensor):  # a tensor while tracing: keep the trace dynamic
            num_proposals_i = torch.clamp(Hi_Wi_A, max=pre_nms_topk)
        else:
            num_proposals_i = min(Hi_Wi_A, pre_nms_topk)

        topk_scores_i, topk_idx = logits_i.topk(num_proposals_i, dim=1)
        topk_proposals_i = proposals_i[batch_idx[:, None], topk_idx]

        topk_proposals.append(topk_proposals_i)
        topk_scores.append(topk_scores_i)
        level_ids.append(
            move_device_like(
                torch.full((num_proposals_i,), level_id, dtype=torch.int64, device=device),
                proposals[0],
            )
        )

    return select_proposals_per_image(
        Boxes, batched_nms, topk_proposals, topk_scores, level_ids, image_sizes,
        nms_thresh, post_nms_topk, min_box_size, training,
    )


def select_proposals_per_image(box_type: type[Boxes],
                               nms: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor],
                               topk_proposals: list[torch.Tensor], topk_scores: list[torch.Tensor],
                               level_ids: list[torch.Tensor], image_sizes: list[tuple[int, int]],
                               nms_thresh: float, post_nms_topk: int, min_box_size: float,
                               training: bool) -> list[Instances]:
    """The per-image half of proposal selection, shared by RPN (``Boxes``, ``batched_nms``) and RRPN
    (``RotatedBoxes``, ``batched_nms_rotated``): drop non-finite proposals (an error in training),
    clip, drop small boxes, NMS per level, keep ``post_nms_topk`` sorted by decreasing logit.

    Per level i, ``topk_proposals`` holds (N, Ri, B), ``topk_scores`` (N, Ri) and ``level_ids`` (Ri,)
    filled with i.
    """
    all_topk_proposals = cat(topk_proposals, dim=1)
    all_topk_scores = cat(topk_scores, dim=1)
    all_level_ids = cat(level_ids, dim=0)
    results: list[Instances] = []
    for n, image_size in enumerate(image_sizes):
        boxes = box_type(all_topk_proposals[n])
        scores_per_img = all_topk_scores[n]
        lvl = all_level_ids

        valid_mask = torch.isfinite(boxes.tensor).all(dim=1) & torch.isfinite(scores_per_img)
        if not valid_mask.all():
            if training:
                raise FloatingPointError(
                    "Predicted boxes or scores contain Inf/NaN. Training has diverged."
                )
            boxes = boxes[valid_mask]
            scores_per_img = scores_per_img[valid_mask]
            lvl = lvl[valid_mask]
        boxes.clip(image_size)

        keep = boxes.nonempty(threshold=min_box_size)
        if _is_tracing() or keep.sum().item() != len(boxes):
            boxes, scores_per_img, lvl = boxes[keep], scores_per_img[keep], lvl[keep]

        keep = nms(boxes.tensor, scores_per_img, lvl, nms_thresh)
        # top-k per image (not over the whole batch as Detectron1 did in training), so results
        # do not depend on the batch size; the NMS returns indices sorted by score.
        keep = keep[:post_nms_topk]

        res = Instances(image_size)
        res.proposal_boxes = boxes[keep]
        res.objectness_logits = scores_per_img[keep]
        results.append(res)
    return results
