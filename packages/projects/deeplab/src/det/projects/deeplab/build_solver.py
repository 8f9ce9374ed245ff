"""Building DeepLab's LR schedule from a config (detectron2's ``deeplab.build_lr_scheduler``).

det-engine's ``build_lr_scheduler`` finds ``WarmupPolyLR`` through the component registry (kind
``LR_SCHEDULER``, declared by this plugin), so det's trainers use it with no code of the user's;
:func:`build_lr_scheduler` here is for detectron2 scripts that import it from the project.
"""

from __future__ import annotations

from typing import Any

import torch

from det.projects.deeplab.lr_scheduler import WarmupPolyLR

__all__ = ["build_lr_scheduler", "build_warmup_poly_lr"]


def build_warmup_poly_lr(cfg: Any, optimizer: torch.optim.Optimizer) -> WarmupPolyLR:
    """``WarmupPolyLR`` over ``SOLVER.MAX_ITER`` with the ``SOLVER.WARMUP_*`` and
    ``SOLVER.POLY_LR_*`` keys (the ``LR_SCHEDULER`` component ``WarmupPolyLR``)."""
    s = cfg.SOLVER
    return WarmupPolyLR(
        optimizer,
        s.MAX_ITER,
        warmup_factor=s.WARMUP_FACTOR,
        warmup_iters=s.WARMUP_ITERS,
        warmup_method=s.WARMUP_METHOD,
        power=s.POLY_LR_POWER,
        constant_ending=s.POLY_LR_CONSTANT_ENDING,
    )


def build_lr_scheduler(cfg: Any, optimizer: torch.optim.Optimizer) -> Any:
    """``SOLVER.LR_SCHEDULER_NAME == "WarmupPolyLR"``: :func:`build_warmup_poly_lr`; any other
    name: det-engine's ``build_lr_scheduler`` (``pip install 'det-deeplab[train]'``)."""
    if cfg.SOLVER.LR_SCHEDULER_NAME == "WarmupPolyLR":
        return build_warmup_poly_lr(cfg, optimizer)
    try:
        from det.engine.train.solver import build_lr_scheduler as build_det_lr_scheduler
    except ImportError as e:
        raise ImportError(
            f"SOLVER.LR_SCHEDULER_NAME={cfg.SOLVER.LR_SCHEDULER_NAME!r} is built by det-engine, which is not "
            "installed: pip install 'det-deeplab[train]'") from e
    return build_det_lr_scheduler(cfg, optimizer)
