"""Learning-rate schedules (detectron2's ``solver.lr_scheduler``) over fvcore's param schedulers.

A *param scheduler* (fvcore's ``ParamScheduler``) maps training progress ``where`` in [0, 1] to a
multiplier; ``WarmupParamScheduler`` puts a warmup in front of one, and ``LRMultiplier`` turns one
into a torch LR scheduler stepped once per iteration::

    sched = WarmupParamScheduler(MultiStepParamScheduler([1, 0.1], milestones=[800], num_updates=1000),
                                 warmup_factor=0.001, warmup_length=100 / 1000)
    scheduler = LRMultiplier(optimizer, multiplier=sched, max_iter=1000)

The param schedulers are fvcore's own classes (``fvcore.common.param_scheduler``), re-exported:
detectron2's LazyConfig files import them from fvcore by that name, so det uses the same objects
rather than look-alikes, and ``isinstance`` checks agree either way.

``WarmupMultiStepLR`` and ``WarmupCosineLR`` are detectron2's older torch LR schedulers (deprecated
there in favour of ``LRMultiplier``; kept for user scripts that build them directly).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence

import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    ConstantParamScheduler,
    CosineParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    ParamScheduler,
    PolynomialDecayParamScheduler,
    StepParamScheduler,
    StepWithFixedGammaParamScheduler,
)

__all__ = [
    "CompositeParamScheduler",
    "ConstantParamScheduler",
    "CosineParamScheduler",
    "ExponentialParamScheduler",
    "LRMultiplier",
    "LinearParamScheduler",
    "MultiStepParamScheduler",
    "ParamScheduler",
    "PolynomialDecayParamScheduler",
    "StepParamScheduler",
    "StepWithFixedGammaParamScheduler",
    "WarmupCosineLR",
    "WarmupMultiStepLR",
    "WarmupParamScheduler",
]

logger = logging.getLogger(__name__)


class WarmupParamScheduler(CompositeParamScheduler):
    """``scheduler`` preceded by a warmup over the first ``warmup_length`` (a fraction) of training.

    Linear warmup goes from ``warmup_factor * scheduler(0)`` to the value the scheduler has where
    warmup ends; constant warmup stays at ``warmup_factor * scheduler(0)``. With
    ``rescale_interval`` the scheduler sees its own progress over the rest of training (0 right
    after warmup, so warmup ends at ``scheduler(0)``) instead of the global one
    (``SOLVER.RESCALE_INTERVAL``)::

        WarmupParamScheduler(CosineParamScheduler(1, 0), warmup_factor=0.001, warmup_length=0.01)
    """

    def __init__(self, scheduler: ParamScheduler, warmup_factor: float, warmup_length: float,
                 warmup_method: str = "linear", rescale_interval: bool = False) -> None:
        end_value = scheduler(0.0) if rescale_interval else scheduler(warmup_length)
        start_value = warmup_factor * scheduler(0.0)
        if warmup_method == "constant":
            warmup: ParamScheduler = ConstantParamScheduler(start_value)
        elif warmup_method == "linear":
            warmup = LinearParamScheduler(start_value, end_value)
        else:
            raise ValueError(f"Unknown warmup method: {warmup_method!r} (expected 'linear' or 'constant')")
        super().__init__([warmup, scheduler], interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
                         lengths=[warmup_length, 1 - warmup_length])


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """A torch LR scheduler whose LR is ``base_lr * multiplier(iter / max_iter)``; step it once per
    iteration.

    Invariant: after ``k`` calls to ``step()`` (counting the one in the constructor as the 0th),
    every group's lr is ``base_lr * multiplier(k / max_iter)``. Its state is ``last_epoch`` and
    ``base_lrs`` only, so a resumed run continues exactly where it stopped::

        scheduler = LRMultiplier(optimizer, multiplier=CosineParamScheduler(1, 0), max_iter=1000)
        for _ in range(1000): train_step(); scheduler.step()
    """

    def __init__(self, optimizer: torch.optim.Optimizer, multiplier: ParamScheduler, max_iter: int,
                 last_iter: int = -1) -> None:
        if not isinstance(multiplier, ParamScheduler):
            raise ValueError(f"LRMultiplier(multiplier=) must be an instance of fvcore's ParamScheduler "
                             f"(fvcore.common.param_scheduler), got {multiplier!r}")
        if int(max_iter) <= 0:
            raise ValueError(f"LRMultiplier needs max_iter > 0, got {max_iter}")
        self._multiplier = multiplier
        self._max_iter = int(max_iter)
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict:
        # fvcore schedulers are stateless (rebuilt from the config); only the position matters.
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def get_lr(self) -> list[float | torch.Tensor]:
        where = self.last_epoch / self._max_iter
        try:
            multiplier = self._multiplier(where)
        except IndexError:
            # The hook steps once more after the last iteration (where = 1), a position no
            # iteration trains with; fvcore's step schedulers have no value there (detectron2
            # fails), so the last iteration's value is kept.
            if where < 1:
                raise
            multiplier = self._multiplier((self._max_iter - 1) / self._max_iter)
        return [float(base_lr) * multiplier for base_lr in self.base_lrs]


def _get_warmup_factor_at_iter(method: str, iter: int, warmup_iters: int, warmup_factor: float) -> float:
    """The LR factor at iteration ``iter`` of a warmup of ``warmup_iters`` iterations: 1 after it;
    ``warmup_factor`` throughout ("constant"), or rising linearly from ``warmup_factor`` at 0 to 1
    at ``warmup_iters`` ("linear")."""
    if iter >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    if method == "linear":
        alpha = iter / warmup_iters
        return warmup_factor * (1 - alpha) + alpha
    raise ValueError(f"Unknown warmup method: {method!r} (expected 'linear' or 'constant')")


class _WarmupLRScheduler(torch.optim.lr_scheduler.LRScheduler):
    """A torch LR scheduler whose lr at iteration ``i`` is ``base_lr * warmup(i) * factor(i)``
    (detectron2's warmup convention); subclasses define ``_factor``."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_factor: float, warmup_iters: int,
                 warmup_method: str, last_epoch: int) -> None:
        if warmup_method not in ("linear", "constant"):
            raise ValueError(f"Unknown warmup method: {warmup_method!r} (expected 'linear' or 'constant')")
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def _factor(self, iteration: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float | torch.Tensor]:
        warmup = _get_warmup_factor_at_iter(self.warmup_method, self.last_epoch, self.warmup_iters, self.warmup_factor)
        factor = self._factor(self.last_epoch)
        return [float(base_lr) * warmup * factor for base_lr in self.base_lrs]

    def _compute_values(self) -> list[float | torch.Tensor]:
        # the lr as a function of the iteration alone (what torch calls the closed form)
        return self.get_lr()


