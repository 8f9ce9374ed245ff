"""Printing and checking evaluation results (detectron2's ``evaluation.testing``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["flatten_results_dict", "print_csv_format", "verify_results"]

logger = logging.getLogger(__name__)


def print_csv_format(results: Mapping[str, Any]) -> str:
    """Log ``{task: {metric: value}}`` as copy-pastable CSV lines; returns the text."""
    if not isinstance(results, Mapping) or not len(results):
        raise ValueError(
            f"print_csv_format needs a non-empty {{task: {{metric: value}}}} dict, got {results!r}"
        )
    lines = []
    for task, res in results.items():
        if isinstance(res, Mapping):
            important_res = [(k, v) for k, v in res.items() if "-" not in k]
            lines.append(f"copypaste: Task: {task}")
            lines.append("copypaste: " + ",".join(k[0] for k in important_res))
            lines.append("copypaste: " + ",".join(f"{k[1]:.4f}" for k in important_res))
        else:
            lines.append(f"copypaste: {task}={res}")
    text = "\n".join(lines)
    logger.info("\n%s", text)
    return text


def verify_results(cfg: Any, results: Mapping[str, Any]) -> bool:
    """Check ``results`` against ``cfg.TEST.EXPECTED_RESULTS`` ([[task, metric, value, tol]])."""
    expected_results = cfg.TEST.EXPECTED_RESULTS
    if not len(expected_results):
        return True
    ok = True
    for task, metric, expected, tolerance in expected_results:
        actual = results[task].get(metric, None)
        if actual is None or not np.isfinite(actual):
            ok = False
            continue
        if abs(actual - expected) > tolerance:
            ok = False
    if not ok:
        logger.error("Result verification failed! Expected %s, got %s", expected_results, results)
    return ok


def flatten_results_dict(results: Mapping[str, Any]) -> dict[str, Any]:
    """``{"bbox": {"AP": 1}}`` -> ``{"bbox/AP": 1}`` (for metric writers)."""
    r: dict[str, Any] = {}
    for k, v in results.items():
        if isinstance(v, Mapping):
            for kk, vv in flatten_results_dict(v).items():
                r[k + "/" + kk] = vv
        else:
            r[k] = v
    return r
