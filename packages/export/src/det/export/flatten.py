"""Flattening det's ``list[dict]`` / ``Instances`` contract into tensors and back.

The exported graph takes one image tensor and returns a tuple of tensors; everything that needs
Python objects or per-instance Python loops (rescaling to ``height``/``width``, pasting masks,
decoding keypoint heatmaps) runs after it, in :meth:`TracingAdapter.unflatten_outputs`, exactly as
the eager models do after their own network. This mirrors detectron2's deployment, where the
traced model returns instances at the input size and ``detector_postprocess`` runs outside.

The inference inside the graph is an export-friendly rewrite of the eager code path: the same
modules, weights and formulas, but no Python control flow on tensor values (``if mask.all()``),
no ``len()`` of data-dependent sizes, class-wise NMS as one ``torchvision::nms`` over
class-offset boxes, and ``torch.sym_min`` for top-k sizes, so that image size and instance count
stay symbolic.

Exported: GeneralizedRCNN (RPN + StandardROIHeads, Res5ROIHeads or CascadeROIHeads, with mask
and keypoint heads), ProposalNetwork, PanopticFPN (instance and semantic branches in the graph,
the panoptic merge in :func:`unflatten_outputs`), RetinaNet and SemanticSegmentor. Rotated-box
models (RRPN, RROIHeads) are refused: torchvision has no rotated NMS or ROIAlign op to export.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DictSchema",
    "IdentitySchema",
    "InstancesSchema",
    "ListSchema",
    "Schema",
    "TensorWrapSchema",
    "TracingAdapter",
    "TupleSchema",
    "UnsupportedModelError",
    "batched_nms_exportable",
    "flatten_to_tuple",
    "supported_architectures",
]


class UnsupportedModelError(NotImplementedError):
    """A model (or one of its parts) that det.export cannot export; the message names the part."""


_SUPPORTED_ROI_HEADS = ("StandardROIHeads", "Res5ROIHeads", "CascadeROIHeads")
_SUPPORTED_META_ARCHS = (
    "GeneralizedRCNN",
    "PanopticFPN",
    "ProposalNetwork",
    "RetinaNet",
    "SemanticSegmentor",
)
# parts on rotated boxes: their NMS, IoU and ROIAlign are det ops with no torchvision counterpart
_ROTATED_PARTS = ("RRPN", "RROIHeads", "RotatedAnchorGenerator", "RotatedFastRCNNOutputLayers")


def supported_architectures() -> tuple[str, ...]:
    """Meta-architectures :class:`TracingAdapter` can export."""
    return _SUPPORTED_META_ARCHS


def _class_names(obj: object) -> list[str]:
    # by name, so that det.export needs none of the head distributions installed
    return [c.__name__ for c in type(obj).__mro__]


def _architecture(model: Any) -> str:
    names = _class_names(model)
    # the class itself, else its nearest supported base (PanopticFPN is met before GeneralizedRCNN)
    for name in names:
        if name in _SUPPORTED_META_ARCHS:
            return name
    raise UnsupportedModelError(
        f"det.export cannot export META_ARCHITECTURE {type(model).__name__}: supported are "
        f"{', '.join(_SUPPORTED_META_ARCHS)}"
    )


def _refuse_rotated(kind: str, part: Any) -> None:
    for name in _class_names(part):
        if name in _ROTATED_PARTS:
            raise UnsupportedModelError(
                f"det.export cannot export {kind} {type(part).__name__}: rotated-box models ({name}) are "
                "not exportable, torchvision has no rotated NMS or ROIAlign op for the graph"
            )


def _check_rpn(model: Any, architecture: str) -> None:
    rpn = model.proposal_generator
    if rpn is None:
        raise UnsupportedModelError(
            f"det.export cannot export {architecture} without a proposal generator "
            "(precomputed proposals, MODEL.LOAD_PROPOSALS): the exported graph takes only an image"
        )
    _refuse_rotated("PROPOSAL_GENERATOR", rpn)
    _refuse_rotated("ANCHOR_GENERATOR", getattr(rpn, "anchor_generator", None))
    if type(rpn).__name__ != "RPN":
        raise UnsupportedModelError(
            f"det.export cannot export PROPOSAL_GENERATOR {type(rpn).__name__}: only RPN is supported"
        )


def _check_rcnn_parts(model: Any, architecture: str) -> None:
    _check_rpn(model, architecture)
    heads = model.roi_heads
    name = type(heads).__name__
    _refuse_rotated("ROI_HEADS", heads)
    if name not in _SUPPORTED_ROI_HEADS:
        raise UnsupportedModelError(
            f"det.export cannot export ROI_HEADS {name}: supported are {', '.join(_SUPPORTED_ROI_HEADS)}"
        )
    if name == "CascadeROIHeads":
        for stage, predictor in enumerate(heads.box_predictor):
            _refuse_rotated("ROI box predictor", predictor)
            # each stage's boxes are the next stage's proposals: one box per region
            bbox_pred = getattr(predictor, "bbox_pred", None)
            if bbox_pred is not None and bbox_pred.out_features != 4:
                raise UnsupportedModelError(
                    f"det.export cannot export CascadeROIHeads stage {stage} with class-specific "
                    "box regression: cascade stages need CLS_AGNOSTIC_BBOX_REG"
                )
    else:
        _refuse_rotated("ROI box predictor", heads.box_predictor)
    if getattr(heads, "mask_on", False) and name != "Res5ROIHeads" and heads.mask_pooler is None:
        raise UnsupportedModelError("det.export cannot export a mask head without a mask pooler")
    if getattr(heads, "keypoint_on", False) and heads.keypoint_pooler is None:
        raise UnsupportedModelError("det.export cannot export a keypoint head without a keypoint pooler")
    if architecture == "PanopticFPN" and not getattr(heads, "mask_on", False):
        # the panoptic merge pastes instance masks; eager PanopticFPN fails without them too
        raise UnsupportedModelError(
            "det.export cannot export PanopticFPN without a mask head (MODEL.MASK_ON)"
        )


# --- export-friendly building blocks ------------------------------------------------------------


def batched_nms_exportable(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Class-wise NMS as a single ``torchvision::nms`` over boxes offset by class.

    torchvision's own batched_nms picks between this and a loop over ``torch.unique(idxs)`` by
    the number of boxes; the loop is data-dependent Python control flow, this is one op that
    torch.export keeps (and ONNX maps to NonMaxSuppression). Boxes of different classes are moved
    apart so they never overlap. The kept indices are sorted by decreasing score.
    """
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    # the 0 appended keeps max() defined on an empty set of boxes
    max_coordinate = torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max()
    offsets = idxs.to(boxes) * (max_coordinate + 1)
    keep: Tensor = torch.ops.torchvision.nms(boxes + offsets[:, None], scores, float(iou_threshold))
    return keep