class WarmupMultiStepLR(_WarmupLRScheduler):
    """detectron2's step schedule with warmup as a torch LR scheduler stepped per iteration: the lr
    at iteration ``i`` is ``base_lr * warmup(i) * gamma ** (number of milestones <= i)``.

    Deprecated in detectron2 (as here): use ``LRMultiplier`` with ``WarmupParamScheduler`` and
    fvcore's ``MultiStepParamScheduler``::

        scheduler = WarmupMultiStepLR(optimizer, milestones=[60000, 80000], warmup_iters=1000)
    """

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 0.001, warmup_iters: int = 1000, warmup_method: str = "linear",
                 last_epoch: int = -1) -> None:
        logger.warning("WarmupMultiStepLR is deprecated: use LRMultiplier with an fvcore ParamScheduler instead")
        if list(milestones) != sorted(milestones):
            raise ValueError(f"WarmupMultiStepLR: milestones should be a list of increasing integers, got {milestones}")
        self.milestones = list(milestones)
        self.gamma = gamma
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method, last_epoch)

    def _factor(self, iteration: int) -> float:
        return self.gamma ** bisect.bisect_right(self.milestones, iteration)


class WarmupCosineLR(_WarmupLRScheduler):
    """detectron2's half-cosine schedule with warmup as a torch LR scheduler stepped per iteration:
    the lr at iteration ``i`` is ``base_lr * warmup(i) * 0.5 * (1 + cos(pi * i / max_iters))`` (the
    cosine multiplied by the warmup factor, as detectron2 defines it), 0 at ``max_iters``.

    Deprecated in detectron2 (as here): use ``LRMultiplier`` with ``WarmupParamScheduler`` and
    fvcore's ``CosineParamScheduler``::

        scheduler = WarmupCosineLR(optimizer, max_iters=90000, warmup_iters=1000)
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_iters: int, warmup_factor: float = 0.001,
                 warmup_iters: int = 1000, warmup_method: str = "linear", last_epoch: int = -1) -> None:
        logger.warning("WarmupCosineLR is deprecated: use LRMultiplier with an fvcore ParamScheduler instead")
        if int(max_iters) <= 0:
            raise ValueError(f"WarmupCosineLR needs max_iters > 0, got {max_iters}")
        self.max_iters = max_iters
        super().__init__(optimizer, warmup_factor, warmup_iters, warmup_method, last_epoch)

    def _factor(self, iteration: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * iteration / self.max_iters))
