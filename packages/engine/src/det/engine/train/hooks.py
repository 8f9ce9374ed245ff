"""Training hooks (detectron2's ``engine.hooks``): timing, LR schedule, precise BN statistics,
checkpoints (periodic and best-metric), evaluation, metric writing, profiling, CUDA memory
statistics and a progress bar.

    trainer.register_hooks([
        IterationTimer(), LRScheduler(), PreciseBN(500, model, train_loader, num_iter=200),
        PeriodicCheckpointer(checkpointer, period=500), EvalHook(500, lambda: trainer.test(cfg, model)),
        BestCheckpointer(500, checkpointer, "bbox/AP"), PeriodicWriter(writers, period=20),
    ])
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import math
import operator
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from det.checkpoint import PeriodicCheckpointer as _PeriodicCheckpointer
from det.core.events import EventStorage
from det.engine.train import comm
from det.engine.train.lr_scheduler import LRMultiplier, ParamScheduler
from det.engine.train.precise_bn import get_bn_modules, update_bn_stats
from det.engine.train.train_loop import HookBase
from det.engine.train.writers import EventWriter

__all__ = [
    "AutogradProfiler",
    "BestCheckpointer",
    "CallbackHook",
    "EvalHook",
    "IterationTimer",
    "LRScheduler",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "PreciseBN",
    "ProgressBar",
    "TorchMemoryStats",
    "TorchProfiler",
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
        self.max_iter = self.trainer.max_iter  # a hook may have moved it (a time budget)
        self.step(self.trainer.iter)


class BestCheckpointer(HookBase):
    """Saves ``{file_prefix}.pth`` whenever an evaluation improves ``val_metric``.

    Invariant: it checks at the iterations where :class:`EvalHook` with the same ``eval_period``
    evaluates, reads the metric's latest value from the trainer's EventStorage, and uses it only
    if it was recorded at the current iteration; register it after the EvalHook::

        trainer.register_hooks([EvalHook(500, eval_fn), BestCheckpointer(500, checkpointer, "bbox/AP")])

    ``mode="min"`` for metrics where lower is better (e.g. a validation loss). A missing, stale or
    non-finite metric is skipped with a warning. The best value and its iteration
    (:attr:`best_metric`, :attr:`best_iter`) go into the trainer's checkpoints, so a resumed run
    only replaces the saved file with a better one.
    """

    def __init__(
        self,
        eval_period: int,
        checkpointer: Any,
        val_metric: str,
        mode: str = "max",
        file_prefix: str = "model_best",
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"BestCheckpointer: mode must be 'max' or 'min', got {mode!r}")
        self._period = int(eval_period)
        self._checkpointer = checkpointer
        self._val_metric = val_metric
        self._compare = operator.gt if mode == "max" else operator.lt
        self._file_prefix = file_prefix
        self.best_metric: float | None = None
        self.best_iter: int | None = None

    def _best_checking(self) -> None:
        storage = self.trainer.storage
        latest = storage.latest().get(self._val_metric)
        if latest is None:
            logger.warning(
                "BestCheckpointer: metric %r was not found in the EventStorage (is it computed by the "
                "EvalHook registered before this hook?); no best checkpoint saved",
                self._val_metric,
            )
            return
        value, metric_iter = latest
        if metric_iter != storage.iter:
            logger.warning(
                "BestCheckpointer: the latest %r was recorded at iteration %d, not at this evaluation "
                "(iteration %d); no best checkpoint saved",
                self._val_metric,
                metric_iter,
                storage.iter,
            )
            return
        if not math.isfinite(value):
            logger.warning("BestCheckpointer: %r is %s; no best checkpoint saved", self._val_metric, value)
            return
        if self.best_metric is not None and not self._compare(value, self.best_metric):
            logger.info(
                "Not saving %s: %s = %.5f is not better than the best %.5f @ iteration %s",
                self._file_prefix,
                self._val_metric,
                value,
                self.best_metric,
                self.best_iter,
            )
            return
        previous, previous_iter = self.best_metric, self.best_iter
        # updated before saving, so the saved trainer state holds the new best
        self.best_metric, self.best_iter = value, metric_iter
        self._checkpointer.save(self._file_prefix, iteration=metric_iter)
        if previous is None:
            logger.info(
                "Saved %s: first %s = %.5f @ iteration %d",
                self._file_prefix,
                self._val_metric,
                value,
                metric_iter,
            )
        else:
            logger.info(
                "Saved %s: %s = %.5f @ iteration %d, better than %.5f @ iteration %s",
                self._file_prefix,
                self._val_metric,
                value,
                metric_iter,
                previous,
                previous_iter,
            )

    def after_step(self) -> None:
        # EvalHook's schedule: periodic, the last evaluation happens in after_train
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._best_checking()

    def after_train(self) -> None:
        # iter + 1 >= max_iter: training finished (not interrupted by an exception)
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            self._best_checking()

    def state_dict(self) -> dict:
        if self.best_metric is None:
            return {}
        return {"best_metric": self.best_metric, "best_iter": self.best_iter}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.best_metric = state_dict.get("best_metric")
        self.best_iter = state_dict.get("best_iter")


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
        from det.evaluation.testing import flatten_results_dict

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


class PreciseBN(HookBase):
    """Recomputes the BatchNorm population statistics of ``model`` (see
    :func:`~det.engine.train.precise_bn.update_bn_stats`) with ``num_iter`` batches of
    ``data_loader``: every ``period`` iterations and after the last one (0: only after the last).

    Invariant: it runs in ``after_step``, so a hook registered after it (the checkpointer, the
    evaluation) sees the updated statistics, and so does ``model_final.pth``. A model without BN
    layers in training mode disables it (logged once)::

        trainer.register_hooks([LRScheduler(), PreciseBN(500, model, train_loader, num_iter=200),
                                PeriodicCheckpointer(checkpointer, 500), EvalHook(500, eval_fn)])

    One iterator over ``data_loader`` is kept across runs; give it its own (infinite) loader, not
    the one training consumes. The model's events during these passes go to a scratch
    EventStorage and are dropped.
    """

    def __init__(
        self, period: int, model: torch.nn.Module, data_loader: Iterable[Any], num_iter: int
    ) -> None:
        self._period = int(period)
        self._model = model
        self._data_loader = data_loader
        self._num_iter = int(num_iter)
        self._data_iter: Iterator[Any] | None = None
        self._disabled = not get_bn_modules(model)
        if self._disabled:
            logger.info("PreciseBN is disabled because model does not contain BN layers in training mode.")

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        is_final = next_iter == self.trainer.max_iter
        if is_final or (self._period > 0 and next_iter % self._period == 0):
            self.update_stats()

    def update_stats(self) -> None:
        """Update the model's BN statistics now (users may call it themselves)."""
        if self._disabled:
            return
        if self._data_iter is None:
            self._data_iter = iter(self._data_loader)
        logger.info(
            "Running precise-BN for %d iterations... "
            "Note that this could produce different statistics every time.",
            self._num_iter,
        )
        with EventStorage():  # the model's scalars from these passes are not training's
            update_bn_stats(self._model, self._batches(self._data_iter), self._num_iter)

    def _batches(self, data_iter: Iterator[Any]) -> Iterator[Any]:
        for i in itertools.count(1):
            if i % 100 == 0:
                logger.info("Running precise-BN ... %d/%d iterations.", i, self._num_iter)
            try:
                yield next(data_iter)
            except StopIteration:
                return  # update_bn_stats reports a loader that ended too early


