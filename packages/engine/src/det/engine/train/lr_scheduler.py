"""Learning-rate schedules (detectron2's ``solver.lr_scheduler`` and the fvcore param schedulers
it builds on).

A *param scheduler* maps training progress ``where`` in [0, 1] to a multiplier; ``LRMultiplier``
turns one into a torch LR scheduler stepped once per iteration::

    sched = WarmupParamScheduler(MultiStepParamScheduler([1, 0.1], milestones=[800], num_updates=1000),
                                 warmup_factor=0.001, warmup_length=100 / 1000)
    scheduler = LRMultiplier(optimizer, multiplier=sched, max_iter=1000)
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

import torch

__all__ = [
    "CompositeParamScheduler",
    "ConstantParamScheduler",
    "CosineParamScheduler",
    "LRMultiplier",
    "LinearParamScheduler",
    "MultiStepParamScheduler",
    "ParamScheduler",
    "StepParamScheduler",
    "StepWithFixedGammaParamScheduler",
    "WarmupParamScheduler",
]


class ParamScheduler:
    """A value as a function of training progress ``where`` in [0, 1]: ``sched(0.5)``."""

    WHERE_EPSILON = 1e-6

    def __call__(self, where: float) -> float:
        raise NotImplementedError


def _check_where(where: float) -> None:
    if not 0 <= where <= 1:
        raise ValueError(f"param scheduler: 'where' must be in [0, 1], got {where}")


class ConstantParamScheduler(ParamScheduler):
    """Always ``value``: ``ConstantParamScheduler(0.1)(0.7) == 0.1``."""

    def __init__(self, value: float) -> None:
        self._value = value

    def __call__(self, where: float) -> float:
        _check_where(where)
        return self._value


class LinearParamScheduler(ParamScheduler):
    """Linear from ``start_value`` (where=0) to ``end_value`` (where=1)."""

    def __init__(self, start_value: float, end_value: float) -> None:
        self._start_value = start_value
        self._end_value = end_value

    def __call__(self, where: float) -> float:
        return self._end_value * where + self._start_value * (1 - where)


class CosineParamScheduler(ParamScheduler):
    """Half a cosine from ``start_value`` (where=0) down to ``end_value`` (where=1)."""

    def __init__(self, start_value: float, end_value: float) -> None:
        self._start_value = start_value
        self._end_value = end_value

    def __call__(self, where: float) -> float:
        return self._end_value + 0.5 * (self._start_value - self._end_value) * (1 + math.cos(math.pi * where))


class MultiStepParamScheduler(ParamScheduler):
    """``values[i]`` between ``milestones[i-1]`` and ``milestones[i]`` (in updates out of ``num_updates``).

        MultiStepParamScheduler([1, 0.1, 0.01], num_updates=90, milestones=[60, 80])(61 / 90) == 0.1
    """

    def __init__(self, values: Sequence[float], num_updates: int | None = None,
                 milestones: Sequence[int] | None = None) -> None:
        if num_updates is None and milestones is None:
            raise ValueError("MultiStepParamScheduler needs num_updates, milestones or both")
        if milestones is None:
            # evenly spaced steps, like fvcore
            assert num_updates is not None
            milestones = list(range(0, num_updates, num_updates // len(values)))[1:]
        else:
            milestones = list(milestones)
            if len(values) != len(milestones) + 1:
                raise ValueError(
                    f"MultiStepParamScheduler needs one more value than milestones, got {len(values)} values "
                    f"and {len(milestones)} milestones")
            if any(b <= a for a, b in itertools.pairwise(milestones)):
                raise ValueError(f"milestones must be strictly increasing, got {milestones}")
        if num_updates is None:
            num_updates = milestones[-1] + 1 if milestones else 1
        if milestones and milestones[-1] >= num_updates:
            raise ValueError(f"the last milestone ({milestones[-1]}) must be below num_updates ({num_updates})")
        self._param_schedule = list(values)
        self._num_updates = num_updates
        self._milestones = milestones

    def __call__(self, where: float) -> float:
        _check_where(where)
        epoch_num = int((where + self.WHERE_EPSILON) * self._num_updates)
        return self._param_schedule[bisect.bisect_right(self._milestones, epoch_num)]


class StepParamScheduler(ParamScheduler):
    """``values`` one after the other, each over an equal share of training.

        StepParamScheduler(num_updates=120, values=[0.1, 0.01, 0.001, 0.0001])(45 / 120) == 0.01
    """

    def __init__(self, num_updates: int | float, values: Sequence[float]) -> None:
        if num_updates <= 0:
            raise ValueError(f"StepParamScheduler: num_updates must be positive, got {num_updates}")
        if not values:
            raise ValueError("StepParamScheduler needs at least one value")
        self._param_schedule = list(values)

    def __call__(self, where: float) -> float:
        _check_where(where)
        # where == 1 (the step after the last iteration) keeps the last value
        index = min(int((where + self.WHERE_EPSILON) * len(self._param_schedule)), len(self._param_schedule) - 1)
        return self._param_schedule[index]


class StepWithFixedGammaParamScheduler(StepParamScheduler):
    """``base_value`` multiplied by ``gamma`` ``num_decays`` times, at equally spaced points.

        StepWithFixedGammaParamScheduler(base_value=1, num_decays=3, gamma=0.1, num_updates=120)
        # 1 for updates 0-29, 0.1 for 30-59, 0.01 for 60-89, 0.001 for 90-119
    """

    def __init__(self, base_value: float, num_decays: int, gamma: float, num_updates: int) -> None:
        if not (base_value > 0 and gamma > 0):
            raise ValueError(
                f"StepWithFixedGammaParamScheduler: base_value and gamma must be positive, got {base_value}, {gamma}")
        if not (isinstance(num_decays, int) and num_decays > 0 and isinstance(num_updates, int) and num_updates > 0):
            raise ValueError(
                "StepWithFixedGammaParamScheduler: num_decays and num_updates must be positive integers, "
                f"got {num_decays!r}, {num_updates!r} (SOLVER.NUM_DECAYS, SOLVER.MAX_ITER)")
        super().__init__(num_updates, [base_value * gamma**k for k in range(num_decays + 1)])


class CompositeParamScheduler(ParamScheduler):
    """Several schedulers one after the other, each over a fraction ``lengths[i]`` of training.

    ``interval_scaling[i]`` is ``"rescaled"`` (the scheduler sees its own progress, 0..1 over
    its interval) or ``"fixed"`` (it sees the global ``where``).
    """

    def __init__(self, schedulers: Sequence[ParamScheduler], lengths: Sequence[float],
                 interval_scaling: Sequence[str]) -> None:
        if not (len(schedulers) == len(lengths) == len(interval_scaling)):
            raise ValueError("CompositeParamScheduler: schedulers, lengths and interval_scaling differ in length")
        if not math.isclose(sum(lengths), 1.0, abs_tol=1e-6):
            raise ValueError(f"CompositeParamScheduler: lengths must sum to 1, got {list(lengths)}")
        for s in interval_scaling:
            if s not in ("rescaled", "fixed"):
                raise ValueError(f"interval_scaling must be 'rescaled' or 'fixed', got {s!r}")
        self._schedulers = list(schedulers)
        self._lengths = list(lengths)
        self._interval_scaling = list(interval_scaling)

    def __call__(self, where: float) -> float:
        _check_where(where)
        i, start = 0, 0.0
        # the interval that holds `where` (the last one also takes where == 1)
        while i < len(self._schedulers) - 1 and where + self.WHERE_EPSILON > start + self._lengths[i]:
            start += self._lengths[i]
            i += 1
        scheduler = self._schedulers[i]
        if self._interval_scaling[i] == "rescaled":
            length = self._lengths[i]
            where = min(max((where - start) / length, 0.0), 1.0) if length > 0 else 0.0
        return scheduler(where)


class WarmupParamScheduler(CompositeParamScheduler):
    """``scheduler`` preceded by a warmup over the first ``warmup_length`` of training.

    Linear warmup goes from ``warmup_factor * scheduler(0)`` to ``scheduler(warmup_length)``;
    constant warmup stays at ``warmup_factor * scheduler(0)``. With ``rescale_interval`` the
    scheduler sees its own progress over the rest of training (0 right after warmup) instead of
    the global one (``SOLVER.RESCALE_INTERVAL``).
    """

    def __init__(self, scheduler: ParamScheduler, warmup_factor: float, warmup_length: float,
                 warmup_method: str = "linear", rescale_interval: bool = False) -> None:
        end_value = scheduler(warmup_length)
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
            raise TypeError(f"LRMultiplier(multiplier=) must be a ParamScheduler, got {type(multiplier).__name__}")
        if int(max_iter) <= 0:
            raise ValueError(f"LRMultiplier needs max_iter > 0, got {max_iter}")
        self._multiplier = multiplier
        self._max_iter = int(max_iter)
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict:
        # The multiplier is rebuilt from the config; only the position matters.
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def get_lr(self) -> list[float | torch.Tensor]:
        where = min(max(self.last_epoch / self._max_iter, 0.0), 1.0)
        multiplier = self._multiplier(where)
        return [float(base_lr) * multiplier for base_lr in self.base_lrs]
