"""Optimizer and LR scheduler from a config (detectron2's ``solver.build``).

    optimizer = build_optimizer(cfg, model)          # SGD: SOLVER.BASE_LR, MOMENTUM, WEIGHT_DECAY, ...
    scheduler = build_lr_scheduler(cfg, optimizer)   # warmup + SOLVER.LR_SCHEDULER_NAME
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

import torch

from det.engine.train.lr_scheduler import (
    CosineParamScheduler,
    LRMultiplier,
    MultiStepParamScheduler,
    ParamScheduler,
    StepWithFixedGammaParamScheduler,
    WarmupParamScheduler,
)

__all__ = [
    "GradientClipType",
    "build_lr_scheduler",
    "build_optimizer",
    "get_default_optimizer_params",
    "maybe_add_gradient_clipping",
    "reduce_param_groups",
]

logger = logging.getLogger(__name__)

_GradientClipper = Callable[[torch.Tensor | Iterable[torch.Tensor]], Any]


class GradientClipType(Enum):
    VALUE = "value"
    NORM = "norm"


def _create_gradient_clipper(clip_cfg: Any) -> _GradientClipper:
    """Per-parameter clipping by value or norm, per ``SOLVER.CLIP_GRADIENTS``."""
    clip_value = float(clip_cfg.CLIP_VALUE)
    norm_type = float(clip_cfg.NORM_TYPE)
    try:
        clip_type = GradientClipType(clip_cfg.CLIP_TYPE)
    except ValueError:
        raise ValueError(
            f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE must be 'value' or 'norm', got {clip_cfg.CLIP_TYPE!r}") from None
    if clip_type is GradientClipType.NORM:
        return lambda p: torch.nn.utils.clip_grad_norm_(p, clip_value, norm_type)
    return lambda p: torch.nn.utils.clip_grad_value_(p, clip_value)


def _generate_optimizer_class_with_gradient_clipping(
    optimizer: type[torch.optim.Optimizer],
    *,
    per_param_clipper: _GradientClipper | None = None,
    global_clipper: _GradientClipper | None = None,
) -> type[torch.optim.Optimizer]:
    """A subclass of ``optimizer`` whose ``step`` clips gradients first."""
    if per_param_clipper is not None and global_clipper is not None:
        raise ValueError("Not allowed to use both per-parameter clipping and global clipping")

    def optimizer_wgc_step(self, closure=None):
        if per_param_clipper is not None:
            for group in self.param_groups:
                for p in group["params"]:
                    per_param_clipper(p)
        elif global_clipper is not None:
            global_clipper(itertools.chain(*[g["params"] for g in self.param_groups]))
        return super(type(self), self).step(closure)

    return type(optimizer.__name__ + "WithGradientClip", (optimizer,), {"step": optimizer_wgc_step})


def maybe_add_gradient_clipping(cfg: Any, optimizer: Any) -> Any:
    """When ``SOLVER.CLIP_GRADIENTS.ENABLED``: an optimizer class (or, given an instance, that
    instance re-classed) whose ``step`` clips each parameter's gradient first. Otherwise
    ``optimizer`` unchanged."""
    if not cfg.SOLVER.CLIP_GRADIENTS.ENABLED:
        return optimizer
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer_type = type(optimizer)
    elif isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        optimizer_type = optimizer
    else:
        raise TypeError(f"expected a torch.optim.Optimizer class or instance, got {optimizer!r}")
    grad_clipper = _create_gradient_clipper(cfg.SOLVER.CLIP_GRADIENTS)
    clipped = _generate_optimizer_class_with_gradient_clipping(optimizer_type, per_param_clipper=grad_clipper)
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer.__class__ = clipped
        return optimizer
    return clipped


def build_optimizer(cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD over ``model``'s trainable parameters with ``SOLVER.BASE_LR``, ``MOMENTUM``,
    ``NESTEROV``, ``WEIGHT_DECAY`` (``WEIGHT_DECAY_NORM`` for norm layers, ``BIAS_LR_FACTOR`` and
    ``WEIGHT_DECAY_BIAS`` for biases), gradient clipping per ``SOLVER.CLIP_GRADIENTS``."""
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    if not params:
        raise ValueError("build_optimizer: the model has no trainable parameters (all requires_grad=False?)")
    return maybe_add_gradient_clipping(cfg, torch.optim.SGD)(
        params,
        lr=cfg.SOLVER.BASE_LR,
        momentum=cfg.SOLVER.MOMENTUM,
        nesterov=cfg.SOLVER.NESTEROV,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
    )


