"""Logging set-up for training runs (detectron2's ``utils.logger.setup_logger``)."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["setup_logger"]

_CONFIGURED: set[tuple[str, str | None, int]] = set()


def setup_logger(output: str | os.PathLike | None = None, distributed_rank: int = 0, *,
                 name: str = "det", level: int = logging.INFO) -> logging.Logger:
    """Log ``name`` (and its children) at INFO: to stdout on rank 0, and to ``output`` (a file, or
    a folder that gets ``log.txt``; other ranks write ``log.txt.rank<N>``). Idempotent.

        setup_logger("output/", comm.get_rank())
    """
    key = (name, os.fspath(output) if output is not None else None, distributed_rank)
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    if key in _CONFIGURED:
        return logger
    _CONFIGURED.add(key)
    formatter = logging.Formatter("[%(asctime)s %(name)s]: %(message)s", datefmt="%m/%d %H:%M:%S")
    if distributed_rank == 0 and not any(getattr(h, "_det_stdout", False) for h in logger.handlers):
        ch = logging.StreamHandler(stream=sys.stdout)
        ch._det_stdout = True  # type: ignore[attr-defined]
        ch.setFormatter(formatter)
        logger.addHandler(ch)
    if output is not None:
        output = os.fspath(output)
        filename = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = f"{filename}.rank{distributed_rank}"
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        fh = logging.FileHandler(filename)
        fh.setFormatter(formatter)
        logger.addHandler(fh)
    return logger
