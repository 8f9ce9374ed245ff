"""Test-time augmentation for GeneralizedRCNN (detectron2's ``modeling.test_time_augmentation``):
``GeneralizedRCNNWithTTA`` and, re-exported from det-data's pipeline, ``DatasetMapperTTA``.

Why this lives in det-engine (and not next to the ROI heads): the wrapper is made of the data
side -- the TTA mapper, the transforms and their inverses, reading images -- which det-engine owns,
plus calls into the model it is given. It reaches the ROI heads only through that model's
detectron2 attributes (``roi_heads.mask_on``/``keypoint_on``, ``forward_with_given_boxes``,
``box_predictor.test_nms_thresh``/``test_topk_per_image``), so det-engine keeps depending on
det-core alone and any ROI heads that keep detectron2's attribute contract work, a third party's
included. The merge is detectron2's ``fast_rcnn_inference_single_image`` on boxes that each carry
one class already: drop non-finite boxes and scores <= 1e-8, clip to the image, per-class NMS (core's
``batched_nms``, the op the ROI heads use), keep the top k. Importing det-heads-roi for that
function instead would make det-engine depend on det-heads-roi, whose ``[fed-loss]`` extra
depends on det-engine; putting the wrapper in det-heads-roi would make it depend on det-engine.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from det.core.layers import batched_nms
from det.core.modeling.meta_arch import GeneralizedRCNN
from det.core.modeling.postprocessing import detector_postprocess
from det.data.dataset_mapper import DatasetMapperTTA
from det.data.detection_utils import read_image
from det.data.transforms import HFlipTransform, TransformList, VFlipTransform
from det.structures import Boxes, Instances, heatmaps_to_keypoints

__all__ = ["DatasetMapperTTA", "GeneralizedRCNNWithTTA"]

_MERGE_SCORE_THRESH = 1e-8
"""Score threshold of the merge: each view's detections already passed the model's own threshold."""


def _flips(tfm: Any) -> tuple[bool, bool]:
    """Whether ``tfm`` mirrors its image (horizontally, vertically): an odd number of flips does."""
    leaves = tfm.transforms if isinstance(tfm, TransformList) else [tfm]
    h = sum(isinstance(t, HFlipTransform) for t in leaves) % 2 == 1
    v = sum(isinstance(t, VFlipTransform) for t in leaves) % 2 == 1
    return h, v


class GeneralizedRCNNWithTTA(nn.Module):
    """A GeneralizedRCNN with test-time augmentation: called like the model in eval mode, it
    returns one ``{"instances": Instances}`` per input at the input's ``height``/``width``.

    Invariant: per image, every view the ``tta_mapper`` makes is detected by the model; the boxes
    are mapped back to the original image through the inverse of the view's ``transforms`` and
    merged by per-class NMS with the ROI heads' test NMS threshold and detections-per-image. The
    mask (keypoint) head then runs once per view on the merged boxes mapped into that view; mask
    probabilities of mirrored views are mirrored back and all are averaged before pasting
    (keypoint heatmap logits are averaged and decoded in the largest view).

        tta = GeneralizedRCNNWithTTA(cfg, model)          # views from cfg.TEST.AUG (DatasetMapperTTA)
        outputs = tta([{"image": img_chw, "height": h, "width": w}])
        outputs[0]["instances"].pred_boxes                # in the h x w image

    Beyond detectron2 (which refuses every keypoint model): keypoints work when no view is
    mirrored (a mirrored keypoint map would need the dataset's left/right keypoint flip map); with
    flips they are refused, at construction for a flipping ``DatasetMapperTTA``, else at call time.
    Outputs always go through ``detector_postprocess`` (so, as with the plain model, detections
    whose clipped box is empty are dropped).
    """

    def __init__(self, cfg: Any, model: nn.Module, tta_mapper: Any = None, batch_size: int = 3) -> None:
        """
        Args:
            cfg: the config the model was built from (a CfgNode): ``TEST.AUG`` for the default
                mapper, ``INPUT.FORMAT`` to read images given by ``file_name``, and the ROI heads'
                test thresholds when the model's box predictor does not carry them.
            model: the GeneralizedRCNN to augment (a DistributedDataParallel is unwrapped).
            tta_mapper: callable: model input dict -> list of augmented input dicts, each with
                ``transforms`` (original image -> view). Default: ``DatasetMapperTTA(cfg)``.
            batch_size: views per forward pass of the model.
        """
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        if not isinstance(model, GeneralizedRCNN):
            raise TypeError(
                f"GeneralizedRCNNWithTTA: TTA is only supported on GeneralizedRCNN, got a model of type "
                f"{type(model).__name__}"
            )
        if "detected_instances" not in inspect.signature(model.inference).parameters:
            # e.g. PanopticFPN: its inference has no way to run the heads on given boxes
            raise TypeError(
                f"GeneralizedRCNNWithTTA: {type(model).__name__}.inference has no 'detected_instances' "
                "argument; TTA needs GeneralizedRCNN.inference(batched_inputs, detected_instances, do_postprocess)"
            )
        if model.proposal_generator is None or cfg.MODEL.LOAD_PROPOSALS:
            raise ValueError(
                "GeneralizedRCNNWithTTA: TTA for pre-computed proposals (MODEL.LOAD_PROPOSALS, no proposal "
                "generator) is not supported: proposals of the original image do not fit the augmented views"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"GeneralizedRCNNWithTTA: batch_size must be a positive int, got {batch_size!r}")
        self.cfg = cfg.clone()
        self.model = model
        if tta_mapper is None:
            tta_mapper = DatasetMapperTTA(cfg)
        if not callable(tta_mapper):
            raise TypeError(f"GeneralizedRCNNWithTTA: tta_mapper must be callable, got {type(tta_mapper).__name__}")
        self.tta_mapper = tta_mapper
        self.batch_size = batch_size
        if self._keypoint_on() and getattr(tta_mapper, "flip", False):
            raise ValueError(
                "GeneralizedRCNNWithTTA: TTA with flips is not supported for keypoint models (mirrored keypoint "
                "heatmaps would need the dataset's keypoint flip map); set cfg.TEST.AUG.FLIP = False"
            )

    def _keypoint_on(self) -> bool:
        return bool(getattr(self.model.roi_heads, "keypoint_on", False) or self.cfg.MODEL.KEYPOINT_ON)

    @contextmanager
    def _turn_off_roi_heads(self, attrs: Sequence[str]) -> Iterator[None]:
        """Within the context, ``model.roi_heads.<attr>`` is False for each of ``attrs`` it has."""
        roi_heads = self.model.roi_heads
        old = {attr: getattr(roi_heads, attr) for attr in attrs if hasattr(roi_heads, attr)}
        try:
            for attr in old:
                setattr(roi_heads, attr, False)
            yield
        finally:
            for attr, value in old.items():
                setattr(roi_heads, attr, value)

    def _batch_inference(
        self, batched_inputs: list[dict[str, Any]], detected_instances: list[Instances] | None = None
    ) -> list[Instances]:
        """``model.inference(..., do_postprocess=False)`` over ``batched_inputs``, ``batch_size``
        at a time: results stay in each view's frame."""
        outputs: list[Instances] = []
        for start in range(0, len(batched_inputs), self.batch_size):
            stop = start + self.batch_size
            given = None if detected_instances is None else detected_instances[start:stop]
            outputs.extend(self.model.inference(batched_inputs[start:stop], given, do_postprocess=False))
        return outputs

    def forward(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Same input and output as ``GeneralizedRCNN.forward`` in eval mode; an input may give
        ``file_name`` instead of ``image`` (read in the model's input format)."""
        if self.model.training:
            raise RuntimeError("GeneralizedRCNNWithTTA runs inference only: call model.eval() first")
        if not isinstance(batched_inputs, (list, tuple)):
            raise ValueError(
                f"GeneralizedRCNNWithTTA expects a list of dicts, one per image; got {type(batched_inputs).__name__}"
            )
        return [self._inference_one_image(self._maybe_read_image(x, i)) for i, x in enumerate(batched_inputs)]

    def _maybe_read_image(self, dataset_dict: Any, index: int) -> dict[str, Any]:
        if not isinstance(dataset_dict, dict):
            raise ValueError(f"batched_inputs[{index}] must be a dict, got {type(dataset_dict).__name__}")
        ret = copy.copy(dataset_dict)
        if "image" not in ret:
            if "file_name" not in ret:
                raise ValueError(
                    f"batched_inputs[{index}] has neither 'image' nor 'file_name' (keys: {sorted(ret)})"
                )
            image = read_image(ret["file_name"], self.model.input_format or self.cfg.INPUT.FORMAT)
            ret["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        image = ret["image"]
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            raise ValueError(f"batched_inputs[{index}]['image'] must be a (C, H, W) tensor")
        if ("height" in ret) != ("width" in ret):
            raise ValueError(f"batched_inputs[{index}]: give both 'height' and 'width' or neither")
        ret.setdefault("height", image.shape[1])
        ret.setdefault("width", image.shape[2])
        return ret

    def _inference_one_image(self, input: dict[str, Any]) -> dict[str, Any]:
        orig_shape = (int(input["height"]), int(input["width"]))
        augmented_inputs, tfms = self._get_augmented_inputs(input)
        roi_heads = self.model.roi_heads
        mask_on = bool(getattr(roi_heads, "mask_on", False))
        keypoint_on = bool(getattr(roi_heads, "keypoint_on", False))
        if keypoint_on and any(any(_flips(t)) for t in tfms):
            raise ValueError(
                "GeneralizedRCNNWithTTA: the tta_mapper made a flipped view, which keypoint models do not "
                "support (mirrored keypoint heatmaps would need the keypoint flip map)"
            )

        # boxes from every view, with the mask/keypoint heads off: they run on the merged boxes
        with self._turn_off_roi_heads(["mask_on", "keypoint_on"]):
            all_boxes, all_scores, all_classes = self._get_augmented_boxes(augmented_inputs, tfms)
        merged_instances = self._merge_detections(all_boxes, all_scores, all_classes, orig_shape)

        if mask_on or keypoint_on:
            augmented_instances = self._rescale_detected_boxes(augmented_inputs, merged_instances, tfms)
            view_sizes = [tuple(x["image"].shape[1:3]) for x in augmented_inputs]
            outputs = self._batch_inference(augmented_inputs, augmented_instances)
            del augmented_inputs, augmented_instances  # the views' images are no longer needed
            if mask_on:
                merged_instances.pred_masks = self._reduce_pred_masks(outputs, tfms)
            if keypoint_on:
                self._reduce_pred_keypoints(outputs, tfms, view_sizes, merged_instances)
        return {"instances": detector_postprocess(merged_instances, *orig_shape)}

    def _get_augmented_inputs(self, input: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        augmented_inputs = self.tta_mapper(input)
        if not augmented_inputs:
            raise ValueError("GeneralizedRCNNWithTTA: the tta_mapper returned no augmented inputs")
        if any("transforms" not in x for x in augmented_inputs):
            raise ValueError(
                "GeneralizedRCNNWithTTA: every dict of the tta_mapper needs 'transforms' (original image -> view)"
            )
        tfms = [x.pop("transforms") for x in augmented_inputs]
        return augmented_inputs, tfms

    def _get_augmented_boxes(
        self, augmented_inputs: list[dict[str, Any]], tfms: list[Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detections of every view, boxes mapped back to the original image, concatenated."""
        outputs = self._batch_inference(augmented_inputs)
        all_boxes, all_scores, all_classes = [], [], []
        for output, tfm in zip(outputs, tfms):
            pred_boxes = output.pred_boxes.tensor
            original = tfm.inverse().apply_box(pred_boxes.detach().cpu().numpy())
            all_boxes.append(torch.as_tensor(original, dtype=pred_boxes.dtype).reshape(-1, 4).to(pred_boxes.device))
            all_scores.append(output.scores)
            all_classes.append(output.pred_classes)
        return torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_classes)

    def _merge_thresholds(self) -> tuple[float, int]:
        """(NMS IoU threshold, detections per image) of the model's box predictor (the last stage
        of a cascade), else of the config (ROI_HEADS.NMS_THRESH_TEST, TEST.DETECTIONS_PER_IMAGE)."""
        predictor = getattr(self.model.roi_heads, "box_predictor", None)
        if isinstance(predictor, (nn.ModuleList, list, tuple)):
            predictor = predictor[-1] if len(predictor) else None
        nms_thresh = getattr(predictor, "test_nms_thresh", self.cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST)
        topk = getattr(predictor, "test_topk_per_image", self.cfg.TEST.DETECTIONS_PER_IMAGE)
        return float(nms_thresh), int(topk)

    def _merge_detections(
        self,
        all_boxes: torch.Tensor,
        all_scores: torch.Tensor,
        all_classes: torch.Tensor,
        shape_hw: tuple[int, int],
    ) -> Instances:
        nms_thresh, topk = self._merge_thresholds()
        keep = torch.isfinite(all_boxes).all(dim=1) & torch.isfinite(all_scores) & (all_scores > _MERGE_SCORE_THRESH)
        boxes = Boxes(all_boxes[keep])
        boxes.clip(shape_hw)
        scores, classes = all_scores[keep], all_classes[keep]
        keep = batched_nms(boxes.tensor, scores, classes, nms_thresh)
        if topk >= 0:
            keep = keep[:topk]
        result = Instances(shape_hw)
        result.pred_boxes = boxes[keep]
        result.scores = scores[keep]
        result.pred_classes = classes[keep]
        return result

    def _rescale_detected_boxes(
        self, augmented_inputs: list[dict[str, Any]], merged_instances: Instances, tfms: list[Any]
    ) -> list[Instances]:
        """The merged detections in each view's frame."""
        pred_boxes = merged_instances.pred_boxes.tensor
        boxes_np = pred_boxes.detach().cpu().numpy()
        augmented_instances = []
        for input, tfm in zip(augmented_inputs, tfms):
            view_boxes = torch.as_tensor(tfm.apply_box(boxes_np.copy()), dtype=pred_boxes.dtype).reshape(-1, 4)
            augmented_instances.append(
                Instances(
                    tuple(input["image"].shape[1:3]),
                    pred_boxes=Boxes(view_boxes.to(pred_boxes.device)),
                    pred_classes=merged_instances.pred_classes,
                    scores=merged_instances.scores,
                )
            )
        return augmented_instances

    def _reduce_pred_masks(self, outputs: list[Instances], tfms: list[Any]) -> torch.Tensor:
        """Average of the views' (N, 1, M, M) mask probabilities, mirrored views mirrored back.

        Mask probabilities live in box coordinates, so resizes need no undoing; only flips do."""
        masks = []
        for output, tfm in zip(outputs, tfms):
            pred_masks = output.pred_masks
            if not isinstance(pred_masks, torch.Tensor) or pred_masks.dim() != 4:
                raise TypeError(
                    "GeneralizedRCNNWithTTA averages (N, 1, M, M) mask probabilities; the mask head gave "
                    f"{type(pred_masks).__name__}"
                )
            hflip, vflip = _flips(tfm)
            if hflip:
                pred_masks = pred_masks.flip(dims=[3])
            if vflip:
                pred_masks = pred_masks.flip(dims=[2])
            masks.append(pred_masks)
        return torch.stack(masks).mean(dim=0)

    def _reduce_pred_keypoints(
        self,
        outputs: list[Instances],
        tfms: list[Any],
        view_sizes: list[tuple[int, int]],
        merged_instances: Instances,
    ) -> None:
        """Average the views' keypoint heatmap logits (box coordinates, like masks) and decode
        them once, in the largest view (the finest grid), then map the points to the original image."""
        heatmaps = torch.stack([o.pred_keypoint_heatmaps for o in outputs]).mean(dim=0)
        j = max(range(len(outputs)), key=lambda i: view_sizes[i][0] * view_sizes[i][1])
        keypoints = heatmaps_to_keypoints(heatmaps, outputs[j].pred_boxes.tensor)[:, :, [0, 1, 3]]
        xy = keypoints[:, :, :2].reshape(-1, 2).cpu().numpy().copy()
        xy = tfms[j].inverse().apply_coords(xy)
        keypoints[:, :, :2] = torch.as_tensor(xy, dtype=keypoints.dtype).reshape(*keypoints.shape[:2], 2).to(keypoints.device)
        merged_instances.pred_keypoints = keypoints
        merged_instances.pred_keypoint_heatmaps = heatmaps