_NORM_MODULE_TYPES = (
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.BatchNorm3d,
    torch.nn.SyncBatchNorm,
    torch.nn.GroupNorm,
    torch.nn.InstanceNorm1d,
    torch.nn.InstanceNorm2d,
    torch.nn.InstanceNorm3d,
    torch.nn.LayerNorm,
    torch.nn.LocalResponseNorm,
)


def _is_norm_module(module: torch.nn.Module) -> bool:
    # det's FrozenBatchNorm2d has no parameters; det's channels-first LayerNorm is not a torch one.
    return isinstance(module, _NORM_MODULE_TYPES) or type(module).__name__ in ("LayerNorm", "NaiveSyncBatchNorm")


def get_default_optimizer_params(
    model: torch.nn.Module,
    base_lr: float | None = None,
    weight_decay: float | None = None,
    weight_decay_norm: float | None = None,
    bias_lr_factor: float | None = 1.0,
    weight_decay_bias: float | None = None,
    lr_factor_func: Callable[[str], float] | None = None,
    overrides: dict[str, dict[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Parameter groups for an optimizer: every trainable parameter once, with per-group
    overrides for norm-layer parameters (``weight_decay_norm``), biases (``bias_lr_factor``,
    ``weight_decay_bias``), a learning-rate factor by full parameter name (``lr_factor_func``,
    e.g. ViTDet's layer-wise decay ``partial(get_vit_lr_decay_rate, num_layers=12,
    lr_decay_rate=0.7)``; needs ``base_lr``) and parameters by name
    (``overrides={"embedding": {"lr": 0.01}}``). Groups with equal hyper-parameters are merged.

        torch.optim.SGD(get_default_optimizer_params(model, weight_decay_norm=0.0),
                        lr=0.01, weight_decay=1e-4, momentum=0.9)
    """
    overrides = dict(overrides or {})
    defaults: dict[str, float] = {}
    if base_lr is not None:
        defaults["lr"] = base_lr
    if weight_decay is not None:
        defaults["weight_decay"] = weight_decay
    bias_overrides: dict[str, float] = {}
    if bias_lr_factor is not None and bias_lr_factor != 1.0:
        if base_lr is None:
            raise ValueError("bias_lr_factor requires base_lr")
        bias_overrides["lr"] = base_lr * bias_lr_factor
    if weight_decay_bias is not None:
        bias_overrides["weight_decay"] = weight_decay_bias
    if bias_overrides:
        if "bias" in overrides:
            raise ValueError("Conflicting overrides for 'bias'")
        overrides["bias"] = bias_overrides
    if lr_factor_func is not None and base_lr is None:
        raise ValueError("lr_factor_func requires base_lr")

    params: list[dict[str, Any]] = []
    memo: set[torch.nn.Parameter] = set()
    for module_name, module in model.named_modules():
        for module_param_name, value in module.named_parameters(recurse=False):
            if not value.requires_grad or value in memo:
                continue  # frozen, or shared with a module seen before
            memo.add(value)
            hyperparams = copy.copy(defaults)
            if _is_norm_module(module) and weight_decay_norm is not None:
                hyperparams["weight_decay"] = weight_decay_norm
            if lr_factor_func is not None:
                hyperparams["lr"] *= lr_factor_func(f"{module_name}.{module_param_name}")
            hyperparams.update(overrides.get(module_param_name, {}))
            params.append({"params": [value], **hyperparams})
    return reduce_param_groups(params)


def _expand_param_groups(params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # One entry per parameter; later items override earlier ones.
    ret: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
    for item in params:
        if "params" not in item:
            raise ValueError(f"a parameter group needs a 'params' entry, got keys {sorted(item)}")
        cur_params = {x: y for x, y in item.items() if x != "params"}
        for param in item["params"]:
            ret[param].update({"params": [param], **cur_params})
    return list(ret.values())


def reduce_param_groups(params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge parameter groups with identical hyper-parameters (few groups keep torch's
    multi-tensor optimizers fast), in first-seen order."""
    groups: defaultdict[tuple, list[torch.nn.Parameter]] = defaultdict(list)
    for item in _expand_param_groups(params):
        key = tuple((x, y) for x, y in item.items() if x != "params")
        groups[key].extend(item["params"])
    return [{**dict(key), "params": values} for key, values in groups.items()]


def build_lr_scheduler(cfg: Any, optimizer: torch.optim.Optimizer) -> LRMultiplier:
    """``SOLVER.LR_SCHEDULER_NAME``: ``WarmupMultiStepLR`` (``STEPS``, ``GAMMA``),
    ``WarmupCosineLR`` (to ``BASE_LR_END``) or ``WarmupStepWithFixedGammaLR`` (``NUM_DECAYS``
    equally spaced decays by ``GAMMA``), after a ``WARMUP_METHOD`` warmup of ``WARMUP_ITERS``
    iterations from ``WARMUP_FACTOR`` (``RESCALE_INTERVAL``: the schedule restarts after warmup);
    over ``MAX_ITER`` iterations. Any other name is an ``LR_SCHEDULER`` component of a plugin
    (e.g. det-deeplab's ``WarmupPolyLR``), called with ``(cfg, optimizer)``."""
    name = cfg.SOLVER.LR_SCHEDULER_NAME
    max_iter = int(cfg.SOLVER.MAX_ITER)
    if max_iter <= 0:
        raise ValueError(f"SOLVER.MAX_ITER must be positive, got {max_iter}")
    sched: ParamScheduler
    if name == "WarmupMultiStepLR":
        steps = [x for x in cfg.SOLVER.STEPS if x <= max_iter]
        if len(steps) != len(cfg.SOLVER.STEPS):
            logger.warning("SOLVER.STEPS contains values larger than SOLVER.MAX_ITER. These values will be ignored.")
        sched = MultiStepParamScheduler(
            values=[cfg.SOLVER.GAMMA**k for k in range(len(steps) + 1)],
            milestones=steps,
            num_updates=max_iter,
        ) if not steps or steps[-1] < max_iter else MultiStepParamScheduler(
            values=[cfg.SOLVER.GAMMA**k for k in range(len(steps))], milestones=steps[:-1], num_updates=max_iter)
    elif name == "WarmupCosineLR":
        end_value = cfg.SOLVER.BASE_LR_END / cfg.SOLVER.BASE_LR
        if not 0.0 <= end_value <= 1.0:
            raise ValueError(
                f"SOLVER.BASE_LR_END ({cfg.SOLVER.BASE_LR_END}) must be between 0 and SOLVER.BASE_LR ({cfg.SOLVER.BASE_LR})")
        sched = CosineParamScheduler(1, end_value)
    elif name == "WarmupStepWithFixedGammaLR":
        if not (isinstance(cfg.SOLVER.NUM_DECAYS, int) and cfg.SOLVER.NUM_DECAYS > 0):
            raise ValueError(f"SOLVER.NUM_DECAYS must be a positive integer, got {cfg.SOLVER.NUM_DECAYS!r}")
        if not cfg.SOLVER.GAMMA > 0:
            raise ValueError(f"SOLVER.GAMMA must be positive, got {cfg.SOLVER.GAMMA!r}")
        sched = StepWithFixedGammaParamScheduler(
            base_value=1.0, gamma=cfg.SOLVER.GAMMA, num_decays=cfg.SOLVER.NUM_DECAYS, num_updates=max_iter)
    else:
        return _build_plugin_lr_scheduler(cfg, optimizer, name)

    sched = WarmupParamScheduler(
        sched,
        cfg.SOLVER.WARMUP_FACTOR,
        min(cfg.SOLVER.WARMUP_ITERS / max_iter, 1.0),
        cfg.SOLVER.WARMUP_METHOD,
        cfg.SOLVER.RESCALE_INTERVAL,
    )
    return LRMultiplier(optimizer, multiplier=sched, max_iter=max_iter)


_BUILTIN_LR_SCHEDULERS = ("WarmupMultiStepLR", "WarmupCosineLR", "WarmupStepWithFixedGammaLR")


def _build_plugin_lr_scheduler(cfg: Any, optimizer: torch.optim.Optimizer, name: str) -> Any:
    """An installed plugin's schedule: the component (``LR_SCHEDULER``, ``name``), a callable
    ``(cfg, optimizer) -> scheduler`` (det's registry: found by installing, imported only now)."""
    from det.core.registry import ComponentNotFoundError, get_component

    try:
        builder = get_component("LR_SCHEDULER", name)
    except ComponentNotFoundError as e:
        raise ValueError(
            f"Unknown LR scheduler: {name} (SOLVER.LR_SCHEDULER_NAME; built in: "
            f"{', '.join(repr(n) for n in _BUILTIN_LR_SCHEDULERS)}; plugins add others). {e}") from None
    return builder(cfg, optimizer)
