"""Training hooks (detectron2's ``engine.hooks``): timing, LR schedule, checkpoints, evaluation,
metric writing and a progress bar.

    trainer.register_hooks([
        IterationTimer(), LRScheduler(), PeriodicCheckpointer(checkpointer, period=500),
        EvalHook(500, lambda: trainer.test(cfg, model)), PeriodicWriter(writers, period=20),
    ])
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from det.checkpoint import PeriodicCheckpointer as _PeriodicCheckpointer
from det.engine.train import comm
from det.engine.train.lr_scheduler import LRMultiplier, ParamScheduler
from det.engine.train.train_loop import HookBase
from det.engine.train.writers import EventWriter

__all__ = [
    "CallbackHook",
    "EvalHook",
    "IterationTimer",
    "LRScheduler",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "ProgressBar",
]

logger = logging.getLogger(__name__)


class CallbackHook(HookBase):
    """A hook made of plain functions, each called with the trainer::

        CallbackHook(after_step=lambda trainer: print(trainer.iter))
    """

    def __init__(self, *, before_train: Callable | None = None, after_train: Callable | None = None,
                 before_step: Callable | None = None, after_step: Callable | None = None) -> None:
        self._before_train = before_train
        self._before_step = before_step
        self._after_step = after_step
        self._after_train = after_train

    def before_train(self) -> None:
        if self._before_train:
            self._before_train(self.trainer)

    def after_train(self) -> None:
        if self._after_train:
            self._after_train(self.trainer)
        # the functions may hold the trainer in a closure; drop them to break the cycle
        del self._before_train, self._after_train
        del self._before_step, self._after_step

    def before_step(self) -> None:
        if self._before_step:
            self._before_step(self.trainer)

    def after_step(self) -> None:
        if self._after_step:
            self._after_step(self.trainer)


class IterationTimer(HookBase):
    """Puts ``time`` (seconds of one iteration, hooks after it excluded) into the storage and
    logs the total training time at the end. The first ``warmup_iter`` iterations are not timed
    (lazy initialisation makes them slow). Register it first, so it times the other hooks too."""

    def __init__(self, warmup_iter: int = 3) -> None:
        self._warmup_iter = warmup_iter
        self._step_start = 0.0
        self._start_time = time.perf_counter()
        self._total_timed = 0.0  # seconds of timed iterations

    def before_train(self) -> None:
        self._start_time = time.perf_counter()
        self._total_timed = 0.0

    def after_train(self) -> None:
        total_time = time.perf_counter() - self._start_time
        num_iter = self.trainer.storage.iter + 1 - self.trainer.start_iter - self._warmup_iter
        if num_iter > 0 and self._total_timed > 0:
            logger.info(
                "Overall training speed: %d iterations in %s (%.4f s / it)",
                num_iter, str(datetime.timedelta(seconds=int(self._total_timed))), self._total_timed / num_iter)
        logger.info("Total training time: %s (%s on hooks)",
                    str(datetime.timedelta(seconds=int(total_time))),
                    str(datetime.timedelta(seconds=int(max(total_time - self._total_timed, 0)))))

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        iter_done = self.trainer.storage.iter - self.trainer.start_iter + 1
        if iter_done >= self._warmup_iter:
            sec = time.perf_counter() - self._step_start
            self._total_timed += sec
            self.trainer.storage.put_scalars(time=sec)


class PeriodicWriter(HookBase):
    """Calls each writer's ``write()`` every ``period`` iterations and at the last one, and
    ``close()`` after training."""

    def __init__(self, writers: Sequence[EventWriter], period: int = 20) -> None:
        for w in writers:
            if not isinstance(w, EventWriter):
                raise TypeError(f"PeriodicWriter takes EventWriter instances, got {type(w).__name__}")
        self._writers = list(writers)
        self._period = int(period)

    def after_step(self) -> None:
        if (self.trainer.iter + 1) % self._period == 0 or self.trainer.iter == self.trainer.max_iter - 1:
            for writer in self._writers:
                writer.write()

    def after_train(self) -> None:
        for writer in self._writers:
            # any unwritten scalars (e.g. from a final evaluation) are written now
            writer.write()
            writer.close()


class PeriodicCheckpointer(_PeriodicCheckpointer, HookBase):
    """:class:`det.checkpoint.PeriodicCheckpointer` as a hook: saves ``model_{iter:07d}.pth``
    every ``period`` iterations and ``model_final.pth`` at the last one. ``max_iter`` comes from
    the trainer. Give it only to the main process (or a checkpointer that saves only there)."""

    def before_train(self) -> None:
        self.max_iter = self.trainer.max_iter

    def after_step(self) -> None:
        self.step(self.trainer.iter)


class LRScheduler(HookBase):
    """Steps the LR scheduler after every iteration and records the ``lr`` scalar.

    ``optimizer``/``scheduler`` default to the trainer's. A :class:`ParamScheduler` is wrapped
    into an :class:`LRMultiplier` over the trainer's ``max_iter``. Its state (the scheduler's)
    is saved in checkpoints through the trainer's state_dict.
    """

    def __init__(self, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None) -> None:
        self._optimizer = optimizer
        self._scheduler = scheduler
        self._best_param_group_id = 0

    def before_train(self) -> None:
        self._optimizer = self._optimizer or self.trainer.optimizer
        if isinstance(self.scheduler, ParamScheduler):
            self._scheduler = LRMultiplier(
                self._optimizer, self.scheduler, self.trainer.max_iter, last_iter=self.trainer.iter - 1)
        self._best_param_group_id = LRScheduler.get_best_param_group_id(self._optimizer)

    @staticmethod
    def get_best_param_group_id(optimizer: torch.optim.Optimizer) -> int:
        """The group whose lr is reported: the one with most parameters, or when every group
        has one parameter, the first group with the most common lr."""
        largest_group = max(len(g["params"]) for g in optimizer.param_groups)
        if largest_group == 1:
            lr_count = Counter([g["lr"] for g in optimizer.param_groups])
            lr = lr_count.most_common()[0][0]
            for i, g in enumerate(optimizer.param_groups):
                if g["lr"] == lr:
                    return i
        for i, g in enumerate(optimizer.param_groups):
            if len(g["params"]) == largest_group:
                return i
        return 0

    def after_step(self) -> None:
        assert self._optimizer is not None  # set in before_train
        lr = self._optimizer.param_groups[self._best_param_group_id]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        self.scheduler.step()

    @property
    def scheduler(self) -> Any:
        return self._scheduler or self.trainer.scheduler

    def state_dict(self) -> dict:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LRScheduler):
            return self.scheduler.state_dict()
        return {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LRScheduler):
            logger.info("Loading scheduler from state_dict ...")
            self.scheduler.load_state_dict(dict(state_dict))


class EvalHook(HookBase):
    """Runs ``eval_function()`` every ``eval_period`` iterations and after the last one; its
    results (``{task: {metric: value}}``) are put into the storage as ``task/metric`` scalars.
    ``eval_period`` <= 0 evaluates only at the end. All ranks must run it (evaluation gathers)."""

    def __init__(self, eval_period: int, eval_function: Callable[[], Any], eval_after_train: bool = True) -> None:
        self._period = int(eval_period)
        self._func = eval_function
        self._eval_after_train = eval_after_train

    def _do_eval(self) -> None:
        from det.engine.evaluation.testing import flatten_results_dict

        results = self._func()
        if results:
            if not isinstance(results, Mapping):
                raise TypeError(f"eval_function should return a dict of results, got {results!r}")
            flattened = flatten_results_dict(results)
            for k, v in flattened.items():
                try:
                    float(v)
                except Exception as e:
                    raise ValueError(
                        f"[EvalHook] eval_function should return a nested dict of float; got '{k}: {v}'") from e
            self.trainer.storage.put_scalars(**{k: float(v) for k, v in flattened.items()}, smoothing_hint=False)
        # evaluation may take different time on each rank; keep them together
        comm.synchronize()

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._do_eval()

    def after_train(self) -> None:
        # iter + 1 >= max_iter: training finished (not interrupted by an exception)
        if self._eval_after_train and self.trainer.iter + 1 >= self.trainer.max_iter:
            self._do_eval()
        del self._func  # may hold the trainer in a closure


class ProgressBar(HookBase):
    """A tqdm bar over the iterations with the smoothed total loss and lr (main process only).

        trainer.register_hooks([ProgressBar()])   # 37%|███▋      | 370/1000 [00:52<01:29, loss=0.812, lr=0.02]
    """

    def __init__(self, window_size: int = 20, **tqdm_kwargs: Any) -> None:
        self._window_size = window_size
        self._tqdm_kwargs = {"desc": "training", "unit": "it", "dynamic_ncols": True, **tqdm_kwargs}
        self._bar: Any = None

    def before_train(self) -> None:
        if not comm.is_main_process():
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.trainer.max_iter, initial=self.trainer.start_iter, **self._tqdm_kwargs)

    def after_step(self) -> None:
        if self._bar is None:
            return
        storage = self.trainer.storage
        postfix = {}
        with contextlib.suppress(KeyError):
            postfix["loss"] = f"{storage.history('total_loss').median(self._window_size):.3f}"
        with contextlib.suppress(KeyError):
            postfix["lr"] = f"{storage.history('lr').latest():.3g}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    def after_train(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
