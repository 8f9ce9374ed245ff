"""The ``build_*`` functions: config -> module, through the component registry."""

from __future__ import annotations

from typing import Any, cast

import torch

from det.core.device import resolve_device
from det.core.registry import get_component

__all__ = [
    "build_backbone",
    "build_model",
    "build_proposal_generator",
    "build_roi_heads",
    "build_sem_seg_head",
]


def build_model(cfg: Any) -> torch.nn.Module:
    """Build the whole model named by ``cfg.MODEL.META_ARCHITECTURE``, on ``cfg.MODEL.DEVICE``
    (on the CPU, with one warning, when that names a GPU this machine lacks: see :mod:`det.core.device`).

    Weights are freshly initialised; load a checkpoint with ``DetectionCheckpointer(model).load(...)``.

    Returns:
        torch.nn.Module: e.g. :class:`~det.core.modeling.meta_arch.GeneralizedRCNN`, in training
        mode, taking ``list[dict]`` (see the forward contract in DESIGN.md).
    """
    meta_arch = cfg.MODEL.META_ARCHITECTURE
    model = get_component("META_ARCH", meta_arch)(cfg)
    model.to(resolve_device(cfg.MODEL.DEVICE))
    return cast(torch.nn.Module, model)


def build_backbone(cfg: Any, input_shape: Any = None) -> Any:
    """Build the backbone named by ``cfg.MODEL.BACKBONE.NAME``.

    Args:
        input_shape (ShapeSpec): of the input image; default: ``len(cfg.MODEL.PIXEL_MEAN)`` channels.

    Returns:
        Backbone: maps an (N, C, H, W) tensor to ``dict[str, Tensor]`` of features.
    """
    from det.core.layers import ShapeSpec
    from det.core.modeling.backbone import Backbone

    if input_shape is None:
        input_shape = ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
    backbone_name = cfg.MODEL.BACKBONE.NAME
    backbone = get_component("BACKBONE", backbone_name)(cfg, input_shape)
    if not isinstance(backbone, Backbone):
        raise TypeError(
            f"BACKBONE {backbone_name!r} returned a {type(backbone).__name__}; a backbone must be an "
            "instance of det.core.modeling.Backbone"
        )
    return backbone


def build_proposal_generator(cfg: Any, input_shape: Any) -> torch.nn.Module | None:
    """Build the proposal generator named by ``cfg.MODEL.PROPOSAL_GENERATOR.NAME``.

    Args:
        input_shape (dict[str, ShapeSpec]): the backbone's ``output_shape()``.

    Returns:
        nn.Module or None: e.g. RPN, called as ``(images, features, gt_instances)`` ->
        ``(proposals, losses)``; None for "PrecomputedProposals" (proposals come with the inputs).
    """
    name = cfg.MODEL.PROPOSAL_GENERATOR.NAME
    if name == "PrecomputedProposals":
        return None
    return cast(torch.nn.Module, get_component("PROPOSAL_GENERATOR", name)(cfg, input_shape))


def build_roi_heads(cfg: Any, input_shape: Any) -> torch.nn.Module:
    """Build the ROI heads named by ``cfg.MODEL.ROI_HEADS.NAME``.

    Args:
        input_shape (dict[str, ShapeSpec]): the backbone's ``output_shape()``.

    Returns:
        nn.Module: e.g. StandardROIHeads, called as ``(images, features, proposals, targets)`` ->
        ``(instances, losses)``.
    """
    name = cfg.MODEL.ROI_HEADS.NAME
    return cast(torch.nn.Module, get_component("ROI_HEADS", name)(cfg, input_shape))


def build_sem_seg_head(cfg: Any, input_shape: Any) -> torch.nn.Module:
    """Build the semantic segmentation head named by ``cfg.MODEL.SEM_SEG_HEAD.NAME``.

    Args:
        input_shape (dict[str, ShapeSpec]): the backbone's ``output_shape()``.

    Returns:
        nn.Module: e.g. SemSegFPNHead, called as ``(features, targets)`` -> ``(logits, losses)``.
    """
    name = cfg.MODEL.SEM_SEG_HEAD.NAME
    return cast(torch.nn.Module, get_component("SEM_SEG_HEADS", name)(cfg, input_shape))
