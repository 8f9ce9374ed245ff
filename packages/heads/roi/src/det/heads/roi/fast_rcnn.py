"""The Fast R-CNN box predictor (``FastRCNNOutputLayers``) and its inference (``fast_rcnn_inference``).

Shape shorthand: R regions over the whole batch, Ri in image i, K foreground classes (class K is
background), B the box dimension (4, or 5 for rotated boxes).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.layers import Linear, ShapeSpec, batched_nms, cat, cross_entropy, nonzero_tuple
from det.core.modeling import BOX_REG_LOSS_TYPES, Box2BoxTransform, _dense_box_regression_loss
from det.structures import Boxes, Instances

__all__ = [
    "FastRCNNOutputLayers",
    "fast_rcnn_inference",
    "fast_rcnn_inference_single_image",
    "get_fed_loss_cls_weights",
]



def get_fed_loss_cls_weights(dataset_names: str | list[str], freq_weight_power: float = 1.0) -> torch.Tensor:
    """Per-class weights for the federated loss; defined in det-data's
    ``det.data.detection_utils`` (where detectron2 has it), imported only when the federated
    loss is used."""
    try:
        from det.data.detection_utils import get_fed_loss_cls_weights as from_data
    except ImportError as e:
        raise ImportError(
            "MODEL.ROI_BOX_HEAD.USE_FED_LOSS reads class frequencies from the dataset metadata "
            "(MetadataCatalog), which det-data provides: pip install det-data"
        ) from e
    return from_data(dataset_names, freq_weight_power)


def fast_rcnn_inference(boxes: list[torch.Tensor], scores: list[torch.Tensor],
                        image_shapes: list[tuple[int, int]], score_thresh: float, nms_thresh: float,
                        topk_per_image: int) -> tuple[list[Instances], list[torch.Tensor]]:
    """Per image: threshold scores, NMS each class independently, keep the top-k detections.

    Args:
        boxes: per image, (Ri, K*4) class-specific or (Ri, 4) class-agnostic predicted boxes.
        scores: per image, (Ri, K+1) class probabilities (last column: background).
        image_shapes: per image, the (height, width) boxes are clipped to.
        score_thresh: keep detections whose score is above this.
        nms_thresh: IoU threshold of the per-class NMS.
        topk_per_image: detections kept per image (negative: all).

    Returns:
        per image, ``Instances`` with ``pred_boxes``, ``scores``, ``pred_classes``; and per image
        the index in [0, Ri) of the region each detection came from.
    """
    if not (len(boxes) == len(scores) == len(image_shapes)):
        raise ValueError(
            f"fast_rcnn_inference: got {len(boxes)} box tensors, {len(scores)} score tensors and "
            f"{len(image_shapes)} image shapes; expected one of each per image"
        )
    result_per_image = [
        fast_rcnn_inference_single_image(
            boxes_per_image, scores_per_image, image_shape, score_thresh, nms_thresh, topk_per_image
        )
        for scores_per_image, boxes_per_image, image_shape in zip(scores, boxes, image_shapes)
    ]
    return [x[0] for x in result_per_image], [x[1] for x in result_per_image]


def fast_rcnn_inference_single_image(boxes: torch.Tensor, scores: torch.Tensor, image_shape: tuple[int, int],
                                     score_thresh: float, nms_thresh: float,
                                     topk_per_image: int) -> tuple[Instances, torch.Tensor]:
    """:func:`fast_rcnn_inference` for one image."""
    return _inference_single_image(
        boxes, scores, image_shape, score_thresh, nms_thresh, topk_per_image, Boxes, 4, batched_nms
    )


def _inference_single_image(boxes: torch.Tensor, scores: torch.Tensor, image_shape: tuple[int, int],
                            score_thresh: float, nms_thresh: float, topk_per_image: int, box_type: type,
                            box_dim: int,
                            class_wise_nms: Callable[..., torch.Tensor]) -> tuple[Instances, torch.Tensor]:
    """One image's detections from (R, K*B) or (R, B) boxes of ``box_type`` (``box_dim`` numbers
    per box: 4 for Boxes, 5 for RotatedBoxes) and (R, K+1) scores: drop non-finite rows, clip,
    keep scores above ``score_thresh``, ``class_wise_nms``, then the top ``topk_per_image`` (all
    when < 0)."""
    valid_mask = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    if not valid_mask.all():
        boxes = boxes[valid_mask]
        scores = scores[valid_mask]

    scores = scores[:, :-1]
    num_bbox_reg_classes = boxes.shape[1] // box_dim
    clipped = box_type(boxes.reshape(-1, box_dim))
    clipped.clip(image_shape)
    boxes = clipped.tensor.view(-1, num_bbox_reg_classes, box_dim)  # R x C x B

    # thresholding first makes the NMS cheaper
    filter_mask = scores > score_thresh  # R x K
    # (region index, class index) of each surviving score
    filter_inds = filter_mask.nonzero()
    # indexed by filter_inds, not by the mask again: the same elements in the same (row-major)
    # order, without a data-dependent indexing (a host synchronisation on a GPU) per tensor
    rows, classes = filter_inds[:, 0], filter_inds[:, 1]
    boxes = boxes[rows, 0] if num_bbox_reg_classes == 1 else boxes[rows, classes]
    scores = scores[rows, classes]

    keep = class_wise_nms(boxes, scores, filter_inds[:, 1], nms_thresh)
    if topk_per_image >= 0:
        keep = keep[:topk_per_image]
    boxes, scores, filter_inds = boxes[keep], scores[keep], filter_inds[keep]

    result = Instances(image_shape)
    result.pred_boxes = box_type(boxes)
    result.scores = scores
    result.pred_classes = filter_inds[:, 1]
    return result, filter_inds[:, 0]


def _log_classification_stats(pred_logits: torch.Tensor, gt_classes: torch.Tensor, prefix: str = "fast_rcnn"):
    """Put ``{prefix}/cls_accuracy``, ``/fg_cls_accuracy`` and ``/false_negative`` into the EventStorage."""
    num_instances = gt_classes.numel()
    if num_instances == 0:
        return
    pred_classes = pred_logits.argmax(dim=1)
    bg_class_ind = pred_logits.shape[1] - 1

    fg_inds = (gt_classes >= 0) & (gt_classes < bg_class_ind)
    accurate = pred_classes == gt_classes
    # the four counts read in one transfer (one host synchronisation on a GPU, not six)
    num_fg, num_false_negative, num_accurate, fg_num_accurate = torch.stack(
        [fg_inds.sum(), (fg_inds & (pred_classes == bg_class_ind)).sum(), accurate.sum(), (fg_inds & accurate).sum()]
    ).tolist()

    storage = get_event_storage()
    storage.put_scalar(f"{prefix}/cls_accuracy", num_accurate / num_instances)
    if num_fg > 0:
        storage.put_scalar(f"{prefix}/fg_cls_accuracy", fg_num_accurate / num_fg)
        storage.put_scalar(f"{prefix}/false_negative", num_false_negative / num_fg)


class FastRCNNOutputLayers(nn.Module):
    """Two linear layers on the box-head features: class scores ``cls_score`` (K+1 outputs, last
    is background) and box deltas ``bbox_pred`` (K*B, or B when class-agnostic).

    Invariant: ``forward`` maps (R, D) or (R, C, H, W) features to ``(scores (R, K+1), deltas)``;
    ``losses`` gives ``loss_cls`` and ``loss_box_reg``; ``inference`` gives detections::

        predictor = FastRCNNOutputLayers(ShapeSpec(channels=64), box2box_transform=Box2BoxTransform((10, 10, 5, 5)), num_classes=3)
        scores, deltas = predictor(torch.rand(8, 64))      # (8, 4), (8, 12)
        instances, kept = predictor.inference((scores, deltas), proposals)
    """

    # final layers: they stay float32 under fast mode's bfloat16 (det.core.fast's protocol)
    float32_layers = ("cls_score", "bbox_pred")

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec | int,
        *,
        box2box_transform,
        num_classes: int,
        test_score_thresh: float = 0.0,
        test_nms_thresh: float = 0.5,
        test_topk_per_image: int = 100,
        cls_agnostic_bbox_reg: bool = False,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        loss_weight: float | dict[str, float] = 1.0,
        use_fed_loss: bool = False,
        use_sigmoid_ce: bool = False,
        get_fed_loss_cls_weights: Callable[[], torch.Tensor] | None = None,
        fed_loss_num_classes: int = 50,
    ):
        """
        Args:
            input_shape: shape of the input features (or just their number of channels).
            box2box_transform: Box2BoxTransform or Box2BoxTransformRotated; its ``weights``
                length is the box dimension B.
            num_classes: number of foreground classes K.
            test_score_thresh: detections scoring at or below this are dropped at inference.
            test_nms_thresh: per-class NMS IoU threshold at inference.
            test_topk_per_image: detections kept per image at inference (negative: all).
            cls_agnostic_bbox_reg: one box regression for all classes.
            smooth_l1_beta: beta of the smooth L1 loss (0: L1).
            box_reg_loss_type: "smooth_l1", "giou", "diou" or "ciou".
            loss_weight: one weight for all losses, or a dict keyed ``loss_cls``/``loss_box_reg``.
            use_fed_loss: federated loss (needs ``use_sigmoid_ce``): only a sample of classes
                contributes to the classification loss of each batch.
            use_sigmoid_ce: per-class sigmoid cross entropy instead of softmax.
            get_fed_loss_cls_weights: returns the (K,) class weights used to sample the
                federated-loss classes; called once, only when ``use_fed_loss``.
            fed_loss_num_classes: classes sampled by the federated loss.
        """
        super().__init__()
        if isinstance(input_shape, int):  # some backward compatibility
            input_shape = ShapeSpec(channels=input_shape)
        if not isinstance(input_shape, ShapeSpec) or not input_shape.channels:
            raise ValueError(
                f"FastRCNNOutputLayers: input_shape must be a ShapeSpec with channels (or an int), got {input_shape!r}"
            )
        if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes <= 0:
            raise ValueError(f"FastRCNNOutputLayers: num_classes must be a positive int, got {num_classes!r}")
        if box_reg_loss_type not in BOX_REG_LOSS_TYPES:
            raise ValueError(
                f"FastRCNNOutputLayers: invalid box_reg_loss_type {box_reg_loss_type!r}; "
                f"expected one of {BOX_REG_LOSS_TYPES}"
            )
        self.num_classes = num_classes
        input_size = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
        # num_classes + 1 because the last class is background
        self.cls_score = Linear(input_size, num_classes + 1)
        num_bbox_reg_classes = 1 if cls_agnostic_bbox_reg else num_classes
        box_dim = len(box2box_transform.weights)
        self.bbox_pred = Linear(input_size, num_bbox_reg_classes * box_dim)

        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in [self.cls_score, self.bbox_pred]:
            nn.init.constant_(layer.bias, 0)

        self.box2box_transform = box2box_transform
        self.smooth_l1_beta = smooth_l1_beta
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image
        self.box_reg_loss_type = box_reg_loss_type
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_cls": float(loss_weight), "loss_box_reg": float(loss_weight)}
        self.loss_weight = loss_weight
        self.use_fed_loss = use_fed_loss
        self.use_sigmoid_ce = use_sigmoid_ce
        self.fed_loss_num_classes = fed_loss_num_classes

        if self.use_fed_loss:
            if not self.use_sigmoid_ce:
                raise ValueError(
                    "FastRCNNOutputLayers: the federated loss (use_fed_loss) needs sigmoid cross "
                    "entropy: set use_sigmoid_ce=True (MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE)"
                )
            if get_fed_loss_cls_weights is None:
                raise ValueError("FastRCNNOutputLayers: use_fed_loss needs get_fed_loss_cls_weights")
            fed_loss_cls_weights = torch.as_tensor(get_fed_loss_cls_weights())
            if len(fed_loss_cls_weights) != self.num_classes:
                raise ValueError(
                    f"FastRCNNOutputLayers: {len(fed_loss_cls_weights)} federated-loss class weights "
                    f"for {self.num_classes} classes; expected one weight per class"
                )
            self.register_buffer("fed_loss_cls_weights", fed_loss_cls_weights)

    def class_dependent_parameters(self) -> list[str]:
        """Parameters sized by the number of classes: the classifier and, unless class-agnostic,
        the box regressor, and the federated-loss class weights (see
        :func:`det.checkpoint.class_dependent_parameter_names`)."""
        names = ["cls_score.weight", "cls_score.bias", "bbox_pred.weight", "bbox_pred.bias"]
        if "fed_loss_cls_weights" in dict(self.named_buffers(recurse=False)):
            names.append("fed_loss_cls_weights")
        return names

    @classmethod
    def from_config(cls, cfg, input_shape):
        return {
            "input_shape": input_shape,
            "box2box_transform": Box2BoxTransform(weights=cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS),
            "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            "cls_agnostic_bbox_reg": cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG,
            "smooth_l1_beta": cfg.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA,
            "test_score_thresh": cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
            "test_nms_thresh": cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
            "test_topk_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "box_reg_loss_type": cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE,
            "loss_weight": {"loss_box_reg": cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT},
            "use_fed_loss": cfg.MODEL.ROI_BOX_HEAD.USE_FED_LOSS,
            "use_sigmoid_ce": cfg.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE,
            "get_fed_loss_cls_weights": lambda: get_fed_loss_cls_weights(
                dataset_names=cfg.DATASETS.TRAIN,
                freq_weight_power=cfg.MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER,
            ),
            "fed_loss_num_classes": cfg.MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES,
        }

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: per-region features, (R, D) or (R, C, H, W) (flattened).

        Returns:
            scores (R, K+1) and proposal deltas (R, K*B) or (R, B).
        """
        if x.dim() > 2:
            x = torch.flatten(x, start_dim=1)
        if x.shape[-1] != self.cls_score.in_features:
            raise ValueError(
                f"FastRCNNOutputLayers expects {self.cls_score.in_features} features per region, "
                f"got input of shape {tuple(x.shape)}"
            )
        scores = self.cls_score(x)
        proposal_deltas = self.bbox_pred(x)
        return scores, proposal_deltas

    def losses(self, predictions, proposals: list[Instances]) -> dict[str, torch.Tensor]:
        """
        Args:
            predictions: the ``(scores, proposal_deltas)`` returned by ``forward``.
            proposals: the regions (``proposal_boxes``) with their ``gt_classes`` and, for
                foreground ones, ``gt_boxes`` (as made by ``label_and_sample_proposals``).

        Returns:
            ``{"loss_cls", "loss_box_reg"}`` weighted by ``loss_weight``; also logs the
            ``fast_rcnn/*`` accuracy statistics.
        """
        scores, proposal_deltas = predictions

        gt_classes = (
            cat([p.gt_classes for p in proposals], dim=0)
            if len(proposals)
            else torch.empty(0, dtype=torch.int64, device=scores.device)
        )
        _log_classification_stats(scores, gt_classes)

        if len(proposals):
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)  # Nx4
            if proposal_boxes.requires_grad:
                raise ValueError("FastRCNNOutputLayers.losses: proposal boxes must not require gradients")
            # an image without ground truth has no gt_boxes: its regions are all background,
            # so any box serves as the (unused) target
            gt_boxes = cat(
                [(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals],
                dim=0,
            )
        else:
            proposal_boxes = gt_boxes = torch.empty((0, 4), device=proposal_deltas.device)

        if self.use_sigmoid_ce:
            loss_cls = self.sigmoid_cross_entropy_loss(scores, gt_classes)
        else:
            loss_cls = cross_entropy(scores, gt_classes, reduction="mean")

        losses = {
            "loss_cls": loss_cls,
            "loss_box_reg": self.box_reg_loss(proposal_boxes, gt_boxes, proposal_deltas, gt_classes),
        }
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    # the federated loss of CenterNet2 (Zhou et al.), as detectron2 adopted it
    def get_fed_loss_classes(self, gt_classes, num_fed_loss_classes, num_classes, weight):
        """The classes the federated loss uses for this batch: every class present in
        ``gt_classes`` plus negatives sampled (``torch.multinomial``) by ``weight``, up to
        ``num_fed_loss_classes`` in total."""
        unique_gt_classes = torch.unique(gt_classes)
        prob = unique_gt_classes.new_ones(num_classes + 1).float()
        prob[-1] = 0
        if len(unique_gt_classes) < num_fed_loss_classes:
            prob[:num_classes] = weight.float().clone()
            prob[unique_gt_classes] = 0
            sampled_negative_classes = torch.multinomial(
                prob, num_fed_loss_classes - len(unique_gt_classes), replacement=False
            )
            fed_loss_classes = torch.cat([unique_gt_classes, sampled_negative_classes])
        else:
            fed_loss_classes = unique_gt_classes
        return fed_loss_classes

    def sigmoid_cross_entropy_loss(self, pred_class_logits: torch.Tensor, gt_classes: torch.Tensor):
        """Per-class binary cross entropy on the K foreground logits, summed and divided by R;
        with the federated loss, only the sampled classes count."""
        if pred_class_logits.numel() == 0:
            return pred_class_logits.new_zeros([1])[0]

        N = pred_class_logits.shape[0]
        K = pred_class_logits.shape[1] - 1

        target = pred_class_logits.new_zeros(N, K + 1)
        target[range(len(gt_classes)), gt_classes] = 1
        target = target[:, :K]

        cls_loss = F.binary_cross_entropy_with_logits(pred_class_logits[:, :-1], target, reduction="none")

        if self.use_fed_loss:
            fed_loss_classes = self.get_fed_loss_classes(
                gt_classes,
                num_fed_loss_classes=self.fed_loss_num_classes,
                num_classes=K,
                weight=self.fed_loss_cls_weights,
            )
            fed_loss_classes_mask = fed_loss_classes.new_zeros(K + 1)
            fed_loss_classes_mask[fed_loss_classes] = 1
            fed_loss_classes_mask = fed_loss_classes_mask[:K]
            weight = fed_loss_classes_mask.view(1, K).expand(N, K).float()
        else:
            weight = 1

        return torch.sum(cls_loss * weight) / N

    def box_reg_loss(self, proposal_boxes, gt_boxes, pred_deltas, gt_classes):
        """Box regression loss of the foreground regions, for their ground-truth class.

        Args:
            proposal_boxes, gt_boxes: (R, B) boxes of the regions and their matched ground truth.
            pred_deltas: (R, B) or (R, K*B) predicted deltas.
            gt_classes: (R,) labels in [0, K] (K: background).

        Returns:
            the summed loss divided by R: every region, foreground or not, weighs the same, so a
            batch with one foreground region does not over-weight it.
        """
        box_dim = proposal_boxes.shape[1]  # 4 or 5
        fg_inds = nonzero_tuple((gt_classes >= 0) & (gt_classes < self.num_classes))[0]
        if pred_deltas.shape[1] == box_dim:  # cls-agnostic regression
            fg_pred_deltas = pred_deltas[fg_inds]
        else:
            fg_pred_deltas = pred_deltas.view(-1, self.num_classes, box_dim)[fg_inds, gt_classes[fg_inds]]

        loss_box_reg = _dense_box_regression_loss(
            [proposal_boxes[fg_inds]],
            self.box2box_transform,
            [fg_pred_deltas.unsqueeze(0)],
            [gt_boxes[fg_inds]],
            ...,
            self.box_reg_loss_type,
            self.smooth_l1_beta,
        )
        return loss_box_reg / max(gt_classes.numel(), 1.0)

    def inference(self, predictions, proposals: list[Instances]):
        """Detections per image: see :func:`fast_rcnn_inference` (with this layer's test settings).

        Returns:
            per image ``Instances`` (``pred_boxes``, ``scores``, ``pred_classes``), and per image
            the indices of the regions the detections came from.
        """
        return self._inference_with(fast_rcnn_inference, predictions, proposals)

    def _inference_with(self, inference_fn: Callable, predictions, proposals: list[Instances]):
        """``inference_fn`` (:func:`fast_rcnn_inference` or its rotated form) on the predicted boxes
        and probabilities, with this layer's test settings."""
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        image_shapes = [x.image_size for x in proposals]
        return inference_fn(
            boxes, scores, image_shapes, self.test_score_thresh, self.test_nms_thresh, self.test_topk_per_image
        )

    def predict_boxes_for_gt_classes(self, predictions, proposals: list[Instances]):
        """Per image, the (Ri, B) boxes predicted for each region's ground-truth class
        (training with TRAIN_ON_PRED_BOXES)."""
        if not len(proposals):
            return []
        _scores, proposal_deltas = predictions
        proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        N, B = proposal_boxes.shape
        predict_boxes = self.box2box_transform.apply_deltas(proposal_deltas, proposal_boxes)  # Nx(KxB)

        K = predict_boxes.shape[1] // B
        if K > 1:
            gt_classes = torch.cat([p.gt_classes for p in proposals], dim=0)
            # background regions have no class of their own: use the last foreground class
            gt_classes = gt_classes.clamp_(0, K - 1)
            predict_boxes = predict_boxes.view(N, K, B)[
                torch.arange(N, dtype=torch.long, device=predict_boxes.device), gt_classes
            ]
        num_prop_per_image = [len(p) for p in proposals]
        return predict_boxes.split(num_prop_per_image)

    def predict_boxes(self, predictions, proposals: list[Instances]):
        """Per image, the (Ri, K*B) or (Ri, B) predicted boxes."""
        if not len(proposals):
            return []
        _, proposal_deltas = predictions
        num_prop_per_image = [len(p) for p in proposals]
        proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        predict_boxes = self.box2box_transform.apply_deltas(proposal_deltas, proposal_boxes)
        return predict_boxes.split(num_prop_per_image)

    def predict_probs(self, predictions, proposals: list[Instances]):
        """Per image, the (Ri, K+1) class probabilities (softmax, or sigmoid with sigmoid CE)."""
        scores, _ = predictions
        num_inst_per_image = [len(p) for p in proposals]
        probs = scores.sigmoid() if self.use_sigmoid_ce else F.softmax(scores, dim=-1)
        return probs.split(num_inst_per_image, dim=0)
