"""Box <-> regression-target encodings used by RPN, ROI heads and RetinaNet.

The parametrisations are those of R-CNN (Girshick et al., appendix C): center offsets relative to
the source box size and log-space size ratios, each multiplied by a weight.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from det.core.layers import cat, ciou_loss, diou_loss, giou_loss, smooth_l1_loss

__all__ = [
    "BOX_REG_LOSS_TYPES",
    "Box2BoxTransform",
    "Box2BoxTransformLinear",
    "Box2BoxTransformRotated",
    "_dense_box_regression_loss",
]

# the box_reg_loss_type values every detectron2 box head accepts (RPN, Fast R-CNN, RetinaNet)
BOX_REG_LOSS_TYPES = ("smooth_l1", "giou", "diou", "ciou")

# exp(dw) is clamped so that one box can grow at most 1000/16 times (a 16 px anchor to 1000 px)
_DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


def _check_boxes(name: str, boxes, dim: int) -> None:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, {dim}), got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(boxes.shape)}")


def _weighted_deltas(deltas: torch.Tensor, weights, scale_clamp: float) -> list[torch.Tensor]:
    """Per coordinate (dx, dy, dw, dh[, da]) the (N, K) columns of (N, K * len(weights)) ``deltas``
    divided by their weight, with dw and dh clamped to ``scale_clamp`` (exp() of them stays finite)."""
    n = len(weights)
    parts = [deltas[:, i::n] / w for i, w in enumerate(weights)]
    parts[2] = torch.clamp(parts[2], max=scale_clamp)
    parts[3] = torch.clamp(parts[3], max=scale_clamp)
    return parts


class Box2BoxTransform:
    """Encodes a target box relative to a source box as deltas (dx, dy, dw, dh), and back.

    Invariant: ``apply_deltas(get_deltas(src, tgt), src) == tgt`` (up to float error) for boxes of
    positive size; dw/dh are clamped at ``scale_clamp`` when decoding.

        t = Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0))
        deltas = t.get_deltas(anchors, gt_boxes)       # (N, 4)
        boxes = t.apply_deltas(pred_deltas, anchors)   # (N, k*4) for k classes
    """

    def __init__(self, weights: tuple[float, float, float, float], scale_clamp: float = _DEFAULT_SCALE_CLAMP):
        """
        Args:
            weights: scaling of (dx, dy, dw, dh); larger weights make the targets larger, which
                changes the balance between regression and classification losses.
            scale_clamp: upper bound of dw and dh when decoding, so exp() cannot overflow.
        """
        self.weights = weights
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas that turn each of ``src_boxes`` (N, 4) XYXY into ``target_boxes`` (N, 4)."""
        _check_boxes("src_boxes", src_boxes, 4)
        _check_boxes("target_boxes", target_boxes, 4)

        src_widths = src_boxes[:, 2] - src_boxes[:, 0]
        src_heights = src_boxes[:, 3] - src_boxes[:, 1]
        src_ctr_x = src_boxes[:, 0] + 0.5 * src_widths
        src_ctr_y = src_boxes[:, 1] + 0.5 * src_heights

        target_widths = target_boxes[:, 2] - target_boxes[:, 0]
        target_heights = target_boxes[:, 3] - target_boxes[:, 1]
        target_ctr_x = target_boxes[:, 0] + 0.5 * target_widths
        target_ctr_y = target_boxes[:, 1] + 0.5 * target_heights

        wx, wy, ww, wh = self.weights
        dx = wx * (target_ctr_x - src_ctr_x) / src_widths
        dy = wy * (target_ctr_y - src_ctr_y) / src_heights
        dw = ww * torch.log(target_widths / src_widths)
        dh = wh * torch.log(target_heights / src_heights)

        deltas = torch.stack((dx, dy, dw, dh), dim=1)
        if not (src_widths > 0).all().item():
            raise ValueError("Input boxes to Box2BoxTransform are not valid! src_boxes need x1 > x0.")
        return deltas

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode ``deltas`` (N, k*4) against ``boxes`` (N, 4) XYXY; returns (N, k*4) XYXY."""
        # decoding in fp32 even under autocast: small errors here are whole pixels
        deltas = deltas.float()
        boxes = boxes.to(deltas.dtype)

        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights

        dx, dy, dw, dh = _weighted_deltas(deltas, self.weights, self.scale_clamp)

        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]

        x1 = pred_ctr_x - 0.5 * pred_w
        y1 = pred_ctr_y - 0.5 * pred_h
        x2 = pred_ctr_x + 0.5 * pred_w
        y2 = pred_ctr_y + 0.5 * pred_h
        pred_boxes = torch.stack((x1, y1, x2, y2), dim=-1)
        return pred_boxes.reshape(deltas.shape)


class Box2BoxTransformRotated:
    """Box2BoxTransform for rotated boxes (cx, cy, w, h, angle in degrees): deltas (dx, dy, dw, dh, da).

    Invariant: ``apply_deltas(get_deltas(src, tgt), src)`` equals ``tgt`` with the angle brought
    into [-180, 180); ``da`` is in radians (times its weight), box angles in degrees.

        t = Box2BoxTransformRotated(weights=(10.0, 10.0, 5.0, 5.0, 1.0))
        deltas = t.get_deltas(src, tgt)               # (N, 5)
        boxes = t.apply_deltas(deltas, src)           # (N, 5)
    """

    def __init__(
        self, weights: tuple[float, float, float, float, float], scale_clamp: float = _DEFAULT_SCALE_CLAMP
    ):
        self.weights = weights
        self.scale_clamp = scale_clamp

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """Deltas (N, 5) that turn ``src_boxes`` (N, 5) into ``target_boxes`` (N, 5)."""
        _check_boxes("src_boxes", src_boxes, 5)
        _check_boxes("target_boxes", target_boxes, 5)

        src_ctr_x, src_ctr_y, src_widths, src_heights, src_angles = torch.unbind(src_boxes, dim=1)
        target_ctr_x, target_ctr_y, target_widths, target_heights, target_angles = torch.unbind(
            target_boxes, dim=1
        )

        wx, wy, ww, wh, wa = self.weights
        dx = wx * (target_ctr_x - src_ctr_x) / src_widths
        dy = wy * (target_ctr_y - src_ctr_y) / src_heights
        dw = ww * torch.log(target_widths / src_widths)
        dh = wh * torch.log(target_heights / src_heights)
        # radians keep da on the same scale as the other deltas (RRPN's convention)
        da = target_angles - src_angles
        da = (da + 180.0) % 360.0 - 180.0
        da *= wa * math.pi / 180.0

        deltas = torch.stack((dx, dy, dw, dh, da), dim=1)
        if not (src_widths > 0).all().item():
            raise ValueError("Input boxes to Box2BoxTransformRotated are not valid! src_boxes need w > 0.")
        return deltas

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode ``deltas`` (N, k*5) against ``boxes`` (N, 5); returns (N, k*5)."""
        if deltas.shape[1] % 5 != 0 or boxes.shape[1] != 5:
            raise ValueError(
                f"Box2BoxTransformRotated.apply_deltas expects deltas (N, k*5) and boxes (N, 5), "
                f"got {tuple(deltas.shape)} and {tuple(boxes.shape)}"
            )
        boxes = boxes.to(deltas.dtype).unsqueeze(2)

        ctr_x = boxes[:, 0]
        ctr_y = boxes[:, 1]
        widths = boxes[:, 2]
        heights = boxes[:, 3]
        angles = boxes[:, 4]

        dx, dy, dw, dh, da = _weighted_deltas(deltas, self.weights, self.scale_clamp)

        pred_boxes = torch.zeros_like(deltas)
        pred_boxes[:, 0::5] = dx * widths + ctr_x
        pred_boxes[:, 1::5] = dy * heights + ctr_y
        pred_boxes[:, 2::5] = torch.exp(dw) * widths
        pred_boxes[:, 3::5] = torch.exp(dh) * heights

        pred_angle = da * 180.0 / math.pi + angles
        pred_angle = (pred_angle + 180.0) % 360.0 - 180.0
        pred_boxes[:, 4::5] = pred_angle
        return pred_boxes


