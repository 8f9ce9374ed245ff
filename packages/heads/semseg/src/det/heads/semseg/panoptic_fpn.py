"""Panoptic FPN (:paper:`PanopticFPN`, Kirillov et al. 2019): Mask R-CNN and a semantic head on
one FPN, and the heuristic that merges their outputs into a panoptic segmentation.

The instance branch (RPN, ROI heads, mask head) lives in det-heads-rpn/-roi/-mask, which this
distribution requires only through its ``[panoptic]`` extra: this module imports none of them,
they are built by name through the registry.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from det.core.config import configurable
from det.core.modeling import build_sem_seg_head, detector_postprocess, sem_seg_postprocess
from det.core.modeling.inputs import check_batched_inputs, require_event_storage
from det.core.modeling.meta_arch import GeneralizedRCNN
from det.core.registry import ComponentNotFoundError
from det.heads.semseg.semantic_seg import _pad_sem_seg_targets
from det.structures import Instances

__all__ = ["PanopticFPN", "combine_panoptic_outputs", "combine_semantic_and_instance_outputs"]

logger = logging.getLogger(__name__)

# import name -> distribution of the instance branch, all pulled in by det-heads-semseg[panoptic]
_PANOPTIC_EXTRA = {
    "det.heads.rpn": "det-heads-rpn",
    "det.heads.roi": "det-heads-roi",
    "det.heads.mask": "det-heads-mask",
}
PANOPTIC_PIP_COMMAND = "pip install 'det-heads-semseg[panoptic]'"


def _missing_panoptic_distributions() -> list[str]:
    missing = []
    for module, distribution in _PANOPTIC_EXTRA.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(distribution)
    return missing


class PanopticFPN(GeneralizedRCNN):
    """GeneralizedRCNN (instance branch) + a semantic segmentation head on the same backbone.

    Invariant: training returns the semantic loss (``loss_sem_seg``) together with the RPN and
    ROI-head losses; eval returns, per input, ``"instances"``, ``"sem_seg"`` (C, H, W) logits
    and ``"panoptic_seg"`` = ``(ids (H, W) int32, segments_info)`` from
    :func:`combine_semantic_and_instance_outputs`, all at the input's ``height``/``width``::

        model = build_model(cfg)   # cfg.MODEL.META_ARCHITECTURE = "PanopticFPN" (det-heads-semseg[panoptic])
        with EventStorage(0):
            losses = model([{"image": img, "instances": gt, "sem_seg": labels_hw}])
        ids, segments_info = model.eval()([{"image": img}])[0]["panoptic_seg"]
    """

    # the (C, 1, 1) buffers of register_pixel_normalization (set by GeneralizedRCNN)
    pixel_mean: Tensor
    pixel_std: Tensor

    @configurable
    def __init__(
        self,
        *,
        sem_seg_head: nn.Module,
        combine_overlap_thresh: float = 0.5,
        combine_stuff_area_thresh: float = 4096,
        combine_instances_score_thresh: float = 0.5,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            sem_seg_head: the semantic branch (e.g. SemSegFPNHead); must have ``ignore_value``.
            combine_overlap_thresh: an instance whose mask is more than this fraction covered by
                better-scored instances is dropped from the panoptic output.
            combine_stuff_area_thresh: stuff regions smaller than this (pixels) are dropped.
            combine_instances_score_thresh: instances scored below this are not used.
            kwargs: the arguments of :class:`GeneralizedRCNN` (backbone, proposal_generator,
                roi_heads, pixel_mean, pixel_std, ...).
        """
        super().__init__(**kwargs)
        if self.proposal_generator is None:
            raise ValueError(
                "PanopticFPN needs a proposal generator (e.g. RPN); precomputed proposals are not supported"
            )
        self.sem_seg_head = sem_seg_head
        self.combine_overlap_thresh = combine_overlap_thresh
        self.combine_stuff_area_thresh = combine_stuff_area_thresh
        self.combine_instances_score_thresh = combine_instances_score_thresh

    @classmethod
    def from_config(cls, cfg: Any) -> dict[str, Any]:
        try:
            # GeneralizedRCNN.from_config (det.core.modeling) is not annotated yet
            ret = cast("Callable[[Any], dict[str, Any]]", super().from_config)(cfg)
        except (ComponentNotFoundError, ImportError) as e:
            missing = _missing_panoptic_distributions()
            if missing:
                raise ImportError(
                    f"PanopticFPN's instance branch needs {', '.join(missing)}, which "
                    f"{'is' if len(missing) == 1 else 'are'} not installed: {PANOPTIC_PIP_COMMAND}"
                ) from e
            raise
        ret.update(
            {
                "combine_overlap_thresh": cfg.MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH,
                "combine_stuff_area_thresh": cfg.MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT,
                "combine_instances_score_thresh": cfg.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH,
            }
        )
        ret["sem_seg_head"] = build_sem_seg_head(cfg, ret["backbone"].output_shape())
        if not cfg.MODEL.PANOPTIC_FPN.COMBINE.ENABLED:
            logger.warning(
                "PANOPTIC_FPN.COMBINE.ENABLED is no longer used; "
                "model.inference(do_postprocess=False) skips the post-processing instead."
            )
        if cfg.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT != 1.0:
            w = cfg.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT
            logger.warning("PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT should be replaced by weights on each ROI head.")

            def update_weight(x: Any) -> Any:
                if isinstance(x, dict):
                    return {k: v * w for k, v in x.items()}
                return x * w

            # as detectron2: the weight goes into the box predictor's and the mask head's losses
            # (the RPN losses keep their own weight)
            roi_heads = ret["roi_heads"]
            roi_heads.box_predictor.loss_weight = update_weight(roi_heads.box_predictor.loss_weight)
            roi_heads.mask_head.loss_weight = update_weight(roi_heads.mask_head.loss_weight)
        return ret

    def forward(self, batched_inputs: list[dict[str, Tensor]]) -> dict[str, Tensor] | list[dict[str, Any]]:
        """
        Args:
            batched_inputs: one dict per image: "image" (C, H, W); for training "instances"
                (gt_boxes, gt_classes, gt_masks) and "sem_seg" (H, W) class ids; optional
                "height"/"width" (output size).

        Returns:
            training: dict of losses. eval: list of dicts with "instances", "sem_seg" and
            "panoptic_seg" (see :meth:`inference`).
        """
        if not self.training:
            return cast("list[dict[str, Any]]", self.inference(batched_inputs))  # do_postprocess=True
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0], ("instances",))
        require_event_storage(type(self).__name__)

        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)

        gt_sem_seg = _pad_sem_seg_targets(
            batched_inputs, self.backbone, cast(int, self.sem_seg_head.ignore_value), self.pixel_mean
        )
        _, sem_seg_losses = self.sem_seg_head(features, gt_sem_seg)

        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)

        losses = dict(sem_seg_losses)
        losses.update(proposal_losses)
        losses.update(detector_losses)
        return losses

    # detectron2's signature, without GeneralizedRCNN.inference's detected_instances
    def inference(  # type: ignore[override]
        self, batched_inputs: list[dict[str, Tensor]], do_postprocess: bool = True
    ) -> list[dict[str, Any]] | tuple[list[Instances], Tensor]:
        """
        Args:
            batched_inputs: as in :meth:`forward`.
            do_postprocess: rescale and combine the outputs; else return the raw ones.

        Returns:
            do_postprocess: one dict per input with "instances", "sem_seg" (C, height, width) and
            "panoptic_seg" ``(Tensor (height, width) int32, list[dict])``. Otherwise
            ``(list[Instances], Tensor (N, C, H, W))``: detector and semantic outputs at the
            padded input resolution.
        """
        if self.training:
            raise RuntimeError("PanopticFPN.inference() needs eval mode: call model.eval() first")
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0])
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        sem_seg_results, _ = self.sem_seg_head(features, None)
        proposals, _ = self.proposal_generator(images, features, None)
        detector_results, _ = self.roi_heads(images, features, proposals, None)

        if not do_postprocess:
            return detector_results, sem_seg_results

        processed_results = []
        for sem_seg_result, detector_result, input_per_image, image_size in zip(
            sem_seg_results, detector_results, batched_inputs, images.image_sizes
        ):
            # detectron2 annotates the inputs' values Tensor; "height" and "width" are ints
            height = cast(int, input_per_image.get("height", image_size[0]))
            width = cast(int, input_per_image.get("width", image_size[1]))
            sem_seg_r = sem_seg_postprocess(sem_seg_result, image_size, height, width)
            detector_r = detector_postprocess(detector_result, height, width)
            panoptic_r = combine_semantic_and_instance_outputs(
                detector_r,
                sem_seg_r.argmax(dim=0),
                self.combine_overlap_thresh,
                self.combine_stuff_area_thresh,
                self.combine_instances_score_thresh,
            )
            processed_results.append({"sem_seg": sem_seg_r, "instances": detector_r, "panoptic_seg": panoptic_r})
        return processed_results