def _is_tracing() -> bool:
    """``torch.jit.is_tracing()``."""
    return torch._C._get_tracing_state() is not None


def _register_torchvision_ops() -> None:
    """Import torchvision before any tracing: its import runs ``torchvision::_cuda_version``, an
    op that returns an int, which ``torch.jit.trace`` cannot record (the import would fail inside
    the trace)."""
    import torchvision  # noqa: F401


def _clip(boxes: Tensor, height: Any, width: Any) -> Tensor:
    """``Boxes.clip`` on an (R, 4) tensor: x to [0, width], y to [0, height]."""
    x1 = boxes[:, 0].clamp(min=0, max=width)
    y1 = boxes[:, 1].clamp(min=0, max=height)
    x2 = boxes[:, 2].clamp(min=0, max=width)
    y2 = boxes[:, 3].clamp(min=0, max=height)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def _roi_align(module: Any, x: Tensor, rois: Tensor) -> Tensor:
    """An ``ROIAlign`` module's forward as the bare ``torchvision::roi_align`` op.

    torchvision's Python wrapper (what det's reference op calls) adds a ``_cuda_version`` check
    to the graph, which a saved program cannot load; the op itself computes the same values and
    maps to ONNX RoiAlign.
    """
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    name = type(module).__name__
    if name != "ROIAlign":
        raise UnsupportedModelError(
            f"det.export cannot export the pooler type {name}: only ROIAlign (ROIAlignV2) is supported"
        )
    size = module.output_size
    height, width = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    pooled: Tensor = torch.ops.torchvision.roi_align(
        x,
        rois.to(x.dtype),
        float(module.spatial_scale),
        int(height),
        int(width),
        int(module.sampling_ratio),
        bool(module.aligned),
    )
    return pooled


def _pool(pooler: Any, features: list[Tensor], boxes: Tensor) -> Tensor:
    """``ROIPooler(features, [Boxes(boxes)])`` for one image, without data-dependent indexing.

    Every box is pooled from every level and the level it belongs to (FPN eqn. 1, the same
    float operations as ``assign_boxes_to_levels``) is selected with ``torch.where``; each box's
    result depends only on its own level, so the values equal the eager pooler's.
    """
    rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)
    level_poolers = pooler.level_poolers
    if len(level_poolers) != len(features):
        raise ValueError(f"ROIPooler has {len(level_poolers)} levels but got {len(features)} feature maps")
    if len(level_poolers) == 1:
        return _roi_align(level_poolers[0], features[0], rois)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    box_sizes = torch.sqrt(area)
    levels = torch.floor(pooler.canonical_level + torch.log2(box_sizes / pooler.canonical_box_size + 1e-8))
    levels = (
        torch.clamp(levels, min=pooler.min_level, max=pooler.max_level).to(torch.int64) - pooler.min_level
    )
    output: Tensor | None = None
    for level, (x, level_pooler) in enumerate(zip(features, level_poolers)):
        pooled = _roi_align(level_pooler, x, rois)
        output = (
            pooled if output is None else torch.where((levels == level)[:, None, None, None], pooled, output)
        )
    assert output is not None
    return output


def _topk_size(size: Any, k: int) -> Any:
    """``min(size, k)`` for a top-k of a data-dependent ``size``, kept symbolic.

    Under torch.export ``size`` is a SymInt and ``torch.sym_min`` keeps it so (a Python ``min()``
    would fix the image size range); under ``torch.jit.trace`` sizes are 0-dim tensors, which
    ``torch.clamp`` keeps in the traced graph. Both give the same number.
    """
    if isinstance(size, Tensor):
        return torch.clamp(size, max=k)
    return torch.sym_min(size, k)


def _select(mask: Tensor, *tensors: Tensor) -> list[Tensor]:
    """``t[mask]`` for each tensor, through one ``nonzero`` so that all results share one size."""
    index = mask.nonzero()[:, 0]
    return [t[index] for t in tensors]


