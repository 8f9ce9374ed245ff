"""Meta-architectures of det-core: GeneralizedRCNN (backbone + proposals + ROI heads) and
ProposalNetwork (backbone + proposals only)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from det.core.config import configurable
from det.core.events import get_event_storage
from det.core.layers import move_device_like
from det.core.modeling.build import build_backbone, build_proposal_generator, build_roi_heads
from det.core.modeling.inputs import (
    check_batched_inputs,
    normalize_and_pad_images,
    register_pixel_normalization,
    require_event_storage,
)
from det.core.modeling.postprocessing import detector_postprocess
from det.core.modeling.vis import draw_boxes, to_rgb_uint8
from det.structures import ImageList, Instances

__all__ = ["GeneralizedRCNN", "ProposalNetwork"]


def _proposal_network_config(cfg) -> dict:
    """The arguments both meta-architectures here take: the backbone, the proposal generator over
    it and the pixel normalisation (the backbone is built before the proposal generator, as in
    detectron2, so seeded weights come out the same)."""
    backbone = build_backbone(cfg)
    return {
        "backbone": backbone,
        "proposal_generator": build_proposal_generator(cfg, backbone.output_shape()),
        "pixel_mean": cfg.MODEL.PIXEL_MEAN,
        "pixel_std": cfg.MODEL.PIXEL_STD,
    }


class GeneralizedRCNN(nn.Module):
    """Backbone -> proposal generator -> per-region heads: Faster/Mask/Keypoint R-CNN and friends.

    Invariant: in training ``forward`` returns ``dict[str, scalar Tensor]`` of losses (inside an
    EventStorage); in eval it returns one ``{"instances": Instances}`` per input, at each input's
    ``height``/``width`` (default: the size of its image).

        model = build_model(cfg).eval()       # or GeneralizedRCNN(backbone=..., proposal_generator=..., ...)
        outputs = model([{"image": img_chw, "height": h, "width": w}])
        outputs[0]["instances"].pred_boxes
    """

    @configurable
    def __init__(
        self,
        *,
        backbone,
        proposal_generator,
        roi_heads,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
        input_format: str | None = None,
        vis_period: int = 0,
    ):
        """
        Args:
            backbone: a :class:`Backbone`.
            proposal_generator: computes proposals from features, or None to take precomputed
                ones from the inputs' "proposals".
            roi_heads: computes per-region predictions (and losses) from features and proposals.
            pixel_mean, pixel_std: per-channel normalisation of the input image.
            input_format: channel order of the input ("BGR", "RGB"); used for visualisation.
            vis_period: put a visualisation of ground truth and proposals in the EventStorage
                every this many iterations (0 = never).
        """
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads

        self.input_format = input_format
        self.vis_period = vis_period
        if vis_period > 0 and input_format is None:
            raise ValueError("input_format is required for visualization (vis_period > 0)!")

        register_pixel_normalization(self, pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg):
        ret = _proposal_network_config(cfg)
        ret["roi_heads"] = build_roi_heads(cfg, ret["backbone"].output_shape())
        return {**ret, "input_format": cfg.INPUT.FORMAT, "vis_period": cfg.VIS_PERIOD}

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _move_to_current_device(self, x):
        return move_device_like(x, self.pixel_mean)

    def visualize_training(self, batched_inputs, proposals):
        """Put an image of the first input's ground-truth boxes (left) next to its top-20
        proposals (right) into the EventStorage."""
        storage = get_event_storage()
        max_vis_prop = 20

        for input, prop in zip(batched_inputs, proposals):
            img = to_rgb_uint8(input["image"], self.input_format)
            anno_img = draw_boxes(img, input["instances"].gt_boxes.tensor.cpu().numpy(), (0, 255, 0))
            box_size = min(len(prop.proposal_boxes), max_vis_prop)
            prop_img = draw_boxes(
                img, prop.proposal_boxes[0:box_size].tensor.detach().cpu().numpy(), (255, 0, 0)
            )
            vis_img = np.concatenate((anno_img, prop_img), axis=1)
            vis_img = vis_img.transpose(2, 0, 1)
            vis_name = "Left: GT bounding boxes;  Right: Predicted proposals"
            storage.put_image(vis_name, vis_img)
            break  # one image per batch is enough to see how training goes

    def forward(self, batched_inputs: list[dict[str, torch.Tensor]]):
        """
        Args:
            batched_inputs: one dict per image: "image" (C, H, W) tensor in ``input_format``;
                optional "height"/"width" (output size); for training "instances" (gt_boxes,
                gt_classes, ...); "proposals" when there is no proposal generator.

        Returns:
            training: dict[str, Tensor] of losses. eval: list[dict] with "instances".
        """
        if not self.training:
            return self.inference(batched_inputs)

        need = ("instances",) if self.proposal_generator is not None else ("instances", "proposals")
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0], need)
        storage = require_event_storage(type(self).__name__)

        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]

        features = self.backbone(images.tensor)

        if self.proposal_generator is not None:
            proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        else:
            proposals = [x["proposals"].to(self.device) for x in batched_inputs]
            proposal_losses = {}

        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        if self.vis_period > 0 and storage.iter % self.vis_period == 0:
            self.visualize_training(batched_inputs, proposals)

        losses = {}
        losses.update(detector_losses)
        losses.update(proposal_losses)
        return losses

    def inference(
        self,
        batched_inputs: list[dict[str, torch.Tensor]],
        detected_instances: list[Instances] | None = None,
        do_postprocess: bool = True,
    ):
        """Run inference on the given inputs.

        Args:
            batched_inputs: as in :meth:`forward`.
            detected_instances: if given, skip proposals and box prediction: per image, Instances
                with pred_boxes and pred_classes, for which only the other heads (masks,
                keypoints) are run.
            do_postprocess: rescale the results to the inputs' "height"/"width" (else the results
                stay at the resized input size, as Instances, not dicts).

        Returns:
            list[dict] with "instances" when do_postprocess, else list[Instances].
        """
        if self.training:
            raise RuntimeError("GeneralizedRCNN.inference() needs eval mode: call model.eval() first")
        need = ("proposals",) if (self.proposal_generator is None and detected_instances is None) else ()
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0], need)

        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)

        if detected_instances is None:
            if self.proposal_generator is not None:
                proposals, _ = self.proposal_generator(images, features, None)
            else:
                proposals = [x["proposals"].to(self.device) for x in batched_inputs]

            results, _ = self.roi_heads(images, features, proposals, None)
        else:
            detected_instances = [x.to(self.device) for x in detected_instances]
            results = self.roi_heads.forward_with_given_boxes(features, detected_instances)

        if do_postprocess:
            return GeneralizedRCNN._postprocess(results, batched_inputs, images.image_sizes)
        return results

    def preprocess_image(self, batched_inputs: list[dict[str, torch.Tensor]]) -> ImageList:
        """Normalise, pad and batch the input images (to the backbone's size divisibility)."""
        return normalize_and_pad_images(batched_inputs, self.pixel_mean, self.pixel_std, self.backbone)

    @staticmethod
    def _postprocess(instances, batched_inputs: list[dict[str, torch.Tensor]], image_sizes):
        """Rescale the output instances to the target size."""
        processed_results = []
        for results_per_image, input_per_image, image_size in zip(instances, batched_inputs, image_sizes):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            r = detector_postprocess(results_per_image, height, width)
            processed_results.append({"instances": r})
        return processed_results


class ProposalNetwork(nn.Module):
    """Backbone + proposal generator: an RPN-only model.

    Invariant: in training ``forward`` returns the proposal losses (inside an EventStorage); in
    eval one ``{"proposals": Instances}`` per input (proposal_boxes, objectness_logits) rescaled
    to its ``height``/``width``.

        model = build_model(cfg)              # cfg.MODEL.META_ARCHITECTURE = "ProposalNetwork"
        model.eval()
        model([{"image": img_chw}])[0]["proposals"].proposal_boxes
    """

    @configurable
    def __init__(self, *, backbone, proposal_generator, pixel_mean: tuple[float, ...],
                 pixel_std: tuple[float, ...]):
        """
        Args:
            backbone: a :class:`Backbone`.
            proposal_generator: computes proposals (and losses) from features.
            pixel_mean, pixel_std: per-channel normalisation of the input image.
        """
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        register_pixel_normalization(self, pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg):
        return _proposal_network_config(cfg)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _move_to_current_device(self, x):
        return move_device_like(x, self.pixel_mean)

    def forward(self, batched_inputs):
        """
        Args:
            batched_inputs: as in :meth:`GeneralizedRCNN.forward`.

        Returns:
            training: dict of proposal losses. eval: list[dict] with "proposals".
        """
        need = ("instances",) if self.training else ()
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0], need)
        if self.training:
            require_event_storage(type(self).__name__)

        images = normalize_and_pad_images(batched_inputs, self.pixel_mean, self.pixel_std, self.backbone)
        features = self.backbone(images.tensor)

        if "instances" in batched_inputs[0]:
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        else:
            gt_instances = None
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        # in training the proposals are computed and thrown away: one code path for the
        # proposal generator costs RPN-only training a few percent, detectron2 accepts the same
        if self.training:
            return proposal_losses

        processed_results = []
        for results_per_image, input_per_image, image_size in zip(
            proposals, batched_inputs, images.image_sizes
        ):
            height = input_per_image.get("height", image_size[0])
            width = input_per_image.get("width", image_size[1])
            r = detector_postprocess(results_per_image, height, width)
            processed_results.append({"proposals": r})
        return processed_results
