"""Training to a time budget: the number of iterations, the LR schedule and the CPU thread count
are decided from the speed measured in the first iterations, not fixed in advance.

    budget = TrainingBudget(cfg, deadline=time.perf_counter() + 540, reserve_seconds=30,
                            thread_candidates=(2, 1))
    trainer.register_hooks([budget])     # anywhere in the hook list
    trainer.train()                      # ends in time; budget.summary() says what was decided

A *budgeted schedule* is the config's schedule expressed in fractions of the run: ``SOLVER.STEPS``
at 75 % and 92 % of ``SOLVER.MAX_ITER`` stay at 75 % and 92 % of the iterations that fit, the
warm-up keeps its length in iterations (:func:`fit_schedule`). Because the LR is constant between
the warm-up and the first step, the iteration count can be re-fitted while training runs — the
hook does so every ``refit_period`` iterations from the recent speed, so a machine that gets
busier (or quieter) half-way still ends on time — without changing any LR already used: a step
that has happened stays where it happened.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from det.engine.train.train_loop import HookBase

__all__ = ["TrainingBudget", "fit_schedule", "thread_candidates"]

logger = logging.getLogger(__name__)


def fit_schedule(cfg: Any, max_iter: int, *, step_fractions: Sequence[float] | None = None,
                 fixed_steps: Sequence[int] = ()) -> Any:
    """Set ``cfg.SOLVER.MAX_ITER = max_iter`` and move the schedule with it (``cfg`` is changed
    in place and returned; it must not be frozen).

    ``SOLVER.STEPS`` become ``step_fractions`` (default: the config's own ``STEPS / MAX_ITER``)
    of ``max_iter``; the first ``len(fixed_steps)`` steps are ``fixed_steps`` instead (steps that
    already happened in a running schedule). The warm-up keeps ``SOLVER.WARMUP_ITERS`` unless that
    is more than a tenth of the run::

        cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS = 676, (507, 622)
        fit_schedule(cfg, 1000).SOLVER.STEPS      # (750, 920)
    """
    if int(max_iter) <= 0:
        raise ValueError(f"max_iter must be a positive number of iterations, got {max_iter}")
    max_iter = int(max_iter)
    if step_fractions is None:
        old = int(cfg.SOLVER.MAX_ITER)
        step_fractions = [s / old for s in cfg.SOLVER.STEPS]
    steps = list(fixed_steps)
    for fraction in list(step_fractions)[len(steps):]:
        step = round(fraction * max_iter)
        # strictly increasing and inside the run (a step at or past MAX_ITER would never happen)
        step = max(step, steps[-1] + 1 if steps else 1)
        steps.append(step)
    cfg.SOLVER.STEPS = tuple(s for s in steps if s < max_iter)
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.WARMUP_ITERS = min(int(cfg.SOLVER.WARMUP_ITERS), max(max_iter // 10, 1))
    return cfg


def thread_candidates(default: int | None = None) -> tuple[int, ...]:
    """The thread counts worth measuring: torch's default (one per core), half of it on 4+ cores,
    and 1. ``(1,)`` on a single core."""
    import torch

    n = int(default or torch.get_num_threads())
    return tuple(sorted({n, max(n // 2, 1), 1}, reverse=True)) if n >= 4 else tuple(sorted({n, 1}, reverse=True))


class TrainingBudget(HookBase):
    """A hook that makes training end by ``deadline`` (a ``clock()`` time) with ``reserve_seconds``
    left for what follows (evaluation, pictures).

    Invariant: it only moves ``trainer.max_iter`` to iterations not yet begun (the earliest end
    is after the next iteration, so every hook sees the final value in the last iteration), and
    it rebuilds the trainer's LR scheduler (``trainer.scheduler``, which the ``LRScheduler`` hook
    steps) with :func:`fit_schedule` so that the schedule always spans ``trainer.max_iter``. Its
    place among the hooks does not matter; ``trainer.register_hooks([budget])`` will do.

    1. The first ``skip_iters`` iterations are not timed (lazy initialisation makes them slow).
    2. With two or more ``thread_candidates``, the next iterations alternate between them,
       ``probe_iters`` each, and the count with the lowest median time is kept: the thread count
       is measured, never assumed (on a busy machine one thread can beat two by 10x, on an idle
       one two threads are ~1.7x faster). A count whose fastest iteration is more than twice as
       slow as the best is dropped at once; the untimed first iterations use the fewest threads.
    3. Then every ``refit_period`` iterations: seconds per iteration = the median of the last
       ``window`` iterations, iterations = what fits before ``deadline - reserve``. The new count
       is applied when it differs by more than 1 % (at least 2 iterations).
    4. When the recent speed (``window`` iterations after the choice at the earliest) drifts more
       than ``reprobe_drift`` (0.4 = 40 %) away from the speed at the thread choice (another
       program started or stopped), the threads are measured again, at most ``max_reprobes`` times.

    ``reserve_seconds`` may be a callable; it is called once, at the first fit (it may measure
    something, e.g. inference on a few images). ``min_iter`` is a floor for the fitted count.
    ``deadline=None`` measures the thread count only and leaves ``max_iter`` alone.
    """

    def __init__(
        self,
        cfg: Any,
        deadline: float | None,
        *,
        reserve_seconds: float | Callable[[], float] = 0.0,
        thread_candidates: Sequence[int] = (),
        skip_iters: int = 2,
        probe_iters: int = 3,
        refit_period: int = 10,
        window: int = 20,
        reprobe_drift: float = 0.4,
        max_reprobes: int = 2,
        min_iter: int = 1,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] | None = None,
    ) -> None:
        self._cfg = cfg.clone()
        self._cfg.defrost()
        ref_max = int(cfg.SOLVER.MAX_ITER)
        self._step_fractions = [s / ref_max for s in cfg.SOLVER.STEPS]
        self.deadline = None if deadline is None else float(deadline)
        self._reserve = reserve_seconds
        self.reserve: float | None = None
        self._candidates = tuple(dict.fromkeys(int(n) for n in thread_candidates))
        if any(n <= 0 for n in self._candidates):
            raise ValueError(f"thread counts must be positive, got {thread_candidates}")
        self._skip = max(int(skip_iters), 0)
        self._probe_iters = max(int(probe_iters), 1)
        self._refit_period = max(int(refit_period), 1)
        self._window = max(int(window), 1)
        self._drift = float(reprobe_drift)
        self._max_reprobes = int(max_reprobes)
        self._min_iter = max(int(min_iter), 1)
        self._clock = clock
        self._set_threads = set_threads or _torch_set_threads
        self._plan: list[int] = []  # thread counts of the probe iterations still to run
        self._probe_times: dict[int, list[float]] = {}
        self._step_start = 0.0
        self._current_threads = 0
        self.threads: int | None = None  # the chosen count (None: not chosen yet, or no candidates)
        self.probes: list[dict[str, Any]] = []  # one per thread measurement: {iter, median seconds by count}
        self.fits: list[dict[str, Any]] = []  # one per applied iteration count
        self.times: list[tuple[int, float, int]] = []  # (iteration, seconds, threads) of timed iterations
        self._speed_at_choice: float | None = None
        self._choice_iter = 0
        self._last_fit_iter = -1

    # -- hook interface ------------------------------------------------------------------------

    def before_train(self) -> None:
        self._current_threads = _torch_get_threads()
        if len(self._candidates) == 1:
            self._use_threads(self._candidates[0], force=True)
            self.threads = self._candidates[0]
        elif self._candidates:
            # the untimed first iterations run on the fewest threads: on a busy machine many
            # threads can be 10x slower, one thread never more than ~2x
            self._use_threads(min(self._candidates), force=True)

    def before_step(self) -> None:
        it = self.trainer.iter
        if self._plan and it >= self.trainer.start_iter + self._skip:
            self._use_threads(self._plan[0])
        self._step_start = self._clock()

    def after_step(self) -> None:
        seconds = self._clock() - self._step_start
        it = self.trainer.iter
        done = it + 1 - self.trainer.start_iter
        if done <= self._skip:
            if done == self._skip or self._skip == 0:
                self._start_probe(it)
            return
        self.times.append((it, seconds, self._current_threads))
        if self._plan:
            self._probe_times.setdefault(self._plan[0], []).append(seconds)
        if self.deadline is not None and self._out_of_time():
            if self._plan:  # out of time while measuring threads: keep the best count seen
                self._plan = []
                self._use_threads(self._best_so_far())
            if int(self.trainer.max_iter) > it + 2:
                self.apply(it + 2)
                self.fits.append({"iteration": it, "max_iter": it + 2, "seconds_per_iteration": round(seconds, 4),
                                  "seconds_left": round(self.seconds_left(), 1), "threads": self._current_threads})
                logger.info("Time budget: no time left at iteration %d; training ends after the next one", it)
            return
        if self._plan:
            self._plan.pop(0)
            self._drop_hopeless()
            if not self._plan:
                self._choose_threads(it)
            return
        if self.threads is None and len(self._candidates) > 1:
            self._start_probe(it)  # skip_iters == 0: the first iteration starts the probe
            return
        recent = self._recent_speed()
        if recent is None:
            return
        if (self._speed_at_choice is not None and len(self._candidates) > 1
                and len(self.probes) <= self._max_reprobes and it - self._choice_iter >= self._window
                and abs(recent / self._speed_at_choice - 1.0) > self._drift):
            logger.info("Training speed moved from %.3f to %.3f s/iteration: measuring the thread count again",
                        self._speed_at_choice, recent)
            self._start_probe(it)
            return
        if self.deadline is not None and (self._last_fit_iter < 0 or it - self._last_fit_iter >= self._refit_period):
            self._fit(it, recent)

    # -- measuring the thread count --------------------------------------------------------------

    def _start_probe(self, it: int) -> None:
        if len(self._candidates) < 2:
            return
        self._plan = [n for _ in range(self._probe_iters) for n in self._candidates]
        self._probe_times = {}

    def _out_of_time(self) -> bool:
        # The reserve is measured with the chosen thread count, so not while threads are measured:
        # until then only the deadline itself counts.
        if self.reserve is None and self._plan:
            return self._clock() >= self.deadline
        return self.seconds_left() <= 0

    def _best_so_far(self) -> int:
        """The thread count with the lowest median time so far; the fewest when none was timed."""
        timed = {n: statistics.median(ts) for n, ts in self._probe_times.items() if ts}
        return min(timed, key=lambda n: (timed[n], -n)) if timed else min(self._candidates)

    def after_train(self) -> None:
        # what follows training (evaluation) runs on the chosen count, or the best one measured
        if self._candidates and self.threads is None:
            self._use_threads(self._best_so_far())

    def _drop_hopeless(self) -> None:
        """Stop measuring a thread count whose fastest iteration took more than twice the best
        count's: one such iteration on a busy machine costs as much as ten good ones."""
        if len(self._probe_times) < 2:
            return
        best = min(min(ts) for ts in self._probe_times.values())
        hopeless = {n for n, ts in self._probe_times.items() if min(ts) > 2.0 * best}
        self._plan = [n for n in self._plan if n not in hopeless]

    def _choose_threads(self, it: int) -> None:
        medians = {n: statistics.median(ts) for n, ts in self._probe_times.items()}
        best = min(medians, key=lambda n: (medians[n], -n))
        self._use_threads(best)
        self.threads = best
        self._speed_at_choice = medians[best]
        self._choice_iter = it
        self.probes.append({"iteration": it, "seconds_per_iteration": {str(n): round(s, 4) for n, s in medians.items()},
                            "chosen": best})
        logger.info("Threads: %s s/iteration measured -> %d threads",
                    ", ".join(f"{n}: {s:.3f}" for n, s in medians.items()), best)
        if self.deadline is not None:
            self._fit(it, medians[best])

    def _use_threads(self, n: int, force: bool = False) -> None:
        # force: the first setting goes through even if torch already has that count (a custom
        # ``set_threads`` may drive something other than torch's count)
        if force or n != self._current_threads:
            self._set_threads(n)
            self._current_threads = n

    # -- fitting the iterations --------------------------------------------------------------

    def _recent_speed(self) -> float | None:
        chosen = self.threads if self.threads is not None else self._current_threads
        recent = [s for _, s, n in self.times if n == chosen][-self._window:]
        return statistics.median(recent) if recent else None

    def seconds_left(self) -> float:
        """Seconds of training left before the deadline, the reserve kept back."""
        if self.deadline is None:
            return math.inf
        if self.reserve is None:
            self.reserve = float(self._reserve() if callable(self._reserve) else self._reserve)
        return self.deadline - self._clock() - self.reserve

    def _fit(self, it: int, seconds_per_iter: float) -> None:
        self._last_fit_iter = it
        left = self.seconds_left()
        fitted = it + 1 + max(math.floor(left / max(seconds_per_iter, 1e-9)), 0)
        fitted = max(fitted, self._min_iter, it + 2)
        current = int(self.trainer.max_iter)
        if self.fits and abs(fitted - current) <= max(2, 0.01 * current):
            return
        self.apply(fitted)
        self.fits.append({"iteration": it, "max_iter": fitted, "seconds_per_iteration": round(seconds_per_iter, 4),
                          "seconds_left": round(left, 1), "threads": self._current_threads})
        logger.info("Time budget: %.0f s left at %.3f s/iteration -> %d iterations in all (steps %s)",
                    left, seconds_per_iter, fitted, list(self._cfg.SOLVER.STEPS))

    def apply(self, max_iter: int) -> None:
        """Make the run end after ``max_iter`` iterations (at the earliest after the next one):
        ``trainer.max_iter`` and a rebuilt LR scheduler (steps already taken stay where they were)
        at the old one's position.

        Called from ``after_step``: the iteration after this one is the earliest last one, so every
        hook sees the final ``max_iter`` during the last iteration whatever its place in the list
        (the checkpointer saves ``model_final`` there); the new scheduler takes the old one's
        position, so it does not matter whether the LRScheduler hook has stepped yet."""
        from det.engine.train.solver import build_lr_scheduler

        trainer = self.trainer
        max_iter = max(int(max_iter), trainer.iter + 2)
        position = int(trainer.scheduler.last_epoch)
        passed = [s for s in self._cfg.SOLVER.STEPS if s <= position] if self.fits else []
        fit_schedule(self._cfg, max_iter, step_fractions=self._step_fractions, fixed_steps=passed)
        scheduler = build_lr_scheduler(self._cfg, trainer.optimizer)
        scheduler.last_epoch = position
        lrs = scheduler.get_lr()
        for group, lr in zip(trainer.optimizer.param_groups, lrs):
            group["lr"] = lr
        scheduler._last_lr = list(lrs)
        trainer.scheduler = scheduler
        trainer.max_iter = max_iter

    # -- report ------------------------------------------------------------------------------

    def fitted_schedule(self) -> dict[str, Any]:
        """The schedule of the last fit: ``{"MAX_ITER", "STEPS", "WARMUP_ITERS"}`` (the config's
        own before the first fit)."""
        solver = self._cfg.SOLVER
        return {"MAX_ITER": int(solver.MAX_ITER), "STEPS": tuple(int(s) for s in solver.STEPS),
                "WARMUP_ITERS": int(solver.WARMUP_ITERS)}

    def summary(self) -> dict[str, Any]:
        """What was measured and decided: thread probes, fits, the median seconds per iteration
        with the chosen thread count and the iteration count."""
        chosen = self.threads if self.threads is not None else self._current_threads
        timed = [s for _, s, n in self.times if n == chosen]
        return {
            "threads": chosen,
            "thread_probes": self.probes,
            "fits": self.fits,
            "seconds_per_iteration": round(statistics.median(timed), 4) if timed else None,
            "reserve_seconds": None if self.reserve is None else round(self.reserve, 1),
        }


def _torch_set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _torch_get_threads() -> int:
    import torch

    return torch.get_num_threads()