def _rpn_proposals(
    rpn: Any, features: dict[str, Tensor], image_size: tuple[Any, Any]
) -> tuple[Tensor, Tensor]:
    """``RPN.forward`` + ``find_top_rpn_proposals`` at inference, for one image: (P, 4) boxes and
    their (P,) objectness logits, by decreasing logit."""
    feats = [features[f] for f in rpn.in_features]
    anchors = rpn.anchor_generator(feats)
    pred_logits, pred_deltas = rpn.rpn_head(feats)
    pre_nms_topk = rpn.pre_nms_topk[False]
    box_dim = anchors[0].tensor.shape[1]
    boxes_all, scores_all, levels_all = [], [], []
    for level, (anchors_i, logits_i, deltas_i) in enumerate(zip(anchors, pred_logits, pred_deltas)):
        logits = logits_i[0].permute(1, 2, 0).flatten()  # (Hi*Wi*A,)
        _, hi, wi = deltas_i[0].shape
        deltas = deltas_i[0].view(-1, box_dim, hi, wi).permute(2, 3, 0, 1).reshape(-1, box_dim)
        proposals = rpn.box2box_transform.apply_deltas(deltas, anchors_i.tensor)
        k = _topk_size(logits.shape[0], pre_nms_topk)
        scores, idx = logits.topk(k)
        boxes_all.append(proposals[idx])
        scores_all.append(scores)
        levels_all.append(torch.full_like(idx, level))
    boxes, scores, levels = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(levels_all)

    # eager drops non-finite predictions only when there are some; dropping none is a no-op
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
    boxes, scores, levels = _select(valid, boxes, scores, levels)
    boxes = _clip(boxes, *image_size)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (widths > rpn.min_box_size) & (heights > rpn.min_box_size)
    boxes, scores, levels = _select(keep, boxes, scores, levels)
    keep_idx = batched_nms_exportable(boxes, scores, levels, rpn.nms_thresh)[: rpn.post_nms_topk[False]]
    return boxes[keep_idx], scores[keep_idx]


def _predict_boxes_and_probs(
    box_predictor: Any, predictions: tuple[Tensor, Tensor], proposals: Tensor
) -> tuple[Tensor, Tensor]:
    """``FastRCNNOutputLayers.predict_boxes`` and ``predict_probs`` for one image."""
    logits, deltas = predictions
    boxes = box_predictor.box2box_transform.apply_deltas(deltas, proposals)
    probs = logits.sigmoid() if getattr(box_predictor, "use_sigmoid_ce", False) else F.softmax(logits, dim=-1)
    return boxes, probs


def _fast_rcnn_inference(
    box_predictor: Any, boxes: Tensor, probs: Tensor, image_size: tuple[Any, Any]
) -> tuple[Tensor, Tensor, Tensor]:
    """``fast_rcnn_inference_single_image`` with ``box_predictor``'s thresholds: boxes, scores, classes.

    ``boxes`` are (R, K*4) or class-agnostic (R, 4) predictions, ``probs`` (R, K+1).
    """
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(probs).all(dim=1)
    boxes, probs = _select(valid, boxes, probs)
    probs = probs[:, :-1]
    num_bbox_reg_classes = boxes.shape[1] // 4
    boxes = _clip(boxes.reshape(-1, 4), *image_size).view(-1, num_bbox_reg_classes, 4)

    filter_inds = (probs > box_predictor.test_score_thresh).nonzero()
    rows, classes = filter_inds[:, 0], filter_inds[:, 1]
    boxes = boxes[rows, 0] if num_bbox_reg_classes == 1 else boxes[rows, classes]
    scores = probs[rows, classes]
    keep = batched_nms_exportable(boxes, scores, classes, box_predictor.test_nms_thresh)
    if box_predictor.test_topk_per_image >= 0:
        keep = keep[: box_predictor.test_topk_per_image]
    return boxes[keep], scores[keep], classes[keep]


def _mask_probs(mask_logits: Tensor, classes: Tensor) -> Tensor:
    """``mask_rcnn_inference``: (N, 1, M, M) probabilities of each detection's class."""
    if mask_logits.shape[1] == 1:
        return mask_logits.sigmoid()
    indices = torch.arange(mask_logits.shape[0], device=classes.device)
    return mask_logits[indices, classes][:, None].sigmoid()


def _preprocess(model: Any, image: Tensor) -> tuple[Tensor, tuple[Any, Any]]:
    """``preprocess_image`` of one image: normalised, padded (1, C, Hp, Wp) and its (H, W).

    ``ImageList.from_tensors`` turns sizes into Python ints, which would fix the image size of
    the exported graph; this keeps them symbolic and pads the same way.
    """
    x = (image.to(model.pixel_mean.device) - model.pixel_mean) / model.pixel_std
    height, width = x.shape[-2], x.shape[-1]
    size_divisibility = model.backbone.size_divisibility
    constraints = model.backbone.padding_constraints or {}
    max_h, max_w = height, width
    square_size = constraints.get("square_size", 0)
    if square_size > 0:
        max_h = max_w = square_size
    size_divisibility = constraints.get("size_divisibility", size_divisibility)
    if size_divisibility > 1:
        max_h = (max_h + size_divisibility - 1) // size_divisibility * size_divisibility
        max_w = (max_w + size_divisibility - 1) // size_divisibility * size_divisibility
    padded = F.pad(x, [0, max_w - width, 0, max_h - height], value=0.0)
    return padded.unsqueeze(0), (height, width)


def _cascade_boxes_and_probs(
    heads: Any, features: dict[str, Tensor], proposals: Tensor, image_size: tuple[Any, Any]
) -> tuple[Tensor, Tensor]:
    """``CascadeROIHeads._forward_box`` at inference up to ``fast_rcnn_inference``, for one image.

    Stage k pools the (clipped) boxes of stage k-1; the last stage's boxes are returned with
    the class probabilities averaged over the stages, summed in the eager order. Empty boxes
    stay between stages (as eager at inference), so every stage scores the same regions.
    """
    box_in = [features[f] for f in heads.box_in_features]
    probs_sum: Tensor | None = None
    boxes = proposals
    for stage in range(heads.num_cascade_stages):
        if stage > 0:
            proposals = _clip(boxes, *image_size)
        predictor = heads.box_predictor[stage]
        box_features = heads.box_head[stage](_pool(heads.box_pooler, box_in, proposals))
        boxes, probs = _predict_boxes_and_probs(predictor, predictor(box_features), proposals)
        probs_sum = probs if probs_sum is None else probs_sum + probs
    assert probs_sum is not None
    return boxes, probs_sum * (1.0 / heads.num_cascade_stages)


