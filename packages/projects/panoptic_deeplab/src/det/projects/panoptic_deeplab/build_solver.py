"""Panoptic-DeepLab's optimizer (its train_net's ``build_optimizer``): ``SOLVER.OPTIMIZER`` "SGD"
or "ADAM" over det-engine's default parameter groups, with gradient clipping per
``SOLVER.CLIP_GRADIENTS``. Needs det-engine: ``pip install 'det-panoptic-deeplab[train]'``."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["build_optimizer"]


def build_optimizer(cfg: Any, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer of ``SOLVER.OPTIMIZER`` ("SGD": momentum ``SOLVER.MOMENTUM``, Nesterov per
    ``SOLVER.NESTEROV``; "ADAM") at ``SOLVER.BASE_LR``, weight decay by ``SOLVER.WEIGHT_DECAY*``."""
    try:
        from det.engine.train.solver import get_default_optimizer_params, maybe_add_gradient_clipping
    except ImportError as e:
        raise ImportError("Panoptic-DeepLab's build_optimizer uses det-engine, which is not installed: "
                          "pip install 'det-panoptic-deeplab[train]'") from e
    params = get_default_optimizer_params(
        model, weight_decay=cfg.SOLVER.WEIGHT_DECAY, weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM)
    name = cfg.SOLVER.OPTIMIZER
    if name == "SGD":
        return maybe_add_gradient_clipping(cfg, torch.optim.SGD)(
            params, cfg.SOLVER.BASE_LR, momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV)
    if name == "ADAM":
        return maybe_add_gradient_clipping(cfg, torch.optim.Adam)(params, cfg.SOLVER.BASE_LR)
    raise NotImplementedError(f"no optimizer type {name!r} (SOLVER.OPTIMIZER must be 'SGD' or 'ADAM')")
