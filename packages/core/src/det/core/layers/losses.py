"""Box and classification losses of detectron2 (its own and those it takes from fvcore)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch.nn import functional as F


def _check_reduction(fn: str, reduction: str) -> None:
    # literals and concatenation, no f-string: the focal losses run this under TorchScript too
    if reduction not in ["none", "mean", "sum"]:
        raise ValueError(fn + ": reduction must be one of ('none', 'mean', 'sum'), got '" + reduction + "'")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        # an empty batch gives 0 with a gradient path, not nan
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def _unbind_xyxy(fn: str, boxes1: torch.Tensor, boxes2: torch.Tensor):
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if not isinstance(b, torch.Tensor) or b.shape[-1:] != (4,):
            shape = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
            raise ValueError(f"{fn}: {name} must be XYXY boxes of shape (N, 4) or (4,), got {shape}")
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    if not (x2 >= x1).all():
        raise ValueError(f"{fn}: bad box in boxes1: x1 larger than x2")
    if not (y2 >= y1).all():
        raise ValueError(f"{fn}: bad box in boxes1: y1 larger than y2")
    return x1, y1, x2, y2, x1g, y1g, x2g, y2g


def smooth_l1_loss(
    input: torch.Tensor, target: torch.Tensor, beta: float, reduction: str = "none"
) -> torch.Tensor:
    """Smooth L1 (Huber / beta): 0.5 x^2 / beta for |x| < beta, else |x| - 0.5 beta.

    ``beta < 1e-5`` is exactly L1 (avoids dividing by ~0; torch's smooth_l1 differs there). Mean of
    an empty input is 0.
    """
    _check_reduction("smooth_l1_loss", reduction)
    if beta < 1e-5:
        loss = torch.abs(input - target)
    else:
        n = torch.abs(input - target)
        loss = torch.where(n < beta, 0.5 * n**2 / beta, n - 0.5 * beta)
    return _reduce(loss, reduction)


def giou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Generalized IoU loss, 1 - GIoU, of matched XYXY boxes (boxes1 predicted, boxes2 target)."""
    _check_reduction("giou_loss", reduction)
    x1, y1, x2, y2, x1g, y1g, x2g, y2g = _unbind_xyxy("giou_loss", boxes1, boxes2)
    xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    iouk = intsctk / (unionk + eps)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    miouk = iouk - ((area_c - unionk) / (area_c + eps))
    return _reduce(1 - miouk, reduction)


def _iou_and_center_distance(fn, boxes1, boxes2, eps):
    x1, y1, x2, y2, x1g, y1g, x2g, y2g = _unbind_xyxy(fn, boxes1, boxes2)
    xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
    intsct = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsct[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsct + eps
    iou = intsct / union
    # squared diagonal of the smallest enclosing box
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    diag_len = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + eps
    distance = (((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2) + (((y2 + y1) / 2 - (y1g + y2g) / 2) ** 2)
    return iou, distance / diag_len, (x2 - x1, y2 - y1, x2g - x1g, y2g - y1g)


def diou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Distance-IoU loss (Zheng et al. 2019): 1 - IoU + centre distance^2 / enclosing diagonal^2."""
    _check_reduction("diou_loss", reduction)
    iou, dist, _ = _iou_and_center_distance("diou_loss", boxes1, boxes2, eps)
    return _reduce(1 - iou + dist, reduction)


def ciou_loss(
    boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str = "none", eps: float = 1e-7
) -> torch.Tensor:
    """Complete-IoU loss: DIoU loss + alpha * v, v measuring aspect-ratio disagreement."""
    _check_reduction("ciou_loss", reduction)
    iou, dist, (w_pred, h_pred, w_gt, h_gt) = _iou_and_center_distance("ciou_loss", boxes1, boxes2, eps)
    v = (4 / (math.pi**2)) * torch.pow(torch.atan(w_gt / h_gt) - torch.atan(w_pred / h_pred), 2)
    with torch.no_grad():
        # alpha is a weight, not a path for gradients (as in the paper and detectron2)
        alpha = v / (1 - iou + v + eps)
    return _reduce(1 - iou + dist + alpha * v, reduction)


def sigmoid_focal_loss(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = -1, gamma: float = 2,
                       reduction: str = "none") -> torch.Tensor:
    """Focal loss of RetinaNet on logits: BCE * (1 - p_t)^gamma, weighted by alpha_t when alpha >= 0.

    ``targets`` holds binary labels of ``inputs``' shape. Computed in float32. (``reduction="mean"``
    of an empty input is nan, as fvcore's.)
    """
    _check_reduction("sigmoid_focal_loss", reduction)
    inputs = inputs.float()
    targets = targets.float()
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    return _alpha_weighted_reduction(loss, targets, alpha, reduction)


def sigmoid_focal_loss_star(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = -1, gamma: float = 1,
                            reduction: str = "none") -> torch.Tensor:
    """FL* of the focal-loss paper's appendix: -log(sigmoid(gamma * x * (2y - 1))) / gamma."""
    _check_reduction("sigmoid_focal_loss_star", reduction)
    inputs = inputs.float()
    targets = targets.float()
    shifted_inputs = gamma * (inputs * (2 * targets - 1))
    loss = -(F.logsigmoid(shifted_inputs)) / gamma
    return _alpha_weighted_reduction(loss, targets, alpha, reduction)


def _alpha_weighted_reduction(loss: torch.Tensor, targets: torch.Tensor, alpha: float, reduction: str) -> torch.Tensor:
    """What both focal losses end with: weight by ``alpha`` for positives and ``1 - alpha`` for
    negatives (when ``alpha >= 0``), then reduce (detectron2's: the mean of nothing stays nan,
    unlike :func:`_reduce`)."""
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


def _scripted(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``torch.jit.script(fn)``, done on first call: scripting at import would slow every import."""
    compiled: list[Callable[..., torch.Tensor]] = []

    def call(inputs, targets, alpha: float = -1, gamma: float | None = None, reduction: str = "none"):
        if not compiled:
            try:
                with warnings.catch_warnings():
                    # torch >= 2.10 deprecates TorchScript; the _jit names stay for detectron2 code
                    warnings.simplefilter("ignore", FutureWarning)
                    compiled.append(torch.jit.script(fn))
            except Exception:  # TorchScript unavailable: the same maths, eagerly
                compiled.append(fn)
        if gamma is None:
            return compiled[0](inputs, targets, alpha=alpha, reduction=reduction)
        return compiled[0](inputs, targets, alpha=alpha, gamma=gamma, reduction=reduction)

    call.__name__ = fn.__name__ + "_jit"
    call.__doc__ = f"TorchScript-compiled :func:`{fn.__name__}` (same arguments and results)."
    return call


sigmoid_focal_loss_jit = _scripted(sigmoid_focal_loss)
sigmoid_focal_loss_star_jit = _scripted(sigmoid_focal_loss_star)


__all__ = [
    "ciou_loss",
    "diou_loss",
    "giou_loss",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_jit",
    "sigmoid_focal_loss_star",
    "sigmoid_focal_loss_star_jit",
    "smooth_l1_loss",
]