class TorchProfiler(HookBase):
    """Runs ``torch.profiler.profile`` around each iteration where ``enable_predicate(trainer)``
    is True and writes its trace into ``output_dir``.

    With ``save_tensorboard`` (the default) the trace goes to
    ``output_dir/log/profiler-tensorboard-iter{N}/worker{rank}.*.pt.trace.json`` for TensorBoard's
    profiler plugin (``tensorboard --logdir output_dir/log``); otherwise to
    ``output_dir/profiler-trace-iter{N}.json``. Both are Chrome traces (``chrome://tracing``,
    Perfetto). The first iterations are slow (lazy initialisation), so skip them::

        TorchProfiler(lambda trainer: 10 < trainer.iter < 20, cfg.OUTPUT_DIR)

    ``activities`` is passed to ``torch.profiler.profile`` (None: CPU, plus CUDA when available).
    """

    def __init__(
        self,
        enable_predicate: Callable[[Any], bool],
        output_dir: str,
        *,
        activities: Iterable[Any] | None = None,
        save_tensorboard: bool = True,
    ) -> None:
        self._enable_predicate = enable_predicate
        self._activities = activities
        self._output_dir = output_dir
        self._save_tensorboard = save_tensorboard
        self._profiler: Any = None

    def _start_profiler(self) -> Any:
        on_trace_ready = None
        if self._save_tensorboard:
            trace_dir = os.path.join(self._output_dir, "log", f"profiler-tensorboard-iter{self.trainer.iter}")
            on_trace_ready = torch.profiler.tensorboard_trace_handler(trace_dir, f"worker{comm.get_rank()}")
        return torch.profiler.profile(
            activities=self._activities,
            on_trace_ready=on_trace_ready,
            record_shapes=True,
            profile_memory=True,
            with_stack=True,
            with_flops=True,
        )

    def before_step(self) -> None:
        if self._enable_predicate(self.trainer):
            self._profiler = self._start_profiler()
            self._profiler.__enter__()
        else:
            self._profiler = None

    def after_step(self) -> None:
        if self._profiler is None:
            return
        profiler, self._profiler = self._profiler, None
        profiler.__exit__(None, None, None)  # calls on_trace_ready: the tensorboard trace
        if not self._save_tensorboard:
            os.makedirs(self._output_dir, exist_ok=True)
            profiler.export_chrome_trace(
                os.path.join(self._output_dir, f"profiler-trace-iter{self.trainer.iter}.json")
            )

    def after_train(self) -> None:
        # the step raised: stop profiling without writing a partial trace
        if self._profiler is not None:
            profiler, self._profiler = self._profiler, None
            with contextlib.suppress(Exception):
                profiler.__exit__(None, None, None)


