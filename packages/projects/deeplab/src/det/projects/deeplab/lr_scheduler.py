"""DeepLab's poly learning-rate schedule (detectron2's ``WarmupPolyLR``)."""

from __future__ import annotations

import math

import torch

__all__ = ["WarmupPolyLR"]


def _warmup_factor_at_iter(method: str, iter: int, warmup_iters: int, warmup_factor: float) -> float:
    # the warm-up of every det schedule is det-engine's (as detectron2's DeepLab imports its
    # solver's); a schedule is only stepped in training, which det-engine runs
    try:
        from det.engine.train.lr_scheduler import _get_warmup_factor_at_iter
    except ImportError as e:
        raise ImportError("WarmupPolyLR's warm-up comes with det-engine, which trains the model: "
                          "pip install 'det-deeplab[train]'") from e
    return _get_warmup_factor_at_iter(method, iter, warmup_iters, warmup_factor)


class WarmupPolyLR(torch.optim.lr_scheduler.LRScheduler):
    """Poly schedule of :paper:`DeepLab`, stepped once per iteration ("epoch" means iteration)::

        lr(it) = base_lr * warmup(it) * (1 - it / max_iters) ** power

    and, when ``constant_ending > 0``, ``base_lr * constant_ending`` once warmup is over and the
    poly factor falls below it::

        sched = WarmupPolyLR(optimizer, max_iters=90000, warmup_iters=1000, power=0.9)
        for _ in range(max_iters): train_step(); sched.step()
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_iters: int,
        warmup_factor: float = 0.001,
        warmup_iters: int = 1000,
        warmup_method: str = "linear",
        last_epoch: int = -1,
        power: float = 0.9,
        constant_ending: float = 0.0,
    ) -> None:
        if max_iters <= 0:
            raise ValueError(f"WarmupPolyLR: max_iters (SOLVER.MAX_ITER) must be positive, got {max_iters}")
        if warmup_method not in ("linear", "constant"):
            raise ValueError(f"Unknown warmup method: {warmup_method!r} (SOLVER.WARMUP_METHOD must be 'linear' or "
                             "'constant')")
        self.max_iters = max_iters
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        self.power = power
        self.constant_ending = constant_ending
        super().__init__(optimizer, last_epoch)

    def _poly(self) -> float:
        # past max_iters the base would go negative (a complex power): hold at 0 instead
        return math.pow(max(0.0, 1.0 - self.last_epoch / self.max_iters), self.power)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        warmup = _warmup_factor_at_iter(self.warmup_method, self.last_epoch, self.warmup_iters, self.warmup_factor)
        poly = self._poly()
        if self.constant_ending > 0 and warmup == 1.0 and poly < self.constant_ending:
            return [base_lr * self.constant_ending for base_lr in self.base_lrs]
        return [base_lr * warmup * poly for base_lr in self.base_lrs]

    def _compute_values(self) -> list[float]:
        # detectron2's name for the same values
        return self.get_lr()