def _rcnn_instances(
    model: Any, features: dict[str, Tensor], image_size: tuple[Any, Any]
) -> dict[str, Tensor]:
    """The RPN and ROI heads of a GeneralizedRCNN on one image's features: the instance fields."""
    proposals, _ = _rpn_proposals(model.proposal_generator, features, image_size)

    heads = model.roi_heads
    name = type(heads).__name__
    res5 = name == "Res5ROIHeads"
    if name == "CascadeROIHeads":
        box_predictor = heads.box_predictor[-1]  # its thresholds, as eager uses the last stage's
        pred_boxes, probs = _cascade_boxes_and_probs(heads, features, proposals, image_size)
    else:
        box_predictor = heads.box_predictor
        if res5:
            box_in = [features[f] for f in heads.in_features]
            box_features = heads.res5(_pool(heads.pooler, box_in, proposals)).mean(dim=[2, 3])
        else:
            box_features = heads.box_head(
                _pool(heads.box_pooler, [features[f] for f in heads.box_in_features], proposals)
            )
        pred_boxes, probs = _predict_boxes_and_probs(box_predictor, box_predictor(box_features), proposals)
    boxes, scores, classes = _fast_rcnn_inference(box_predictor, pred_boxes, probs, image_size)
    out = {"pred_boxes": boxes, "scores": scores, "pred_classes": classes}

    if heads.mask_on:
        if res5:
            x = heads.res5(_pool(heads.pooler, [features[f] for f in heads.in_features], boxes))
        else:
            x = _pool(heads.mask_pooler, [features[f] for f in heads.mask_in_features], boxes)
        out["pred_masks"] = _mask_probs(heads.mask_head.layers(x), classes)
    if getattr(heads, "keypoint_on", False):
        x = _pool(heads.keypoint_pooler, [features[f] for f in heads.keypoint_in_features], boxes)
        out["pred_keypoint_heatmaps"] = heads.keypoint_head.layers(x)
    return out


def _rcnn_forward(model: Any, image: Tensor) -> dict[str, Tensor]:
    padded, image_size = _preprocess(model, image)
    return _rcnn_instances(model, model.backbone(padded), image_size)


def _proposal_forward(model: Any, image: Tensor) -> dict[str, Tensor]:
    padded, image_size = _preprocess(model, image)
    boxes, logits = _rpn_proposals(model.proposal_generator, model.backbone(padded), image_size)
    return {"proposal_boxes": boxes, "objectness_logits": logits}


def _panoptic_forward(model: Any, image: Tensor) -> dict[str, Tensor]:
    padded, image_size = _preprocess(model, image)
    features = model.backbone(padded)
    out = _rcnn_instances(model, features, image_size)
    logits, _ = model.sem_seg_head(features, None)
    out["sem_seg"] = logits[0]
    return out


def _retinanet_forward(model: Any, image: Tensor) -> dict[str, Tensor]:
    padded, _ = _preprocess(model, image)
    features = model.backbone(padded)
    features = [features[f] for f in model.head_in_features]
    pred_logits, pred_deltas = model.head(features)
    anchors = model.anchor_generator(features)
    num_classes = model.num_classes

    boxes_all, scores_all, classes_all = [], [], []
    for anchors_i, logits_i, deltas_i in zip(anchors, pred_logits, pred_deltas):
        _, _, hi, wi = logits_i.shape
        scores = (
            logits_i[0].view(-1, num_classes, hi, wi).permute(2, 3, 0, 1).reshape(-1, num_classes).sigmoid()
        )
        deltas = deltas_i[0].view(-1, 4, hi, wi).permute(2, 3, 0, 1).reshape(-1, 4)
        candidates = (scores > model.test_score_thresh).nonzero()  # (anchor, class), row-major as eager
        candidate_scores = scores[candidates[:, 0], candidates[:, 1]]
        k = _topk_size(candidate_scores.shape[0], model.test_topk_candidates)
        top_scores, idx = candidate_scores.topk(k)
        anchor_idx, class_idx = candidates[idx, 0], candidates[idx, 1]
        boxes_all.append(
            model.box2box_transform.apply_deltas(deltas[anchor_idx], anchors_i.tensor[anchor_idx])
        )
        scores_all.append(top_scores)
        classes_all.append(class_idx)
    boxes, scores, classes = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(classes_all)
    keep = batched_nms_exportable(boxes, scores, classes, model.test_nms_thresh)[
        : model.max_detections_per_image
    ]
    return {"pred_boxes": boxes[keep], "scores": scores[keep], "pred_classes": classes[keep]}


def _semseg_forward(model: Any, image: Tensor) -> dict[str, Tensor]:
    padded, _ = _preprocess(model, image)
    features = model.backbone(padded)
    logits, _ = model.sem_seg_head(features, None)
    return {"sem_seg": logits[0]}


_FORWARDS = {
    "GeneralizedRCNN": _rcnn_forward,
    "PanopticFPN": _panoptic_forward,
    "ProposalNetwork": _proposal_forward,
    "RetinaNet": _retinanet_forward,
    "SemanticSegmentor": _semseg_forward,
}


def _outputs_schema(model: Any, architecture: str) -> tuple[str, ...]:
    if architecture == "SemanticSegmentor":
        return ("sem_seg",)
    if architecture == "ProposalNetwork":
        return ("proposal_boxes", "objectness_logits")
    schema = ["pred_boxes", "scores", "pred_classes"]
    if architecture in ("GeneralizedRCNN", "PanopticFPN"):
        if model.roi_heads.mask_on:
            schema.append("pred_masks")
        if getattr(model.roi_heads, "keypoint_on", False):
            schema.append("pred_keypoint_heatmaps")
    if architecture == "PanopticFPN":
        schema.append("sem_seg")
    return tuple(schema)


