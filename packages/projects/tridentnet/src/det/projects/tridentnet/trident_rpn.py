"""TridentRPN: the RPN run on every branch of a trident backbone's features."""

from __future__ import annotations

import torch

from det.core.config import configurable
from det.heads.rpn.rpn import RPN
from det.structures import ImageList, Instances

__all__ = ["TridentRPN"]


def _running_branches(training: bool, num_branch: int, trident_fast: bool) -> int:
    """How many branches a trident model runs: all in training, one at inference in fast mode."""
    return num_branch if training or not trident_fast else 1


def _check_branch_batch(features: dict[str, torch.Tensor], in_features: list[str], num_images: int,
                        running: int, name: str) -> None:
    """The trident backbone stacks its branches along the batch: say so when that did not happen."""
    for f in in_features:
        if f in features and features[f].shape[0] != running * num_images:
            raise ValueError(
                f"{name}: feature {f!r} has batch size {features[f].shape[0]}, expected {running} branch(es) x "
                f"{num_images} image(s) = {running * num_images}; the backbone must be "
                "build_trident_resnet_backbone (MODEL.BACKBONE.NAME) built with the same MODEL.TRIDENT "
                "settings, and its trident stage must come before the features the heads read")


class TridentRPN(RPN):
    """The :class:`RPN` of TridentNet: the images (their sizes) and ground truth are repeated once
    per running branch, so each branch's features make their own proposals.

    Invariant: with ``N`` images it returns ``num_branch * N`` proposal sets in training (branch
    ``b`` of image ``i`` at index ``b * N + i``, matching the backbone's branch-major batch), and
    ``N`` at inference when ``trident_fast`` (one test branch), else ``num_branch * N``::

        rpn = TridentRPN(cfg, backbone.output_shape())
        proposals, losses = rpn(images, features, gt_instances)   # len(proposals) == 3 * N
    """

    @configurable
    def __init__(self, *, num_branch: int = 3, trident_fast: bool = True, **kwargs):
        """
        Args:
            num_branch: the number of branches of the backbone (``MODEL.TRIDENT.NUM_BRANCH``).
            trident_fast: at inference only one branch runs (``MODEL.TRIDENT.TEST_BRANCH_IDX != -1``).
            kwargs: passed to :class:`RPN`.
        """
        super().__init__(**kwargs)
        self.num_branch = num_branch
        self.trident_fast = trident_fast

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["num_branch"] = cfg.MODEL.TRIDENT.NUM_BRANCH
        ret["trident_fast"] = cfg.MODEL.TRIDENT.TEST_BRANCH_IDX != -1
        return ret

    def forward(self, images: ImageList, features: dict[str, torch.Tensor],
                gt_instances: list[Instances] | None = None):
        """See :meth:`RPN.forward`; ``features`` hold the running branches along the batch."""
        running = _running_branches(self.training, self.num_branch, self.trident_fast)
        _check_branch_batch(features, self.in_features, len(images), running, "TridentRPN")
        all_images = ImageList(torch.cat([images.tensor] * running), list(images.image_sizes) * running)
        all_gt_instances = list(gt_instances) * running if gt_instances is not None else None
        return super().forward(all_images, features, all_gt_instances)