class AutogradProfiler(TorchProfiler):
    """Runs the older ``torch.autograd.profiler.profile`` around each iteration where
    ``enable_predicate(trainer)`` is True and writes ``output_dir/profiler-trace-iter{N}.json``
    (a Chrome trace). Deprecated in detectron2 in favour of :class:`TorchProfiler`; kept for code
    that uses it::

        AutogradProfiler(lambda trainer: trainer.iter == 10, cfg.OUTPUT_DIR, use_cuda=False)

    ``use_cuda`` (detectron2's default: True) times CUDA kernels too; without CUDA it is ignored.
    With NCCL on old GPUs the autograd profiler can deadlock (it allocates memory on every device).
    """

    def __init__(
        self, enable_predicate: Callable[[Any], bool], output_dir: str, *, use_cuda: bool = True
    ) -> None:
        warnings.warn(
            "AutogradProfiler is deprecated in favour of TorchProfiler", DeprecationWarning, stacklevel=2
        )
        super().__init__(enable_predicate, output_dir, save_tensorboard=False)
        self._use_cuda = use_cuda

    def _start_profiler(self) -> Any:
        if self._use_cuda and torch.cuda.is_available():
            # torch renamed use_cuda=True to use_device="cuda" (and later removed use_cuda)
            return torch.autograd.profiler.profile(use_device="cuda")
        return torch.autograd.profiler.profile()


class TorchMemoryStats(HookBase):
    """Logs the CUDA memory statistics (reserved and allocated, current and peak, in MB) every
    ``period`` iterations and at the last one, at most ``max_runs`` times; the last time also
    ``torch.cuda.memory_summary()``. The peaks are reset after each log, so each one covers the
    iterations since the previous. Without CUDA it does nothing::

        trainer.register_hooks([TorchMemoryStats(period=20, max_runs=10)])
    """

    def __init__(self, period: int = 20, max_runs: int = 10) -> None:
        self._period = int(period)
        self._max_runs = int(max_runs)
        self._runs = 0

    def after_step(self) -> None:
        if self._runs >= self._max_runs or not torch.cuda.is_available():
            return
        iteration = self.trainer.iter
        if (iteration + 1) % self._period != 0 and iteration != self.trainer.max_iter - 1:
            return
        mb = 1024.0 * 1024.0
        logger.info(
            " iter: %d  max_reserved_mem: %.0fMB  reserved_mem: %.0fMB  max_allocated_mem: %.0fMB "
            " allocated_mem: %.0fMB ",
            iteration,
            torch.cuda.max_memory_reserved() / mb,
            torch.cuda.memory_reserved() / mb,
            torch.cuda.max_memory_allocated() / mb,
            torch.cuda.memory_allocated() / mb,
        )
        self._runs += 1
        if self._runs == self._max_runs:
            logger.info("\n%s", torch.cuda.memory_summary())
        torch.cuda.reset_peak_memory_stats()


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
        if self._bar.total != self.trainer.max_iter:  # a hook moved it (a time budget)
            self._bar.total = self.trainer.max_iter
        self._bar.update(1)

    def after_train(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
