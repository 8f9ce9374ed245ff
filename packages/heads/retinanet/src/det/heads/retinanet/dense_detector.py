"""``DenseDetector``: the base of one-stage detectors that predict at every position of every
feature level (RetinaNet here; FCOS-like models in other distributions).

Shape shorthand: N images, L feature levels, Hi/Wi the size of level i, Ai the anchors per
position on level i, K the values predicted per anchor (classes, 4 box deltas, ...).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from det.core.events import get_event_storage
from det.core.modeling import Box2BoxTransform, Box2BoxTransformLinear, detector_postprocess
from det.core.modeling.inputs import (
    check_batched_inputs,
    normalize_and_pad_images,
    register_pixel_normalization,
    require_event_storage,
)
from det.core.modeling.vis import draw_boxes, to_rgb_uint8
from det.structures import Boxes, ImageList, Instances

__all__ = ["DenseDetector", "permute_to_N_HWA_K"]


def permute_to_N_HWA_K(tensor: Tensor, K: int) -> Tensor:
    """Reshape one level's dense prediction (N, Ai*K, Hi, Wi) to (N, Hi*Wi*Ai, K).

    The anchor axis ends up innermost, matching the (y, x, anchor) order of the anchor generator,
    so row r of the result belongs to anchor r of that level.
    """
    if tensor.dim() != 4:
        raise ValueError(f"dense predictions must be (N, A*K, H, W), got shape {tuple(tensor.shape)}")
    N, AK, H, W = tensor.shape
    if AK % K != 0:
        raise ValueError(f"dense prediction has {AK} channels, not a multiple of K={K} values per anchor")
    tensor = tensor.view(N, -1, K, H, W)
    tensor = tensor.permute(0, 3, 4, 1, 2)
    return tensor.reshape(N, -1, K)


class DenseDetector(nn.Module):
    """Backbone + a head that makes per-position predictions on each feature level.

    Invariant: ``head(features)`` returns a list of outputs, each a list with one
    (N, Ai*K, Hi, Wi) tensor per level of ``head_in_features``; subclasses implement
    :meth:`forward_training` (-> dict of losses) and :meth:`forward_inference` (-> one
    ``Instances`` per image at the padded-input resolution), and ``forward`` does the rest::

        class MyDetector(DenseDetector):
            def forward_training(self, images, features, predictions, gt_instances): ...
            def forward_inference(self, images, features, predictions): ...

    Subclasses that use :meth:`_decode_multi_level_predictions` set ``box2box_transform``,
    ``test_score_thresh`` and ``test_topk_candidates``.
    """

    backbone: Any  # any module with output_shape() (and size_divisibility), as detectron2 duck-types it
    # the (C, 1, 1) buffers of register_pixel_normalization
    pixel_mean: Tensor
    pixel_std: Tensor
    # set by the subclasses that use _decode_multi_level_predictions
    box2box_transform: Box2BoxTransform | Box2BoxTransformLinear
    test_score_thresh: float
    test_topk_candidates: int

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        head_in_features: list[str] | None = None,
        *,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
    ) -> None:
        """
        Args:
            backbone: a det Backbone.
            head: maps the list of ``head_in_features`` feature maps to a list of per-level
                prediction lists.
            head_in_features: the backbone features the head reads, in order; default: all of
                them, by increasing stride.
            pixel_mean, pixel_std: per-channel normalisation of the input image.
        """
        super().__init__()
        self.backbone = backbone
        self.head = head
        shapes = self.backbone.output_shape()
        if head_in_features is None:
            self.head_in_features = sorted(shapes.keys(), key=lambda x: shapes[x].stride)
        else:
            missing = [f for f in head_in_features if f not in shapes]
            if missing:
                raise ValueError(
                    f"{type(self).__name__}: head_in_features {missing} are not produced by the backbone; "
                    f"available features: {sorted(shapes)}"
                )
            self.head_in_features = list(head_in_features)

        register_pixel_normalization(self, pixel_mean, pixel_std)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(
        self, batched_inputs: list[dict[str, Tensor]]
    ) -> dict[str, Tensor] | list[dict[str, Instances]]:
        """
        Args:
            batched_inputs: one dict per image: "image" (C, H, W); optional "height"/"width"
                (output size); for training "instances" (gt_boxes, gt_classes).

        Returns:
            training: dict[str, Tensor] of losses. eval: list of ``{"instances": Instances}``
            rescaled to each input's height/width.
        """
        need = ("instances",) if self.training else ()
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0], need)
        if self.training:
            require_event_storage(type(self).__name__)

        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        features = [features[f] for f in self.head_in_features]
        predictions = self.head(features)

        if self.training:
            gt_instances = [cast(Instances, x["instances"]).to(self.device) for x in batched_inputs]
            return self.forward_training(images, features, predictions, gt_instances)

        results = self.forward_inference(images, features, predictions)
        processed_results = []
        for results_per_image, input_per_image, image_size in zip(results, batched_inputs, images.image_sizes):
            # detectron2 annotates the inputs' values Tensor; "height" and "width" are ints
            height = cast(int, input_per_image.get("height", image_size[0]))
            width = cast(int, input_per_image.get("width", image_size[1]))
            r = detector_postprocess(results_per_image, height, width)
            processed_results.append({"instances": r})
        return processed_results

    def forward_training(
        self,
        images: ImageList,
        features: list[Tensor],
        predictions: list[list[Tensor]],
        gt_instances: list[Instances],
    ) -> dict[str, Tensor]:
        """Losses of one batch: dict[str, scalar Tensor]. Implemented by subclasses."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_training()")

    def forward_inference(
        self, images: ImageList, features: list[Tensor], predictions: list[list[Tensor]]
    ) -> list[Instances]:
        """Detections of each image at its (unpadded) input size. Implemented by subclasses."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_inference()")

    def _check_gt_instances(self, gt_instances: list[Instances], num_classes: int, num_classes_key: str) -> None:
        """Training targets need ``gt_boxes`` and ``gt_classes`` in [0, num_classes); say which
        input breaks that (``num_classes_key`` names where the number comes from)."""
        for i, gt in enumerate(gt_instances):
            if not (gt.has("gt_boxes") and gt.has("gt_classes")):
                raise ValueError(
                    f"batched_inputs[{i}]['instances'] needs gt_boxes and gt_classes for {type(self).__name__} "
                    f"training; it has {sorted(gt.get_fields())}"
                )
        # every image's class check read in one transfer (one host synchronisation on a GPU)
        out_of_range = torch.stack(
            [((gt.gt_classes < 0) | (gt.gt_classes >= num_classes)).any() for gt in gt_instances]
        ).tolist() if gt_instances else []
        for i, (gt, bad) in enumerate(zip(gt_instances, out_of_range)):
            if bad:
                raise ValueError(
                    f"batched_inputs[{i}]['instances'].gt_classes must be in [0, {num_classes}) "
                    f"({num_classes_key}), got values {sorted(set(gt.gt_classes.tolist()))}"
                )

    def preprocess_image(self, batched_inputs: list[dict[str, Tensor]]) -> ImageList:
        """Normalise, pad and batch the input images (to the backbone's size divisibility)."""
        return normalize_and_pad_images(batched_inputs, self.pixel_mean, self.pixel_std, self.backbone)

    def _transpose_dense_predictions(
        self, predictions: list[list[Tensor]], dims_per_anchor: list[int]
    ) -> list[list[Tensor]]:
        """Turn each output's per-level (N, Ai*K, Hi, Wi) maps into (N, Hi*Wi*Ai, K).

        Args:
            predictions: the head's outputs, each a list over levels.
            dims_per_anchor: K of each output, e.g. ``[num_classes, 4]``.
        """
        if len(predictions) != len(dims_per_anchor):
            raise ValueError(
                f"{len(predictions)} prediction outputs but {len(dims_per_anchor)} dims_per_anchor"
            )
        return [[permute_to_N_HWA_K(x, k) for x in pred] for pred, k in zip(predictions, dims_per_anchor)]

    def _ema_update(self, name: str, value: float, initial_value: float, momentum: float = 0.9) -> float:
        """``self.<name> = momentum * old + (1 - momentum) * value`` (old = ``initial_value`` the
        first time); returns the new value.

        The loss normaliser uses it: with one or two images per GPU, the number of foreground
        anchors varies a lot between batches, and dividing by an average of it trains better.
        """
        old = getattr(self, name) if hasattr(self, name) else initial_value
        new = old * momentum + value * (1 - momentum)
        setattr(self, name, new)
        return new

    def _decode_per_level_predictions(
        self,
        anchors: Boxes,
        pred_scores: Tensor,
        pred_deltas: Tensor,
        score_thresh: float,
        topk_candidates: int,
        image_size: tuple[int, int],
    ) -> Instances:
        """Candidates of one level of one image: scores above ``score_thresh``, at most
        ``topk_candidates`` of them (anchor-class pairs), with their boxes decoded.

        Args:
            anchors: the level's (Hi*Wi*Ai) anchors.
            pred_scores: (Hi*Wi*Ai, K) probabilities.
            pred_deltas: (Hi*Wi*Ai, 4) box deltas.

        Returns:
            Instances with ``pred_boxes``, ``scores`` (decreasing) and ``pred_classes``.
        """
        # thresholding first makes top-k and NMS cheap: most of the H*W*A*K scores are tiny
        keep_idxs = pred_scores > score_thresh
        topk_idxs = torch.nonzero(keep_idxs)  # (#kept, 2): anchor index, class index
        # the kept scores through those indices (the mask's elements in its row-major order): one
        # data-dependent step per level, a host synchronisation on a GPU, instead of two
        pred_scores = pred_scores[topk_idxs[:, 0], topk_idxs[:, 1]]

        num_topk = min(topk_candidates, topk_idxs.size(0))
        pred_scores, idxs = pred_scores.topk(num_topk)
        topk_idxs = topk_idxs[idxs]

        anchor_idxs, classes_idxs = topk_idxs.unbind(dim=1)
        pred_boxes = self.box2box_transform.apply_deltas(pred_deltas[anchor_idxs], anchors.tensor[anchor_idxs])
        return Instances(image_size, pred_boxes=Boxes(pred_boxes), scores=pred_scores, pred_classes=classes_idxs)

    def _decode_multi_level_predictions(
        self,
        anchors: list[Boxes],
        pred_scores: list[Tensor],
        pred_deltas: list[Tensor],
        score_thresh: float,
        topk_candidates: int,
        image_size: tuple[int, int],
    ) -> Instances:
        """:meth:`_decode_per_level_predictions` on every level of one image, concatenated.

        As in detectron2, each level is filtered with the detector's ``test_score_thresh`` and
        ``test_topk_candidates`` attributes; the two arguments are kept for its signature.
        """
        predictions = [
            self._decode_per_level_predictions(
                anchors_i, box_cls_i, box_reg_i, self.test_score_thresh, self.test_topk_candidates, image_size
            )
            for box_cls_i, box_reg_i, anchors_i in zip(pred_scores, pred_deltas, anchors)
        ]
        return Instances.cat(predictions)

    def visualize_training(self, batched_inputs: list[dict[str, Any]], results: list[Instances]) -> None:
        """Put into the EventStorage an image of the first input's ground-truth boxes (top) above
        its 20 best predicted boxes (bottom). ``results`` are :meth:`forward_inference` outputs.

        Uses the ``input_format`` attribute of the subclass (default "BGR").
        """
        if len(batched_inputs) != len(results):
            raise ValueError(
                f"visualize_training got {len(batched_inputs)} inputs but {len(results)} results"
            )
        storage = get_event_storage()
        max_boxes = 20
        img = to_rgb_uint8(batched_inputs[0]["image"], getattr(self, "input_format", "BGR"))
        anno_img = draw_boxes(img, batched_inputs[0]["instances"].gt_boxes.tensor.cpu().numpy(), (0, 255, 0))
        processed = detector_postprocess(results[0], img.shape[0], img.shape[1])
        predicted = processed.pred_boxes.tensor.detach().cpu().numpy()[:max_boxes]
        pred_img = draw_boxes(img, predicted, (255, 0, 0))
        vis_img = np.vstack((anno_img, pred_img)).transpose(2, 0, 1)
        storage.put_image(f"Top: GT bounding boxes; Bottom: {max_boxes} Highest Scoring Results", vis_img)
