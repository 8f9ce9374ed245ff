"""Matcher: assigns each prediction (anchor, proposal) to a ground-truth box by IoU."""

from __future__ import annotations

from itertools import pairwise

import torch

__all__ = ["Matcher"]


class Matcher:
    """Matches every column (prediction) of an IoU matrix to its best row (ground truth), and
    labels the match by IoU thresholds.

    Invariant: ``labels[i]`` applies to IoU in ``[thresholds[i-1], thresholds[i])`` with -inf/+inf
    at the ends; each label is 1 (foreground), 0 (background) or -1 (ignore).

        matcher = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
        matches, match_labels = matcher(pairwise_iou(gt_boxes, anchors))   # (R,) int64, (R,) int8
    """

    def __init__(self, thresholds: list[float], labels: list[int], allow_low_quality_matches: bool = False):
        """
        Args:
            thresholds: increasing IoU thresholds splitting [0, 1] into intervals.
            labels: one label per interval (len(thresholds) + 1) in {-1, 0, 1}.
            allow_low_quality_matches: also make foreground every prediction that is the best
                match (ties included) of some ground truth, however low its IoU (Faster R-CNN
                3.1.2), so no ground truth goes unmatched.
        """
        thresholds = list(thresholds)
        if not thresholds or thresholds[0] < 0:
            raise ValueError(f"Matcher thresholds must be a non-empty list of IoUs >= 0, got {thresholds}")
        thresholds.insert(0, -float("inf"))
        thresholds.append(float("inf"))
        if not all(low <= high for (low, high) in pairwise(thresholds)):
            raise ValueError(f"Matcher thresholds must be increasing, got {thresholds[1:-1]}")
        if not all(label in (-1, 0, 1) for label in labels):
            raise ValueError(f"Matcher labels must each be -1, 0 or 1, got {labels}")
        if len(labels) != len(thresholds) - 1:
            raise ValueError(
                f"Matcher needs len(thresholds) + 1 labels: got {len(thresholds) - 2} thresholds "
                f"and {len(labels)} labels"
            )
        self.thresholds = thresholds
        self.labels = labels
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix: torch.Tensor):
        """
        Args:
            match_quality_matrix: (M, N) IoU between M ground truths and N predictions.

        Returns:
            matches: (N,) int64, index of the matched ground truth of each prediction.
            match_labels: (N,) int8, its label (1 / 0 / -1).
        """
        if not isinstance(match_quality_matrix, torch.Tensor) or match_quality_matrix.dim() != 2:
            raise ValueError(
                "Matcher expects a 2-D (num_gt, num_predictions) tensor, got "
                f"{getattr(match_quality_matrix, 'shape', type(match_quality_matrix).__name__)}"
            )
        if match_quality_matrix.numel() == 0:
            # no ground truth (or no prediction): everything gets the lowest interval's label
            default_matches = match_quality_matrix.new_full(
                (match_quality_matrix.size(1),), 0, dtype=torch.int64
            )
            default_match_labels = match_quality_matrix.new_full(
                (match_quality_matrix.size(1),), self.labels[0], dtype=torch.int8
            )
            return default_matches, default_match_labels

        if not torch.all(match_quality_matrix >= 0):
            raise ValueError("Matcher expects a match quality (IoU) matrix with values >= 0")

        matched_vals, matches = match_quality_matrix.max(dim=0)
        match_labels = matches.new_full(matches.size(), 1, dtype=torch.int8)

        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            low_high = (matched_vals >= low) & (matched_vals < high)
            match_labels[low_high] = label

        if self.allow_low_quality_matches:
            self.set_low_quality_matches_(match_labels, match_quality_matrix)

        return matches, match_labels

    def set_low_quality_matches_(
        self, match_labels: torch.Tensor, match_quality_matrix: torch.Tensor
    ) -> None:
        """Label 1 every prediction that has the highest quality with some ground truth.

        ``matches`` is left as it is: such a prediction keeps its own best ground truth, which
        may differ from the one it is the best match for.
        """
        highest_quality_foreach_gt, _ = match_quality_matrix.max(dim=1)
        # every tie counts: several anchors can share the best IoU with one ground truth
        _, pred_inds_with_highest_quality = torch.nonzero(
            match_quality_matrix == highest_quality_foreach_gt[:, None], as_tuple=True
        )
        match_labels[pred_inds_with_highest_quality] = 1
