"""TridentNet's ROI heads: the C4 (Res5) and standard ROI heads run on every branch, and at
inference the branches' detections merged by NMS."""

from __future__ import annotations

from det.core.config import configurable
from det.core.layers import batched_nms
from det.heads.roi.roi_heads import Res5ROIHeads, StandardROIHeads
from det.projects.tridentnet.trident_rpn import _running_branches
from det.structures import Instances

__all__ = ["TridentRes5ROIHeads", "TridentStandardROIHeads", "merge_branch_instances"]


def merge_branch_instances(
    instances: list[Instances], num_branch: int, nms_thresh: float, topk_per_image: int
) -> list[Instances]:
    """Merge the detections of every branch of each image with per-class NMS.

    Args:
        instances: ``num_branch * N`` Instances, branch-major: branch ``b`` of image ``i`` is
            ``instances[b * N + i]``.
        num_branch: the number of branches to merge (1: ``instances`` is returned as is).
        nms_thresh: IoU threshold of the per-class NMS, in [0, 1].
        topk_per_image: detections kept per image, best first; negative keeps all.

    Returns:
        list[Instances]: N Instances, sorted by decreasing score, with every field of the input.
    """
    if num_branch == 1:
        return instances
    if len(instances) % num_branch:
        raise ValueError(
            f"merge_branch_instances: {len(instances)} Instances is not a multiple of num_branch={num_branch}")
    num_images = len(instances) // num_branch
    results = []
    for i in range(num_images):
        merged = Instances.cat([instances[b * num_images + i] for b in range(num_branch)])
        keep = batched_nms(merged.pred_boxes.tensor, merged.scores, merged.pred_classes, nms_thresh)
        if topk_per_image >= 0:
            keep = keep[:topk_per_image]
        results.append(merged[keep])
    return results


class _TridentBranches:
    """What both trident ROI heads add to their parent: targets repeated per running branch, and
    at inference the branches' detections merged (:func:`merge_branch_instances`)."""

    num_branch: int
    trident_fast: bool

    @configurable
    def __init__(self, *, num_branch: int = 3, trident_fast: bool = True, **kwargs):
        """
        Args:
            num_branch: the number of branches of the backbone (``MODEL.TRIDENT.NUM_BRANCH``).
            trident_fast: at inference only one branch runs (``MODEL.TRIDENT.TEST_BRANCH_IDX != -1``).
            kwargs: passed to the parent ROI heads.
        """
        super().__init__(**kwargs)
        self.num_branch = num_branch
        self.trident_fast = trident_fast

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)  # type: ignore[misc]
        ret["num_branch"] = cfg.MODEL.TRIDENT.NUM_BRANCH
        ret["trident_fast"] = cfg.MODEL.TRIDENT.TEST_BRANCH_IDX != -1
        return ret

    def forward(self, images, features, proposals, targets=None):
        """See :meth:`ROIHeads.forward`. ``proposals`` hold one set per running branch and image
        (branch-major, as :class:`TridentRPN` returns them); ``targets`` one per image."""
        running = _running_branches(self.training, self.num_branch, self.trident_fast)  # type: ignore[attr-defined]
        all_targets = list(targets) * running if targets is not None else None
        pred_instances, losses = super().forward(images, features, proposals, all_targets)  # type: ignore[misc]
        del images, all_targets, targets
        if self.training:  # type: ignore[attr-defined]
            return pred_instances, losses
        predictor = self.box_predictor  # type: ignore[attr-defined]
        merged = merge_branch_instances(
            pred_instances, running, predictor.test_nms_thresh, predictor.test_topk_per_image)
        return merged, {}


# (type: ignore: ROIHeads.from_config takes no input_shape; the C4 and standard heads add it, as here)
class TridentRes5ROIHeads(_TridentBranches, Res5ROIHeads):  # type: ignore[misc]
    """The TridentNet ROI heads of the "C4" models: :class:`Res5ROIHeads` (a plain res5 stage)
    on every branch's proposals.

    Invariant: in training the losses cover ``num_branch * N`` proposal sets against the N
    targets repeated per branch; at inference it returns N Instances, the running branches'
    detections merged by per-class NMS (``MODEL.ROI_HEADS.NMS_THRESH_TEST``, at most
    ``TEST.DETECTIONS_PER_IMAGE``)::

        heads = TridentRes5ROIHeads(cfg, backbone.output_shape())
        detections, _ = heads.eval()(images, features, proposals)    # len(detections) == N
    """


class TridentStandardROIHeads(_TridentBranches, StandardROIHeads):  # type: ignore[misc]
    """:class:`StandardROIHeads` for TridentNet, on every branch's proposals; same invariant as
    :class:`TridentRes5ROIHeads`::

        heads = TridentStandardROIHeads(cfg, backbone.output_shape())
        detections, _ = heads.eval()(images, features, proposals)    # len(detections) == N
    """