def combine_semantic_and_instance_outputs(
    instance_results: Instances,
    semantic_results: Tensor,
    overlap_threshold: float,
    stuff_area_thresh: float,
    instances_score_thresh: float,
) -> tuple[Tensor, list[dict[str, Any]]]:
    """Merge instance and semantic predictions into one panoptic segmentation (the heuristic of
    panopticapi's ``combine_semantic_and_instance_predictions.py``, as detectron2).

    Instances are pasted best score first (stopping at the first below
    ``instances_score_thresh``); one whose mask is more than ``overlap_threshold`` covered by
    earlier segments is skipped, otherwise it takes its still-free pixels. Then every semantic
    class but 0 (the "things" class of the separated panoptic datasets) takes its still-free
    pixels if they are at least ``stuff_area_thresh``. Segment ids count from 1; 0 = void.

    Args:
        instance_results: at the output resolution, with ``scores``, ``pred_classes`` and
            ``pred_masks`` (N, H, W).
        semantic_results: (H, W) class ids (argmax of the semantic logits).

    Returns:
        panoptic_seg: (H, W) int32 segment ids.
        segments_info: one dict per segment, in id order: things ``{"id", "isthing": True,
        "score", "category_id", "instance_id"}`` (``instance_id`` indexes ``instance_results``),
        stuff ``{"id", "isthing": False, "category_id", "area"}``.
    """
    if not isinstance(semantic_results, Tensor) or semantic_results.dim() != 2:
        shape = tuple(semantic_results.shape) if isinstance(semantic_results, Tensor) else type(semantic_results).__name__
        raise ValueError(f"semantic_results must be an (H, W) tensor of class ids, got {shape}")
    for field in ("scores", "pred_classes", "pred_masks"):
        if not instance_results.has(field):
            raise ValueError(
                f"instance_results needs {field!r} to be combined into a panoptic segmentation; "
                f"it has {sorted(instance_results.get_fields())}"
            )
    instance_masks = instance_results.pred_masks
    if len(instance_results) and tuple(instance_masks.shape[-2:]) != tuple(semantic_results.shape):
        raise ValueError(
            f"instance masks are {tuple(instance_masks.shape[-2:])} but semantic_results is "
            f"{tuple(semantic_results.shape)}; both must be at the output resolution"
        )

    panoptic_seg = torch.zeros_like(semantic_results, dtype=torch.int32)
    sorted_inds = torch.argsort(-instance_results.scores)

    current_segment_id = 0
    segments_info = []
    instance_masks = instance_masks.to(dtype=torch.bool, device=panoptic_seg.device)

    # scores, classes and order read once (on a GPU, each .item() is a host synchronisation)
    scores = instance_results.scores.tolist()
    classes = instance_results.pred_classes.tolist()
    for inst_id in sorted_inds.tolist():
        score = scores[inst_id]
        if score < instances_score_thresh:
            break
        mask = instance_masks[inst_id]
        # both areas in one transfer
        mask_area, intersect_area = torch.stack([mask.sum(), (mask & (panoptic_seg > 0)).sum()]).tolist()
        if mask_area == 0:
            continue

        if intersect_area * 1.0 / mask_area > overlap_threshold:
            continue
        if intersect_area > 0:
            mask = mask & (panoptic_seg == 0)

        current_segment_id += 1
        panoptic_seg[mask] = current_segment_id
        segments_info.append({"id": current_segment_id, "isthing": True, "score": score,
                              "category_id": classes[inst_id], "instance_id": inst_id})

    for semantic_label in torch.unique(semantic_results).cpu().tolist():
        if semantic_label == 0:  # the merged "things" class: instances cover it
            continue
        mask = (semantic_results == semantic_label) & (panoptic_seg == 0)
        mask_area = mask.sum().item()
        if mask_area < stuff_area_thresh:
            continue

        current_segment_id += 1
        panoptic_seg[mask] = current_segment_id
        segments_info.append({"id": current_segment_id, "isthing": False, "category_id": semantic_label,
                              "area": mask_area})

    return panoptic_seg, segments_info


combine_panoptic_outputs = combine_semantic_and_instance_outputs
"""Alias of :func:`combine_semantic_and_instance_outputs` (detectron2's name)."""
