"""The training loop: ``TrainerBase`` (iterations + hooks), ``SimpleTrainer`` (one SGD step per
iteration) and ``AMPTrainer`` (the same under mixed precision). detectron2's ``engine.train_loop``.

A step is ``data -> model -> losses -> optimizer``; everything else (LR schedule, checkpoints,
evaluation, logging) is a hook::

    trainer = SimpleTrainer(model, data_loader, optimizer)
    trainer.register_hooks([hooks.IterationTimer(), hooks.LRScheduler(scheduler=scheduler)])
    trainer.train(0, 1000)
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from det.core.events import EventStorage, get_event_storage
from det.engine.train import comm

__all__ = ["AMPTrainer", "HookBase", "SimpleTrainer", "TrainerBase"]

logger = logging.getLogger(__name__)


class HookBase:
    """A callback of :class:`TrainerBase`: ``before_train``, ``before_step``, ``after_step``,
    ``after_train``; ``self.trainer`` is a weak proxy to the trainer once registered.

    Invariant: hooks run in registration order around every ``run_step``; ``after_train`` runs
    even when training raised (so writers flush and files close)::

        class PrintLoss(HookBase):
            def after_step(self):
                print(self.trainer.iter, self.trainer.storage.history("total_loss").latest())
    """

    trainer: Any = None

    def before_train(self) -> None:
        """Called once before the first iteration."""

    def after_train(self) -> None:
        """Called once after the last iteration (or after an exception)."""

    def before_step(self) -> None:
        """Called before each iteration."""

    def after_step(self) -> None:
        """Called after each iteration."""

    def state_dict(self) -> dict:
        """What a checkpoint should keep of this hook ({} for nothing)."""
        return {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class TrainerBase:
    """Iterates ``run_step`` from ``start_iter`` to ``max_iter`` inside an :class:`EventStorage`,
    calling its hooks around each step.

    Invariant: ``self.iter`` is the iteration being run (0-based); after a complete run
    ``self.iter == max_iter``, so ``after_train`` hooks can tell success from an exception.
    Subclasses implement :meth:`run_step`::

        class MyTrainer(TrainerBase):
            def run_step(self): ...
        MyTrainer().train(start_iter=0, max_iter=100)
    """

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter: int = 0
        self.start_iter: int = 0
        self.max_iter: int = 0
        self.storage: EventStorage

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        """Append hooks (``None`` entries are skipped); they run in the order given."""
        kept: list[HookBase] = [h for h in hooks if h is not None]
        for h in kept:
            if not isinstance(h, HookBase):
                raise TypeError(f"register_hooks expects HookBase instances, got {type(h).__name__}")
            # A weak proxy: hooks are owned by the trainer and must not keep it alive.
            h.trainer = weakref.proxy(self)
        self._hooks.extend(kept)

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations ``start_iter .. max_iter - 1``. A hook may move ``self.max_iter`` while
        training runs (e.g. :class:`~det.engine.train.budget.TrainingBudget`); the loop ends when
        the iteration after the current one is ``self.max_iter``."""
        logger.info("Starting training from iteration %d", start_iter)
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self.before_train()
                while self.iter < self.max_iter:
                    self.before_step()
                    self.run_step()
                    self.after_step()
                    self.iter += 1
                # iter == max_iter tells after_train hooks that training completed
            except Exception:
                logger.exception("Exception during training:")
                raise
            finally:
                self.after_train()

    def before_train(self) -> None:
        for h in self._hooks:
            h.before_train()

    def after_train(self) -> None:
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_step(self) -> None:
        # Keep the storage's iteration in sync so that scalars are recorded at the right step.
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_step(self) -> None:
        for h in self._hooks:
            h.after_step()

    def run_step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        ret: dict[str, Any] = {"iteration": self.iter}
        hooks_state: dict[str, Any] = {}
        for h in self._hooks:
            sd = h.state_dict()
            if sd:
                name = type(h).__qualname__
                if name in hooks_state:
                    continue  # two hooks of one type cannot be told apart on load
                hooks_state[name] = sd
        if hooks_state:
            ret["hooks"] = hooks_state
        return ret

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.iter = int(state_dict["iteration"])
        for key, value in state_dict.get("hooks", {}).items():
            for h in self._hooks:
                if type(h).__qualname__ == key:
                    h.load_state_dict(value)
                    break
            else:
                logger.warning("Cannot find the hook '%s', its state_dict is ignored.", key)


