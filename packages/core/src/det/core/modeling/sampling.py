"""Sampling of a fixed-size, fixed-ratio minibatch of foreground/background labels."""

from __future__ import annotations

import torch

__all__ = ["subsample_labels"]


def subsample_labels(labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int):
    """Randomly pick at most ``num_samples`` labels, at most ``positive_fraction`` of them positive,
    filling the rest with negatives.

    Args:
        labels: (N,) -1 = ignore, ``bg_label`` = negative, anything else = positive.
        num_samples: total number to pick.
        positive_fraction: the share of positives sought; fewer when not enough exist.
        bg_label: the label of negatives.

    Returns:
        pos_idx, neg_idx: 1-D int64 indices into ``labels`` of the chosen positives and negatives.

    Exactly two ``torch.randperm`` calls are made, positives first: training runs that share the
    RNG stream (and detectron2's) pick the same samples.
    """
    positive = torch.nonzero((labels != -1) & (labels != bg_label), as_tuple=True)[0]
    negative = torch.nonzero(labels == bg_label, as_tuple=True)[0]

    num_pos = int(num_samples * positive_fraction)
    num_pos = min(positive.numel(), num_pos)
    num_neg = num_samples - num_pos
    num_neg = min(negative.numel(), num_neg)

    perm1 = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    perm2 = torch.randperm(negative.numel(), device=negative.device)[:num_neg]

    pos_idx = positive[perm1]
    neg_idx = negative[perm2]
    return pos_idx, neg_idx