def _panoptic_combine(model: Any) -> dict[str, float]:
    """PanopticFPN's thresholds of ``combine_semantic_and_instance_outputs``, as keyword arguments.

    Eager PanopticFPN always merges at inference (MODEL.PANOPTIC_FPN.COMBINE.ENABLED is no
    longer read, as in detectron2), so the exported model always does too.
    """
    return {
        "overlap_threshold": float(model.combine_overlap_thresh),
        "stuff_area_thresh": float(model.combine_stuff_area_thresh),
        "instances_score_thresh": float(model.combine_instances_score_thresh),
    }


# --- detectron2's contract: flatten rich inputs/outputs into tuples of tensors, and back --------


@dataclass
class Schema:
    """How to rebuild an object from the flat tuple :func:`flatten_to_tuple` made of it.

    ``values, schema = flatten_to_tuple(obj)`` gives ``schema(values) == obj`` (new containers,
    the same tensors). Schemas are plain dataclasses (they compare equal when two objects have
    the same structure, and pickle), as detectron2's ``export.flatten`` schemas are.
    """

    def __call__(self, values: Sequence[Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def flatten(cls, obj: Any) -> tuple[tuple[Any, ...], Schema]:
        raise NotImplementedError


@dataclass
class IdentitySchema(Schema):
    """A leaf (a tensor, number or string): one value, itself."""

    def __call__(self, values: Sequence[Any]) -> Any:
        return values[0]

    @classmethod
    def flatten(cls, obj: Any) -> tuple[tuple[Any, ...], Schema]:
        return (obj,), cls()


@dataclass
class ListSchema(Schema):
    """A list: each element's schema and how many flat values it took."""

    schemas: list[Schema]
    sizes: list[int]

    def _elements(self, values: Sequence[Any]) -> list[Any]:
        if len(values) != sum(self.sizes):
            raise ValueError(f"{len(values)} flat values for a schema of {sum(self.sizes)}")
        elements, start = [], 0
        for schema, size in zip(self.schemas, self.sizes):
            elements.append(schema(tuple(values[start : start + size])))
            start += size
        return elements

    def __call__(self, values: Sequence[Any]) -> Any:
        return self._elements(values)

    @classmethod
    def flatten(cls, obj: Any) -> tuple[tuple[Any, ...], Schema]:
        values, schemas, sizes = _flatten_all(obj)
        return values, cls(schemas, sizes)


@dataclass
class TupleSchema(ListSchema):
    def __call__(self, values: Sequence[Any]) -> Any:
        return tuple(self._elements(values))


@dataclass
class DictSchema(ListSchema):
    """A dict with str keys, flattened in sorted key order."""

    keys: list[str]

    def __call__(self, values: Sequence[Any]) -> Any:
        return dict(zip(self.keys, self._elements(values)))

    @classmethod
    def flatten(cls, obj: Any) -> tuple[tuple[Any, ...], Schema]:
        if not all(isinstance(k, str) for k in obj):
            raise KeyError(f"only dicts with str keys can be flattened, got keys {list(obj)}")
        keys = sorted(obj)
        values, schemas, sizes = _flatten_all([obj[k] for k in keys])
        return values, cls(schemas, sizes, keys)


@dataclass
class InstancesSchema(DictSchema):
    """``Instances``: its fields as a dict, then its image size as a (2,) tensor."""

    def __call__(self, values: Sequence[Any]) -> Any:
        from det.structures import Instances

        size = values[-1]
        if isinstance(size, Tensor) and not _is_tracing():
            size = tuple(int(v) for v in size.tolist())
        return Instances(size, **super().__call__(values[:-1]))

    @classmethod
    def flatten(cls, obj: Any) -> tuple[tuple[Any, ...], Schema]:
        values, schema = DictSchema.flatten(obj.get_fields())
        assert isinstance(schema, DictSchema)
        size = obj.image_size
        if not isinstance(size, Tensor):
            # under torch.jit.trace sizes are 0-dim tensors: stacking keeps them in the graph
            traced = any(isinstance(s, Tensor) for s in size)
            size = torch.stack([torch.as_tensor(s) for s in size]) if traced else torch.tensor(size)
        return (*values, size), cls(schema.schemas, schema.sizes, schema.keys)


@dataclass
class TensorWrapSchema(Schema):
    """A structure that wraps one tensor (``Boxes``, ``ROIMasks``, ...): ``class_name(tensor)``."""

    class_name: str

    def __call__(self, values: Sequence[Any]) -> Any:
        module, _, name = self.class_name.rpartition(".")
        return getattr(importlib.import_module(module), name)(values[0])

    @classmethod
    def flatten(cls, obj: Any) -> tuple[tuple[Any, ...], Schema]:
        return (obj.tensor,), cls(f"{type(obj).__module__}.{type(obj).__qualname__}")


def _flatten_all(objs: Sequence[Any]) -> tuple[tuple[Any, ...], list[Schema], list[int]]:
    values: tuple[Any, ...] = ()
    schemas, sizes = [], []
    for obj in objs:
        flat, schema = flatten_to_tuple(obj)
        values += flat
        schemas.append(schema)
        sizes.append(len(flat))
    return values, schemas, sizes


def _schema_of(obj: Any) -> type[Schema]:
    from det.structures import BitMasks, Boxes, Instances, Keypoints, ROIMasks, RotatedBoxes

    if isinstance(obj, (str, bytes)):
        return IdentitySchema
    if isinstance(obj, tuple):
        return TupleSchema
    if isinstance(obj, list):
        return ListSchema
    if isinstance(obj, Mapping):
        return DictSchema
    if isinstance(obj, Instances):
        return InstancesSchema
    if isinstance(obj, (Boxes, RotatedBoxes, BitMasks, ROIMasks, Keypoints)):
        return TensorWrapSchema
    return IdentitySchema


def flatten_to_tuple(obj: Any) -> tuple[tuple[Any, ...], Schema]:
    """Flatten lists, tuples, str-keyed dicts, ``Instances`` and tensor-wrapping structures
    (``Boxes``, ``RotatedBoxes``, ``BitMasks``, ``ROIMasks``, ``Keypoints``) into a flat tuple.

    Returns:
        ``(values, schema)`` with ``schema(values)`` rebuilding ``obj``; ``values`` holds tensors
        and any other leaves (numbers, strings) found.
    """
    return _schema_of(obj).flatten(obj)


class _InferenceView:
    """The ``model`` that :class:`TracingAdapter` hands to ``inference_func`` (detectron2's contract).

    ``view(batched_inputs)`` and, for GeneralizedRCNN, ``view.inference(batched_inputs,
    do_postprocess=...)`` return what the eager model returns, computed by det's export-friendly
    inference (so that the trace generalises to other image sizes and instance counts); every
    other attribute is the model's own.
    """

    def __init__(self, adapter: TracingAdapter) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter.model, name)

    def _flat(self, inputs: dict[str, Any]) -> tuple[Tensor, ...]:
        adapter = self._adapter
        (image,) = flatten_inputs(inputs)
        assert adapter.architecture is not None
        outputs = _FORWARDS[adapter.architecture](adapter.model, image)
        return tuple(outputs[name] for name in adapter.output_names)

    def __call__(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.forward(batched_inputs)

    def forward(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        adapter = self._adapter
        return [
            unflatten_outputs(
                self._flat(x), x, adapter.output_names, panoptic_combine=adapter.panoptic_combine
            )
            for x in batched_inputs
        ]

    def inference(
        self,
        batched_inputs: list[dict[str, Any]],
        detected_instances: list[Any] | None = None,
        do_postprocess: bool = True,
    ) -> list[Any]:
        adapter = self._adapter
        if adapter.architecture != "GeneralizedRCNN":
            return adapter.model.inference(batched_inputs, detected_instances, do_postprocess)  # type: ignore[no-any-return]
        if detected_instances is not None:
            raise UnsupportedModelError(
                "TracingAdapter traces GeneralizedRCNN.inference without detected_instances only: "
                "the exported graph predicts its own boxes"
            )
        if do_postprocess:
            return self.forward(batched_inputs)
        return [_instances_at_input_size(self._flat(x), x, adapter.output_names) for x in batched_inputs]


class TracingAdapter(nn.Module):
    """Wraps a det model so that it maps tensors to a tuple of tensors, for tracing and export.

    Two contracts, one class.

    det's, ``TracingAdapter(model)``: ``forward(image)`` maps one (C, H, W) image to
    ``len(outputs_schema)`` tensors named by ``outputs_schema`` (a tuple of field names), and
    ``unflatten_outputs`` turns them back into the eager model's output dict (``"instances"``,
    ``"proposals"``, ``"sem_seg"``, or PanopticFPN's three with ``"panoptic_seg"``) at the input's
    height/width; this is what :func:`det.export.export_torch` and ``export_onnx`` export::

        adapter = TracingAdapter(model.eval())
        flat = adapter(*adapter.flatten_inputs(inputs[0]))
        outputs = adapter.unflatten_outputs(flat, inputs[0])   # == model(inputs[:1])[0]

    detectron2's, ``TracingAdapter(model, inputs, inference_func=None, allow_non_tensor=False)``:
    ``inputs`` (one argument of the model, or a tuple of them) is flattened into
    ``flattened_inputs`` (its tensors) and ``inputs_schema``; ``forward(*flattened_inputs)``
    rebuilds them, runs ``inference_func(model, *inputs)`` (default ``model(*inputs)``) and
    returns its outputs flattened; the first call sets ``outputs_schema``, a :class:`Schema` that
    rebuilds the outputs (e.g. ``[{"instances": Instances}]``) from the flat tuple::

        adapter = TracingAdapter(model, [{"image": image}], inference_func)
        traced = torch.jit.trace(adapter, adapter.flattened_inputs)
        outputs = adapter.outputs_schema(traced(image))

    For the supported meta-architectures (:func:`supported_architectures`) ``inference_func``
    receives a stand-in of the model whose ``__call__`` and (GeneralizedRCNN) ``inference(inputs,
    do_postprocess=...)`` return what the eager ones return, computed by the export-friendly
    rewrite, so that a trace follows the image size and the number of instances; any other
    module is called as it is (as detectron2 does), and its trace is only as general as its code.

    Either way the model runs an export-friendly rewrite of its inference (same modules and
    formulas, no data-dependent Python control flow), which ``torch.export``, ``torch.jit.trace``
    and ``torch.onnx.export`` all take. Training is not exported.
    """

    flattened_inputs: tuple[Tensor, ...] | None = None
    """detectron2's contract: the tensors of the ``inputs`` given to the constructor."""

    inputs_schema: Schema | None = None
    """detectron2's contract: rebuilds the model's inputs from tensors like ``flattened_inputs``."""

    outputs_schema: Any = None
    """det's contract: the names of ``forward``'s outputs (a tuple of str). detectron2's: the
    :class:`Schema` that rebuilds the model's outputs from ``forward``'s, set by the first call."""

    def __init__(
        self,
        model: Any,
        inputs: Any = None,
        inference_func: Callable[..., Any] | None = None,
        allow_non_tensor: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        if not isinstance(model, nn.Module):
            raise TypeError(f"TracingAdapter wraps a det model (torch.nn.Module), got {type(model).__name__}")
        _register_torchvision_ops()
        self.model: Any = model
        self.inputs: tuple[Any, ...] | None = None
        if inputs is None:
            if inference_func is not None or allow_non_tensor:
                raise TypeError(
                    "TracingAdapter(model, inputs, inference_func, allow_non_tensor): inference_func and "
                    "allow_non_tensor need the model's inputs (detectron2's contract)"
                )
            self.architecture: str | None = self._check(model)
        else:
            try:
                self.architecture = self._check(model)
            except UnsupportedModelError:
                self.architecture = None  # any module: traced as it is, as detectron2 does
        arch = self.architecture
        self.output_names: tuple[str, ...] = _outputs_schema(model, arch) if arch is not None else ()
        self.input_format = getattr(model, "input_format", None)
        self.panoptic_combine = _panoptic_combine(model) if arch == "PanopticFPN" else None
        if inputs is None:
            self.outputs_schema = self.output_names
            return

        self.inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        self.allow_non_tensor = allow_non_tensor
        self.inference_func: Callable[..., Any] = inference_func or _call_model
        inputs_schema: Schema | None
        flattened, inputs_schema = flatten_to_tuple(self.inputs)
        tensors = tuple(x for x in flattened if isinstance(x, Tensor))
        if len(tensors) < len(flattened):
            if not allow_non_tensor:
                other = next(x for x in flattened if not isinstance(x, Tensor))
                raise ValueError(
                    f"inputs for tracing must contain only tensors, got a {type(other).__name__} "
                    "(pass allow_non_tensor=True to trace with the given inputs only)"
                )
            inputs_schema = None  # the non-tensor values cannot be rebuilt from the graph's inputs
        self.flattened_inputs, self.inputs_schema = tensors, inputs_schema

    @staticmethod
    def _check(model: Any) -> str:
        architecture = _architecture(model)
        if architecture in ("GeneralizedRCNN", "PanopticFPN"):
            _check_rcnn_parts(model, architecture)
        elif architecture == "ProposalNetwork":
            _check_rpn(model, architecture)
        elif architecture == "RetinaNet":
            _refuse_rotated("ANCHOR_GENERATOR", model.anchor_generator)
        return architecture

    def forward(self, *args: Tensor) -> tuple[Any, ...]:
        if self.model.training:
            raise RuntimeError("TracingAdapter exports inference: call model.eval() first")
        if self.inputs is None:
            (image,) = args
            assert self.architecture is not None
            outputs = _FORWARDS[self.architecture](self.model, image)
            return tuple(outputs[name] for name in self.output_names)
        return self._forward_detectron2(args)

    def _forward_detectron2(self, args: tuple[Tensor, ...]) -> tuple[Any, ...]:
        assert self.inputs is not None
        if self.inputs_schema is not None:
            inputs = self.inputs_schema(args)
        else:
            if len(args) != len(self.flattened_inputs or ()) or any(
                x is not y for x, y in zip(args, self.flattened_inputs or ())
            ):
                raise ValueError(
                    "this TracingAdapter's inputs had non-tensor values (allow_non_tensor=True): it can "
                    "only be called with its own flattened_inputs"
                )
            inputs = self.inputs
        model = _InferenceView(self) if self.architecture is not None else self.model
        with torch.no_grad():
            outputs = self.inference_func(model, *inputs)
        flattened, schema = flatten_to_tuple(outputs)
        tensors = tuple(x for x in flattened if isinstance(x, Tensor))
        if len(tensors) < len(flattened):
            if not self.allow_non_tensor:
                other = next(x for x in flattened if not isinstance(x, Tensor))
                raise ValueError(
                    f"the model's outputs hold a {type(other).__name__}, which a traced graph cannot "
                    "return (allow_non_tensor=True drops it, and outputs_schema with it)"
                )
            self.outputs_schema = None
            return tensors
        if self.outputs_schema is None:
            self.outputs_schema = schema
        elif self.outputs_schema != schema:
            raise ValueError(
                "the model returned outputs of another structure than before: a traced model must "
                f"always return the same structure ({self.outputs_schema} vs {schema})"
            )
        return flattened

    def flatten_inputs(self, inputs: dict[str, Any]) -> tuple[Tensor]:
        """The exported graph's inputs for one image dict of det's contract: ``(image,)``."""
        return flatten_inputs(inputs)

    def unflatten_outputs(
        self, outputs: tuple[Tensor, ...] | list[Tensor], inputs: dict[str, Any]
    ) -> dict[str, Any]:
        """The eager model's output dict for one image from the graph's flat outputs (det's contract)."""
        self._need_det_contract("unflatten_outputs")
        return unflatten_outputs(outputs, inputs, self.output_names, panoptic_combine=self.panoptic_combine)

    def metadata(self) -> dict[str, Any]:
        """What a saved exported model needs to unflatten its outputs (stored beside it)."""
        self._need_det_contract("metadata")
        metadata = {
            "architecture": self.architecture,
            "outputs_schema": list(self.output_names),
            "input_format": self.input_format,
        }
        if self.panoptic_combine is not None:
            metadata["panoptic_combine"] = dict(self.panoptic_combine)
        return metadata

    def _need_det_contract(self, what: str) -> None:
        if self.inputs is not None:
            raise TypeError(
                f"TracingAdapter.{what} belongs to det's contract, TracingAdapter(model); this adapter "
                "has detectron2's (model, inputs, ...): rebuild its outputs with outputs_schema(...)"
            )


def _call_model(model: Any, *inputs: Any) -> Any:
    return model(*inputs)


def flatten_inputs(inputs: dict[str, Any]) -> tuple[Tensor]:
    """``(image,)`` of one input dict of det's contract; the image must be a (C, H, W) tensor."""
    if not isinstance(inputs, dict):
        raise TypeError(
            f"flatten_inputs takes one input dict {{'image': (C, H, W) tensor, ...}}, got {type(inputs).__name__}"
        )
    if "image" not in inputs:
        raise ValueError(f"input dict has no 'image' (keys: {sorted(inputs)}); expected a (C, H, W) tensor")
    image = inputs["image"]
    if not isinstance(image, Tensor) or image.dim() != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"'image' must be a (C, H, W) tensor, got {shape}")
    return (image,)


def unflatten_outputs(
    outputs: tuple[Tensor, ...] | list[Tensor],
    inputs: dict[str, Any],
    outputs_schema: tuple[str, ...] | list[str],
    *,
    panoptic_combine: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Turn an exported graph's flat outputs back into det's output dict for one image.

    Runs what the eager models run after their network: keypoint decoding
    (``keypoint_rcnn_inference``), ``detector_postprocess`` (rescale to ``height``/``width``,
    paste masks; for proposals too) and ``sem_seg_postprocess``. With both instance fields and
    ``sem_seg`` (PanopticFPN) the result has ``"sem_seg"`` and ``"instances"``, and with
    ``panoptic_combine`` (the keyword thresholds of ``combine_semantic_and_instance_outputs``,
    :meth:`TracingAdapter.metadata` stores PanopticFPN's) also ``"panoptic_seg"``, merged as
    eager PanopticFPN does.
    """
    from det.core.modeling.postprocessing import detector_postprocess, sem_seg_postprocess

    fields = _fields(outputs, outputs_schema)
    (image,) = flatten_inputs(inputs)
    image_size = _image_size(image)
    height = _size(inputs.get("height", image_size[0]))
    width = _size(inputs.get("width", image_size[1]))
    sem_seg = None
    if "sem_seg" in fields:
        sem_seg = sem_seg_postprocess(fields["sem_seg"], image_size, height, width)
        if "pred_boxes" not in fields:
            return {"sem_seg": sem_seg}
    instances = _instances(fields, image_size)
    if "proposal_boxes" in fields:
        return {"proposals": detector_postprocess(instances, height, width)}
    instances = detector_postprocess(instances, height, width)
    if sem_seg is None:
        return {"instances": instances}
    results: dict[str, Any] = {"sem_seg": sem_seg, "instances": instances}
    if panoptic_combine is not None:
        results["panoptic_seg"] = _combine_panoptic(instances, sem_seg, panoptic_combine)
    return results


def _size(value: Any) -> Any:
    """An image height or width as a Python int, except a traced one (a 0-dim tensor under
    ``torch.jit.trace``, a SymInt under ``torch.export``), which stays in the graph."""
    if isinstance(value, torch.SymInt) or (isinstance(value, Tensor) and _is_tracing()):
        return value
    return int(value)


def _image_size(image: Tensor) -> tuple[Any, Any]:
    return _size(image.shape[-2]), _size(image.shape[-1])


def _fields(outputs: Sequence[Tensor], outputs_schema: Sequence[str]) -> dict[str, Tensor]:
    if len(outputs) != len(outputs_schema):
        raise ValueError(f"{len(outputs)} outputs for the schema {list(outputs_schema)}")
    return dict(zip(outputs_schema, [torch.as_tensor(o) for o in outputs]))


def _instances(fields: dict[str, Tensor], image_size: tuple[Any, Any]) -> Any:
    """The Instances (or proposals) of the flat fields at the input image size, as the eager
    ROI heads (or RPN) return them before ``detector_postprocess``: keypoints decoded from their
    heatmaps, masks as (N, 1, M, M) probabilities."""
    from det.structures import Boxes, Instances

    instances = Instances(image_size)
    if "proposal_boxes" in fields:
        instances.proposal_boxes = Boxes(fields["proposal_boxes"].clone())
        instances.objectness_logits = fields["objectness_logits"]
        return instances
    # a copy: detector_postprocess scales boxes in place, and the flat outputs stay the caller's
    instances.pred_boxes = Boxes(fields["pred_boxes"].clone())
    instances.scores = fields["scores"]
    instances.pred_classes = fields["pred_classes"].to(torch.int64)
    if "pred_masks" in fields:
        instances.pred_masks = fields["pred_masks"]
    if "pred_keypoint_heatmaps" in fields:
        try:
            from det.heads.keypoint.keypoint_head import keypoint_rcnn_inference
        except ImportError:
            raise ImportError(
                "decoding exported keypoint heatmaps needs det-heads-keypoint: "
                'pip install "det-export[keypoint]"'
            ) from None

        keypoint_rcnn_inference(fields["pred_keypoint_heatmaps"], [instances])
    return instances


def _instances_at_input_size(
    outputs: Sequence[Tensor], inputs: dict[str, Any], outputs_schema: Sequence[str]
) -> Any:
    (image,) = flatten_inputs(inputs)
    return _instances(_fields(outputs, outputs_schema), _image_size(image))


def _combine_panoptic(
    instances: Any, sem_seg: Tensor, thresholds: dict[str, float]
) -> tuple[Tensor, list[dict[str, Any]]]:
    try:
        from det.heads.semseg.panoptic_fpn import combine_semantic_and_instance_outputs
    except ImportError:
        raise ImportError(
            'merging exported PanopticFPN outputs needs det-heads-semseg: pip install "det-export[panoptic]"'
        ) from None
    return combine_semantic_and_instance_outputs(instances, sem_seg.argmax(dim=0), **thresholds)