class SimpleTrainer(TrainerBase):
    """One step = next batch -> ``model(batch)`` (a loss dict) -> sum -> backward -> optimizer step.

    Invariant: the model is in training mode and returns ``dict[str, scalar tensor]`` (or one
    tensor); losses and ``data_time`` go to the EventStorage (averaged over ranks, main process
    only) and a non-finite total loss raises ``FloatingPointError``::

        trainer = SimpleTrainer(model, build_detection_train_loader(cfg), build_optimizer(cfg, model))
        trainer.train(0, cfg.SOLVER.MAX_ITER)
    """

    def __init__(self, model: torch.nn.Module, data_loader: Iterable, optimizer: torch.optim.Optimizer) -> None:
        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"SimpleTrainer needs a torch.nn.Module as model, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"SimpleTrainer needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
        model.train()
        self.model = model
        self.data_loader = data_loader
        self._data_loader_iter_obj: Any = None
        self.optimizer = optimizer

    @property
    def _data_loader_iter(self) -> Any:
        # Created on first use, so that building a trainer does not start loader workers.
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def _losses(self, data: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_dict = self.model(data)
        if isinstance(loss_dict, torch.Tensor):
            return loss_dict, {"total_loss": loss_dict}
        if not isinstance(loss_dict, Mapping) or not loss_dict:
            raise TypeError(
                f"in training mode the model must return a non-empty dict of losses (or a tensor), got "
                f"{type(loss_dict).__name__}; is it in training mode?")
        losses: torch.Tensor = sum(loss_dict.values())  # type: ignore[assignment]
        return losses, dict(loss_dict)

    def run_step(self) -> None:
        data, data_time = self._next_batch("SimpleTrainer")

        losses, loss_dict = self._losses(data)
        self.optimizer.zero_grad()
        losses.backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()

    def _next_batch(self, trainer: str) -> tuple[Any, float]:
        """The next batch of the data loader and the seconds spent waiting for it; RuntimeError
        (naming ``trainer``, as detectron2's message does) when the model is in eval mode."""
        if not self.model.training:
            raise RuntimeError(f"[{trainer}] model was changed to eval mode!")
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        return data, time.perf_counter() - start

    def _write_metrics(self, loss_dict: Mapping[str, torch.Tensor], data_time: float, prefix: str = "") -> None:
        SimpleTrainer.write_metrics(loss_dict, data_time, prefix)

    @staticmethod
    def write_metrics(loss_dict: Mapping[str, torch.Tensor], data_time: float, prefix: str = "") -> None:
        """Put ``data_time`` (max over ranks), each loss and ``total_loss`` (mean over ranks)
        into the current storage, on the main process."""
        metrics_dict: dict[str, float] = {k: v.detach().float().cpu().item() for k, v in loss_dict.items()}
        metrics_dict["data_time"] = data_time
        all_metrics_dict = comm.gather(metrics_dict)
        if not comm.is_main_process():
            return
        storage = get_event_storage()
        storage.put_scalar("data_time", float(np.max([x.pop("data_time") for x in all_metrics_dict])))
        metrics = {k: float(np.mean([x[k] for x in all_metrics_dict])) for k in all_metrics_dict[0]}
        total_losses_reduced = sum(metrics.values())
        if not np.isfinite(total_losses_reduced):
            raise FloatingPointError(
                f"Loss became infinite or NaN at iteration={storage.iter}!\nloss_dict = {metrics}")
        storage.put_scalar(f"{prefix}total_loss", total_losses_reduced)
        if len(metrics) > 1:
            for name, value in metrics.items():
                storage.put_scalar(name, value)

    def state_dict(self) -> dict:
        ret = super().state_dict()
        ret["optimizer"] = self.optimizer.state_dict()
        return ret

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.optimizer.load_state_dict(state_dict["optimizer"])


def _autocast_device(model: torch.nn.Module) -> str:
    for p in model.parameters():
        return p.device.type
    return "cpu"


class AMPTrainer(SimpleTrainer):
    """:class:`SimpleTrainer` with the forward pass under ``torch.autocast``: float16 with a
    ``GradScaler`` on CUDA, bfloat16 (no scaling needed) on the CPU.

    Invariant: parameters and optimizer state stay float32; only activations are low precision::

        trainer = AMPTrainer(model, data_loader, optimizer)   # what SOLVER.AMP.ENABLED selects
    """

    def __init__(self, model: torch.nn.Module, data_loader: Iterable, optimizer: torch.optim.Optimizer,
                 grad_scaler: Any = None, precision: torch.dtype | None = None) -> None:
        super().__init__(model, data_loader, optimizer)
        inner = getattr(model, "module", model)  # DDP wraps the model
        device = _autocast_device(inner if isinstance(inner, torch.nn.Module) else model)
        self._device_type = "cuda" if device == "cuda" else "cpu"
        if precision is None:
            precision = torch.float16 if self._device_type == "cuda" else torch.bfloat16
        self.precision = precision
        if grad_scaler is None and precision == torch.float16:
            grad_scaler = torch.amp.GradScaler(self._device_type)
        self.grad_scaler = grad_scaler

    def run_step(self) -> None:
        data, data_time = self._next_batch("AMPTrainer")

        with torch.autocast(device_type=self._device_type, dtype=self.precision):
            losses, loss_dict = self._losses(data)
        self.optimizer.zero_grad()
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
        else:
            losses.backward()
        self._write_metrics(loss_dict, data_time)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()

    def state_dict(self) -> dict:
        ret = super().state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
