"""Adding the ground-truth boxes to the proposals the ROI heads train on."""

from __future__ import annotations

import math

import torch

from det.structures import Boxes, Instances

__all__ = ["add_ground_truth_to_proposals", "add_ground_truth_to_proposals_single_image"]


def add_ground_truth_to_proposals(
    gt: list[Instances] | list[Boxes], proposals: list[Instances]
) -> list[Instances]:
    """Append each image's ground-truth boxes to its proposals (``proposal_boxes``), with a
    near-certain objectness logit, so that every object has at least one perfect region early in
    training.

    Args:
        gt: per image, ``Instances`` with ``gt_boxes`` (or just ``Boxes``).
        proposals: per image, ``Instances`` with ``proposal_boxes`` and ``objectness_logits``.

    Returns:
        per image, the proposals followed by the ground-truth boxes.
    """
    if gt is None:
        raise ValueError("add_ground_truth_to_proposals: gt is None; training needs ground-truth instances")
    if len(proposals) != len(gt):
        raise ValueError(
            f"proposals and gt should have the same length as the number of images! "
            f"got {len(proposals)} proposal lists and {len(gt)} ground truths"
        )
    if len(proposals) == 0:
        return proposals
    return [add_ground_truth_to_proposals_single_image(gt_i, proposals_i) for gt_i, proposals_i in zip(gt, proposals)]


def add_ground_truth_to_proposals_single_image(gt: Instances | Boxes, proposals: Instances) -> Instances:
    """:func:`add_ground_truth_to_proposals` for one image."""
    if isinstance(gt, Boxes):
        # a bare Boxes has no fields to carry over: wrap it like a ground-truth Instances
        gt = Instances(proposals.image_size, gt_boxes=gt)

    gt_boxes = gt.gt_boxes
    device = proposals.objectness_logits.device
    # logit of P(object) = 1 - 1e-10: the ground truth ranks above every proposal
    gt_logit_value = math.log((1.0 - 1e-10) / (1 - (1.0 - 1e-10)))
    gt_logits = gt_logit_value * torch.ones(len(gt_boxes), device=device)

    gt_proposal = Instances(proposals.image_size, **gt.get_fields())
    gt_proposal.proposal_boxes = gt_boxes
    gt_proposal.objectness_logits = gt_logits

    for key in proposals.get_fields():
        if not gt_proposal.has(key):
            raise ValueError(f"The attribute '{key}' in `proposals` does not exist in `gt`")
    # Instances.cat keeps the proposals' fields only: gt_* are attached later, after matching
    return Instances.cat([proposals, gt_proposal])