class Box2BoxTransformLinear:
    """The FCOS encoding: distances (l, t, r, b) from the source box center to the target's sides.

    Invariant: decoded boxes are always valid (negative distances are clipped to 0); with
    ``normalize_by_size`` the distances are in units of the source box width/height.

        t = Box2BoxTransformLinear(normalize_by_size=True)
        deltas = t.get_deltas(anchors, gt_boxes)      # (N, 4)
        boxes = t.apply_deltas(deltas, anchors)       # (N, 4)
    """

    def __init__(self, normalize_by_size: bool = True):
        self.normalize_by_size = normalize_by_size

    def get_deltas(self, src_boxes: torch.Tensor, target_boxes: torch.Tensor) -> torch.Tensor:
        """(l, t, r, b) distances (N, 4) from each src center to the sides of its target."""
        _check_boxes("src_boxes", src_boxes, 4)
        _check_boxes("target_boxes", target_boxes, 4)

        src_ctr_x = 0.5 * (src_boxes[:, 0] + src_boxes[:, 2])
        src_ctr_y = 0.5 * (src_boxes[:, 1] + src_boxes[:, 3])

        target_l = src_ctr_x - target_boxes[:, 0]
        target_t = src_ctr_y - target_boxes[:, 1]
        target_r = target_boxes[:, 2] - src_ctr_x
        target_b = target_boxes[:, 3] - src_ctr_y

        deltas = torch.stack((target_l, target_t, target_r, target_b), dim=1)
        if self.normalize_by_size:
            stride_w = src_boxes[:, 2] - src_boxes[:, 0]
            stride_h = src_boxes[:, 3] - src_boxes[:, 1]
            strides = torch.stack([stride_w, stride_h, stride_w, stride_h], dim=1)
            deltas = deltas / strides
        return deltas

    def apply_deltas(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode ``deltas`` (N, k*4) against ``boxes`` (N, 4); returns (N, k*4) XYXY."""
        # a side at negative distance would make x1 > x2 (FCOS, sec. 2.1)
        deltas = F.relu(deltas)
        boxes = boxes.to(deltas.dtype)

        ctr_x = 0.5 * (boxes[:, 0] + boxes[:, 2])
        ctr_y = 0.5 * (boxes[:, 1] + boxes[:, 3])
        if self.normalize_by_size:
            stride_w = boxes[:, 2] - boxes[:, 0]
            stride_h = boxes[:, 3] - boxes[:, 1]
            strides = torch.stack([stride_w, stride_h, stride_w, stride_h], dim=1)
            deltas = deltas * strides.repeat(1, deltas.shape[1] // 4)

        l = deltas[:, 0::4]  # noqa: E741
        t = deltas[:, 1::4]
        r = deltas[:, 2::4]
        b = deltas[:, 3::4]

        pred_boxes = torch.zeros_like(deltas)
        pred_boxes[:, 0::4] = ctr_x[:, None] - l
        pred_boxes[:, 1::4] = ctr_y[:, None] - t
        pred_boxes[:, 2::4] = ctr_x[:, None] + r
        pred_boxes[:, 3::4] = ctr_y[:, None] + b
        return pred_boxes


def _dense_box_regression_loss(
    anchors,
    box2box_transform,
    pred_anchor_deltas: list[torch.Tensor],
    gt_boxes: list[torch.Tensor],
    fg_mask: torch.Tensor,
    box_reg_loss_type: str = "smooth_l1",
    smooth_l1_beta: float = 0.0,
) -> torch.Tensor:
    """Box regression loss of dense detectors (RPN, RetinaNet), summed over foreground anchors.

    Args:
        anchors: anchors of each feature level: list[Boxes] or list[Tensor (R_i, 4)].
        box2box_transform: the encoding the deltas are in.
        pred_anchor_deltas: per level, (N, R_i, 4) predicted deltas.
        gt_boxes: per image, (R, 4) the matched ground-truth box of every anchor (R = sum R_i).
        fg_mask: (N, R) bool, anchors that count.
        box_reg_loss_type: "smooth_l1", "giou", "diou" or "ciou".
        smooth_l1_beta: beta of the smooth L1 loss (0 = L1).
    """
    # Boxes (or RotatedBoxes) per level, or plain (R_i, 4) tensors
    anchors = type(anchors[0]).cat(anchors).tensor if hasattr(anchors[0], "tensor") else cat(anchors)
    if box_reg_loss_type == "smooth_l1":
        gt_anchor_deltas = [box2box_transform.get_deltas(anchors, k) for k in gt_boxes]
        gt_anchor_deltas = torch.stack(gt_anchor_deltas)  # (N, R, 4)
        loss_box_reg = smooth_l1_loss(
            cat(pred_anchor_deltas, dim=1)[fg_mask],
            gt_anchor_deltas[fg_mask],
            beta=smooth_l1_beta,
            reduction="sum",
        )
    elif box_reg_loss_type in ("giou", "diou", "ciou"):
        loss_fn = {"giou": giou_loss, "diou": diou_loss, "ciou": ciou_loss}[box_reg_loss_type]
        pred_boxes = [box2box_transform.apply_deltas(k, anchors) for k in cat(pred_anchor_deltas, dim=1)]
        loss_box_reg = loss_fn(
            torch.stack(pred_boxes)[fg_mask], torch.stack(gt_boxes)[fg_mask], reduction="sum"
        )
    else:
        raise ValueError(
            f"Invalid dense box regression loss type '{box_reg_loss_type}'; "
            f"expected one of {BOX_REG_LOSS_TYPES}"
        )
    return loss_box_reg
