"""EventStorage: where models and hooks put training statistics (scalars, images, histograms).

Same contract as ``detectron2.utils.events``: code anywhere in a training step calls
``get_event_storage().put_scalar(...)``; the trainer owns the storage and writers read it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import torch

__all__ = ["EventStorage", "HistoryBuffer", "get_event_storage", "has_event_storage"]

_CURRENT_STORAGE_STACK: list[EventStorage] = []


def get_event_storage() -> EventStorage:
    """Return the innermost active :class:`EventStorage`.

    Raises:
        RuntimeError: when called outside ``with EventStorage(...):``.
    """
    if not _CURRENT_STORAGE_STACK:
        raise RuntimeError(
            "get_event_storage() has to be called inside a 'with EventStorage(...)' context! "
            "Training a det model records statistics there: wrap the step in "
            "`with EventStorage(start_iter):` (det.core.events.EventStorage)."
        )
    return _CURRENT_STORAGE_STACK[-1]


def has_event_storage() -> bool:
    """Whether an :class:`EventStorage` is active (code inside ``with EventStorage(...):``), so that
    :func:`get_event_storage` would return one instead of raising."""
    return bool(_CURRENT_STORAGE_STACK)


class HistoryBuffer:
    """The recent values of one scalar, with their iterations, plus its all-time average.

    Invariant: at most ``max_length`` (value, iteration) pairs are kept, oldest dropped first;
    ``global_avg()`` covers every value ever added.

        buf = HistoryBuffer(max_length=3)
        for i, v in enumerate([1.0, 2.0, 9.0, 4.0]): buf.update(v, i)
        buf.values()  # [(2.0, 1), (9.0, 2), (4.0, 3)];  buf.median(3) == 4.0;  buf.global_avg() == 4.0
    """

    def __init__(self, max_length: int = 1000000) -> None:
        self._max_length: int = max_length
        self._data: list[tuple[float, float]] = []
        self._count: int = 0
        self._global_avg: float = 0

    def update(self, value: float, iteration: float | None = None) -> None:
        """Add ``value`` seen at ``iteration`` (default: the number of values added so far)."""
        if iteration is None:
            iteration = self._count
        if len(self._data) == self._max_length:
            self._data.pop(0)
        self._data.append((value, iteration))
        self._count += 1
        # running mean: no need to keep every value to know the all-time average
        self._global_avg += (value - self._global_avg) / self._count

    def latest(self) -> float:
        """The last value added."""
        return self._data[-1][0]

    def median(self, window_size: int) -> float:
        """Median of the last ``window_size`` values."""
        return cast(float, np.median([x[0] for x in self._data[-window_size:]]))

    def avg(self, window_size: int) -> float:
        """Mean of the last ``window_size`` values."""
        return cast(float, np.mean([x[0] for x in self._data[-window_size:]]))

    def global_avg(self) -> float:
        """Mean of every value ever added, including those dropped from the buffer."""
        return self._global_avg

    def values(self) -> list[tuple[float, float]]:
        """The kept (value, iteration) pairs, oldest first."""
        return self._data


class EventStorage:
    """The statistics of a training run, step by step: scalars, images and histograms.

    Invariant: inside ``with storage:`` it is what :func:`get_event_storage` returns; every scalar
    is recorded with the iteration it was put at, under ``name_scope`` prefix + name.

        with EventStorage(start_iter=0) as storage:
            losses = model(batched_inputs)        # the model calls get_event_storage().put_scalar
            storage.step()
    """

    def __init__(self, start_iter: int = 0) -> None:
        self._history: defaultdict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: dict[str, bool] = {}
        self._latest_scalars: dict[str, tuple[float, int]] = {}
        self._iter = start_iter
        self._current_prefix = ""
        self._vis_data: list[tuple[str, Any, int]] = []
        self._histograms: list[dict[str, Any]] = []

    def put_image(self, img_name: str, img_tensor: Any) -> None:
        """Add an image for writers to show.

        Args:
            img_name: its name in the writer (e.g. tensorboard).
            img_tensor: float tensor (3, H, W) in [0, 1], RGB.
        """
        self._vis_data.append((img_name, img_tensor, self._iter))

    def put_scalar(
        self, name: str, value: float, smoothing_hint: bool = True, cur_iter: int | None = None
    ) -> None:
        """Record ``value`` for scalar ``name`` at ``cur_iter`` (default: the current iteration).

        Args:
            smoothing_hint: whether writers should smooth this scalar over a window (e.g. losses)
                or show the raw latest value (e.g. the learning rate). One scalar keeps one hint.
        """
        name = self._current_prefix + name
        cur_iter = self._iter if cur_iter is None else cur_iter
        value = float(value)
        self._history[name].update(value, cur_iter)
        self._latest_scalars[name] = (value, cur_iter)

        existing_hint = self._smoothing_hints.get(name)
        if existing_hint is not None:
            if existing_hint != smoothing_hint:
                raise ValueError(
                    f"Scalar {name} was put with a different smoothing_hint! "
                    f"It was first put with smoothing_hint={existing_hint}, now {smoothing_hint}."
                )
        else:
            self._smoothing_hints[name] = smoothing_hint

    def put_scalars(self, *, smoothing_hint: bool = True, cur_iter: int | None = None, **kwargs: Any) -> None:
        """Record several scalars at once: ``storage.put_scalars(loss=1.0, accuracy=0.5)``."""
        for k, v in kwargs.items():
            self.put_scalar(k, v, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    def put_histogram(self, hist_name: str, hist_tensor: torch.Tensor, bins: int = 1000) -> None:
        """Record a histogram of ``hist_tensor`` (``bins`` equal-width bins between its min and max)."""
        ht_min, ht_max = hist_tensor.min().item(), hist_tensor.max().item()
        hist_counts = torch.histc(hist_tensor, bins=bins)
        hist_edges = torch.linspace(start=ht_min, end=ht_max, steps=bins + 1, dtype=torch.float32)
        self._histograms.append(
            dict(
                tag=hist_name,
                min=ht_min,
                max=ht_max,
                num=len(hist_tensor),
                sum=float(hist_tensor.sum()),
                sum_squares=float(torch.sum(hist_tensor**2)),
                bucket_limits=hist_edges[1:].tolist(),
                bucket_counts=hist_counts.tolist(),
                global_step=self._iter,
            )
        )

    def history(self, name: str) -> HistoryBuffer:
        """The :class:`HistoryBuffer` of scalar ``name``; KeyError if it was never put."""
        ret = self._history.get(name)
        if ret is None:
            raise KeyError(f"No history metric available for {name}!")
        return ret

    def histories(self) -> dict[str, HistoryBuffer]:
        """Every scalar's HistoryBuffer, by name."""
        return self._history

    def latest(self) -> dict[str, tuple[float, int]]:
        """name -> (latest value, iteration it was put at)."""
        return self._latest_scalars

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict[str, tuple[float, int]]:
        """Like :meth:`latest`, but scalars put with ``smoothing_hint=True`` give the median of
        their last ``window_size`` values instead of the raw latest one."""
        result = {}
        for k, (v, itr) in self._latest_scalars.items():
            result[k] = (self._history[k].median(window_size) if self._smoothing_hints[k] else v, itr)
        return result

    def smoothing_hints(self) -> dict[str, bool]:
        """name -> the smoothing hint the scalar was put with."""
        return self._smoothing_hints

    def step(self) -> None:
        """Advance to the next iteration: the trainer calls it once per step."""
        self._iter += 1

    @property
    def iter(self) -> int:
        """The current iteration: what scalars and images are recorded at."""
        return self._iter

    @iter.setter
    def iter(self, val: int) -> None:
        self._iter = int(val)

    @property
    def iteration(self) -> int:
        # detectron2 kept this alias for old code
        return self._iter

    def __enter__(self) -> EventStorage:
        _CURRENT_STORAGE_STACK.append(self)
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        assert _CURRENT_STORAGE_STACK[-1] is self
        _CURRENT_STORAGE_STACK.pop()

    @contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        """Scalars put inside ``with storage.name_scope("rpn"):`` are named ``"rpn/<name>"``."""
        old_prefix = self._current_prefix
        self._current_prefix = name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._current_prefix = old_prefix

    def clear_images(self) -> None:
        """Forget the images put so far: writers call it after writing them."""
        self._vis_data = []

    def clear_histograms(self) -> None:
        """Forget the histograms put so far: writers call it after writing them."""
        self._histograms = []
