"""Metric writers: read the current :class:`~det.core.events.EventStorage` and write it out
(detectron2's ``utils.events`` writers).

    writers = [CommonMetricPrinter(max_iter), JSONWriter("output/metrics.json"), TensorboardXWriter("output")]
    # PeriodicWriter(writers, period=20) calls each writer's write() every 20 iterations
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import time
from collections import defaultdict
from typing import Any

import torch

from det.core.events import get_event_storage

__all__ = ["CommonMetricPrinter", "EventWriter", "JSONWriter", "TensorboardXWriter"]


class EventWriter:
    """Base class of writers: ``write()`` is called periodically, ``close()`` at the end."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class JSONWriter(EventWriter):
    """Appends one JSON object per iteration that has new scalars to ``json_file``::

        {"iteration": 19, "lr": 0.0199, "loss_cls": 0.41, "total_loss": 1.2, "data_time": 0.003, ...}

    Invariant: each iteration is written at most once (only scalars newer than the last write);
    smoothed scalars are the median over ``window_size`` iterations. Read it back with
    ``[json.loads(line) for line in open(json_file)]``.
    """

    def __init__(self, json_file: str | os.PathLike, window_size: int = 20) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(json_file)), exist_ok=True)
        self._file_handle = open(json_file, "a")  # noqa: SIM115 - kept open across writes, closed in close()
        self._window_size = window_size
        self._last_write = -1

    def write(self) -> None:
        storage = get_event_storage()
        to_save: defaultdict[int, dict[str, Any]] = defaultdict(dict)
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr <= self._last_write:
                continue  # already written
            to_save[int(itr)][k] = float(v)
        if to_save:
            self._last_write = max(to_save.keys())
        for itr, scalars_per_iter in sorted(to_save.items()):
            scalars_per_iter["iteration"] = itr
            self._file_handle.write(json.dumps(scalars_per_iter, sort_keys=True) + "\n")
        self._file_handle.flush()
        with contextlib.suppress(AttributeError, OSError):
            os.fsync(self._file_handle.fileno())

    def close(self) -> None:
        self._file_handle.close()


class TensorboardXWriter(EventWriter):
    """Writes scalars (and images/histograms put in the storage) to TensorBoard event files in
    ``log_dir``. Needs the ``tensorboard`` package; without it the writer logs one warning and
    does nothing, so training never fails for lack of it."""

    def __init__(self, log_dir: str | os.PathLike, window_size: int = 20, **kwargs: Any) -> None:
        self._window_size = window_size
        self._last_write = -1
        self._writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logging.getLogger(__name__).warning(
                "TensorBoard is not installed (pip install tensorboard): TensorboardXWriter writes nothing")
            return
        self._writer = SummaryWriter(str(log_dir), **kwargs)

    def write(self) -> None:
        if self._writer is None:
            return
        storage = get_event_storage()
        new_last_write = self._last_write
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr > self._last_write:
                self._writer.add_scalar(k, v, itr)
                new_last_write = max(new_last_write, itr)
        self._last_write = new_last_write
        if storage._vis_data:
            for img_name, img, step_num in storage._vis_data:
                self._writer.add_image(img_name, img, step_num)
            storage.clear_images()
        if storage._histograms:
            for params in storage._histograms:
                self._writer.add_histogram_raw(**params)
            storage.clear_histograms()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class CommonMetricPrinter(EventWriter):
    """Logs one line with ETA, iteration, losses, time, data time, lr and memory::

        eta: 0:01:02  iter: 199  total_loss: 1.02  loss_cls: 0.31 ...  time: 0.1520  data_time: 0.0030  lr: 0.0200

    The ETA uses the median ``time`` of recent iterations (put by ``IterationTimer``); when it
    is not available yet, the time between two writes.
    """

    def __init__(self, max_iter: int | None = None, window_size: int = 20) -> None:
        self.logger = logging.getLogger("det.engine.train")
        self._max_iter = max_iter
        self._window_size = window_size
        self._last_write: tuple[int, float] | None = None

    def _get_eta(self, storage: Any) -> str | None:
        if self._max_iter is None:
            return ""
        iteration = storage.iter
        try:
            eta_seconds = storage.history("time").median(1000) * (self._max_iter - iteration - 1)
            storage.put_scalar("eta_seconds", eta_seconds, smoothing_hint=False)
            return str(datetime.timedelta(seconds=int(eta_seconds)))
        except KeyError:
            eta_string = None
            if self._last_write is not None:
                estimate_iter_time = (time.perf_counter() - self._last_write[1]) / max(iteration - self._last_write[0], 1)
                eta_seconds = estimate_iter_time * (self._max_iter - iteration - 1)
                eta_string = str(datetime.timedelta(seconds=int(eta_seconds)))
            self._last_write = (iteration, time.perf_counter())
            return eta_string

    def write(self) -> None:
        storage = get_event_storage()
        iteration = storage.iter
        if self._max_iter is not None and iteration == self._max_iter:
            # after_train writes once more; that iteration has no new scalars
            return
        try:
            avg_data_time = f"{storage.history('data_time').avg(self._window_size):.4f}"
        except KeyError:
            avg_data_time = ""
        try:
            iter_time = f"{storage.history('time').global_avg():.4f}"
        except KeyError:
            iter_time = ""
        try:
            lr = f"{storage.history('lr').latest():.5g}"
        except KeyError:
            lr = "N/A"
        eta_string = self._get_eta(storage)
        max_mem_mb = (torch.cuda.max_memory_allocated() / 1024.0 / 1024.0
                      if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
        losses = "  ".join(
            f"{k}: {v.median(self._window_size):.4g}" for k, v in storage.histories().items() if "loss" in k)
        self.logger.info(
            " %siter: %d  %s  %s%s lr: %s  %s",
            f"eta: {eta_string}  " if eta_string else "",
            iteration,
            losses,
            f"time: {iter_time}  " if iter_time else "",
            f"data_time: {avg_data_time} " if avg_data_time else "",
            lr,
            f"max_mem: {max_mem_mb:.0f}M" if max_mem_mb is not None else "",
        )
