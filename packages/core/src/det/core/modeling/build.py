"""The ``build_*`` functions: config -> module, through the component registry."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
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
    "skip_init",
]

# torch.nn.init's functions that write values into a tensor. torch's own modules call them from
# reset_parameters() through the module (``init.kaiming_uniform_``), and det code calls them as
# ``nn.init.normal_`` / through det.core.layers.weight_init, which also looks them up on the module
# at call time, so replacing the module attributes covers every det constructor.
_INIT_FILLS: tuple[str, ...] = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "sparse_",
)
_skip_lock = threading.Lock()
_skip_depth = 0  # open skip_init() contexts, all threads
_skip_originals: dict[str, Callable[..., Any]] = {}
_skip_local = threading.local()  # .record: list of skipped tensors of this thread's innermost context


def _skipping_fill(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def fill(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        record = getattr(_skip_local, "record", None)
        if record is None:  # another thread, or outside the context: the real initialisation
            return original(tensor, *args, **kwargs)
        record.append(tensor)
        return tensor

    return fill


@contextlib.contextmanager
def skip_init() -> Iterator[list[torch.Tensor]]:
    """Build modules without random initialisation, for when a checkpoint will overwrite every value.

    Inside the context, in the current thread, ``torch.nn.init``'s fill functions (``uniform_``,
    ``normal_``, ``kaiming_*``, ``xavier_*``, ``constant_``, ``zeros_``, ``ones_``, ...) return
    their tensor untouched, so torch's ``reset_parameters()`` and det's ``weight_init`` helpers do
    no work and parameters keep ``torch.empty``'s **arbitrary contents**. Everything else in the
    constructors runs as usual: buffers made with ``torch.tensor``/``torch.ones`` (pixel mean/std,
    cell anchors, FrozenBatchNorm2d statistics) have their normal values, and no random numbers are
    drawn, so the RNG state after a skip-init build is the one before it.

    Yields the list of tensors whose initialisation was skipped (filled as modules are built). A
    model built like this must get **every** parameter from a checkpoint before use;
    :class:`det.core.DefaultPredictor` checks that and rebuilds normally when a checkpoint falls
    short. Other threads initialise normally meanwhile. Usage::

        with skip_init() as skipped:
            model = build_model(cfg)
        DetectionCheckpointer(model).load(weights, assign=True)   # must cover every parameter
    """
    global _skip_depth
    with _skip_lock:
        if _skip_depth == 0:
            for name in _INIT_FILLS:
                original = getattr(torch.nn.init, name, None)
                if original is None:
                    continue
                _skip_originals[name] = original
                setattr(torch.nn.init, name, _skipping_fill(original))
        _skip_depth += 1
    outer = getattr(_skip_local, "record", None)
    record: list[torch.Tensor] = []
    _skip_local.record = record
    try:
        yield record
    finally:
        _skip_local.record = outer
        if outer is not None:
            outer.extend(record)
        with _skip_lock:
            _skip_depth -= 1
            if _skip_depth == 0:
                for name, original in _skip_originals.items():
                    setattr(torch.nn.init, name, original)
                _skip_originals.clear()


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
