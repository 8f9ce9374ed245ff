"""The evaluator protocol and the loop that runs a model over a dataset."""

from __future__ import annotations

import datetime
import logging
import time
from collections import OrderedDict, abc
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from det.data import comm

__all__ = ["DatasetEvaluator", "DatasetEvaluators", "inference_context", "inference_on_dataset"]

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """Accumulates (inputs, outputs) pairs over a dataset and turns them into metrics.

    Call order: ``reset()`` once, ``process(inputs, outputs)`` per batch, ``evaluate()`` once at
    the end, which returns ``{task: {metric: value}}`` (or None on non-main ranks)::

        evaluator.reset()
        for inputs in loader: evaluator.process(inputs, model(inputs))
        results = evaluator.evaluate()
    """

    def reset(self) -> None:
        """Prepare for a new round of evaluation."""

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        """Take one batch of model inputs and the corresponding model outputs."""

    def evaluate(self) -> dict | None:
        """Metrics of everything processed since :meth:`reset`."""
        return None


class DatasetEvaluators(DatasetEvaluator):
    """Several evaluators run side by side; their result dicts are merged (task names must not
    collide).

        evaluator = DatasetEvaluators([COCOEvaluator("shapes_val"), SemSegEvaluator("seg_val")])
    """

    def __init__(self, evaluators: list[DatasetEvaluator]) -> None:
        super().__init__()
        self._evaluators = list(evaluators)

    def reset(self) -> None:
        for evaluator in self._evaluators:
            evaluator.reset()

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for evaluator in self._evaluators:
            evaluator.process(inputs, outputs)

    def evaluate(self) -> OrderedDict:
        results: OrderedDict = OrderedDict()
        for evaluator in self._evaluators:
            result = evaluator.evaluate()
            if comm.is_main_process() and result is not None:
                for k, v in result.items():
                    if k in results:
                        raise ValueError(f"Different evaluators produce results with the same key {k!r}")
                    results[k] = v
        return results


@contextmanager
def inference_context(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the block and restore its previous mode afterwards."""
    training_mode = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training_mode)


def _len_or_none(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def inference_on_dataset(
    model: Any,
    data_loader: Any,
    evaluator: DatasetEvaluator | list[DatasetEvaluator] | None,
    callbacks: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict:
    """Run ``model`` on every batch of ``data_loader`` (in eval mode, without gradients), feed the
    evaluator, log throughput, and return ``evaluator.evaluate()`` (``{}`` when it returns None).

    ``callbacks`` may hold ``on_start``, ``before_inference``, ``after_inference``, ``on_end``
    (zero-argument callables). ``progress`` shows a tqdm bar on the main process.

        results = inference_on_dataset(model, build_detection_test_loader(cfg, "shapes_val"),
                                       COCOEvaluator("shapes_val"))
    """
    num_devices = comm.get_world_size()
    total = _len_or_none(data_loader)
    logger.info("Start inference on %s batches", total if total is not None else "?")

    if evaluator is None:
        evaluator = DatasetEvaluators([])
    if isinstance(evaluator, abc.MutableSequence):
        evaluator = DatasetEvaluators(evaluator)
    if not isinstance(evaluator, DatasetEvaluator) and not all(
        hasattr(evaluator, m) for m in ("reset", "process", "evaluate")
    ):
        raise TypeError(
            f"evaluator must be a DatasetEvaluator (or a list of them), got {type(evaluator).__name__}"
        )
    evaluator.reset()
    callbacks = callbacks or {}

    num_warmup = min(5, total - 1) if total else 0
    start_time = time.perf_counter()
    total_data_time = total_compute_time = total_eval_time = 0.0
    idx = -1
    with ExitStack() as stack:
        if isinstance(model, nn.Module):
            stack.enter_context(inference_context(model))
        stack.enter_context(torch.no_grad())
        bar = stack.enter_context(
            tqdm(
                total=total,
                desc="inference",
                unit="batch",
                leave=False,
                disable=not (progress and comm.is_main_process()),
            )
        )
        if "on_start" in callbacks:
            callbacks["on_start"]()
        start_data_time = time.perf_counter()
        for idx, inputs in enumerate(data_loader):
            total_data_time += time.perf_counter() - start_data_time
            if idx == num_warmup:
                # The first batches pay for lazy initialisation; leave them out of the rates.
                start_time = time.perf_counter()
                total_data_time = total_compute_time = total_eval_time = 0.0

            start_compute_time = time.perf_counter()
            if "before_inference" in callbacks:
                callbacks["before_inference"]()
            outputs = model(inputs)
            if "after_inference" in callbacks:
                callbacks["after_inference"]()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            total_compute_time += time.perf_counter() - start_compute_time

            start_eval_time = time.perf_counter()
            evaluator.process(inputs, outputs)
            total_eval_time += time.perf_counter() - start_eval_time

            iters_after_start = idx + 1 - num_warmup * int(idx >= num_warmup)
            compute_per_iter = total_compute_time / max(iters_after_start, 1)
            bar.set_postfix(compute=f"{compute_per_iter:.3f}s/it", refresh=False)
            bar.update(1)
            start_data_time = time.perf_counter()
        if "on_end" in callbacks:
            callbacks["on_end"]()

    num_batches = idx + 1
    total_time = time.perf_counter() - start_time
    timed = max(num_batches - num_warmup, 1)
    logger.info(
        "Total inference time: %s (%.6f s / iter per device, on %d devices)",
        str(datetime.timedelta(seconds=int(total_time))),
        total_time / timed,
        num_devices,
    )
    logger.info(
        "Total inference pure compute time: %s (%.6f s / iter per device, on %d devices)",
        str(datetime.timedelta(seconds=int(total_compute_time))),
        total_compute_time / timed,
        num_devices,
    )
    results = evaluator.evaluate()
    # An evaluator returns None on non-main ranks; callers can always index the result.
    if results is None:
        results = {}
    return results
