"""Logging for training runs (detectron2's ``utils.logger``): ``setup_logger``, rate-limited
logging from a call site (``log_first_n``, ``log_every_n``, ``log_every_n_seconds``) and
``create_small_table``.

    log_every_n(logging.INFO, f"loss {loss:.3f}", n=20)   # every 20th call from this line
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "create_small_table",
    "log_every_n",
    "log_every_n_seconds",
    "log_first_n",
    "pipe_table",
    "setup_logger",
]

_CONFIGURED: set[tuple[str, str | None, int, bool, str]] = set()


_GREEN, _RED, _BLINK, _UNDERLINE, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[5m", "\x1b[4m", "\x1b[0m"


class _ColorfulFormatter(logging.Formatter):
    """The stdout format of a colored ``setup_logger``: the ``[time name]:`` prefix in green,
    WARNING / ERROR (red, blinking; ERROR also underlined) in front of warnings and errors, and
    the logger's root name shortened to ``abbrev_name`` ("" drops it)."""

    def __init__(self, *, root_name: str, abbrev_name: str) -> None:
        super().__init__(f"{_GREEN}[%(asctime)s %(name)s]: {_RESET}%(message)s", datefmt="%m/%d %H:%M:%S")
        self._root_name = root_name + "."
        self._abbrev_name = abbrev_name + "." if abbrev_name else ""

    def formatMessage(self, record: logging.LogRecord) -> str:
        # the shortened name is for this handler only: other handlers see the record unchanged
        original = record.name
        record.name = original.replace(self._root_name, self._abbrev_name)
        try:
            log = super().formatMessage(record)
        finally:
            record.name = original
        if record.levelno == logging.WARNING:
            return f"{_RED}{_BLINK}WARNING{_RESET} {log}"
        if record.levelno >= logging.ERROR:
            return f"{_RED}{_BLINK}{_UNDERLINE}ERROR{_RESET} {log}"
        return log


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stdout`` as it is when a record is emitted, not as it was at set-up: a
    later redirection (``contextlib.redirect_stdout``, a notebook, pytest's capture) is followed,
    and a stream closed since then never receives a line."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__/setStream assign it; stdout wins
        pass


def setup_logger(output: str | os.PathLike | None = None, distributed_rank: int = 0, *,
                 color: bool | None = None, name: str = "det", abbrev_name: str | None = None,
                 level: int = logging.INFO) -> logging.Logger:
    """Log ``name`` (and its children) at INFO: to stdout on rank 0, and to ``output`` (a file, or
    a folder that gets ``log.txt``; other ranks write ``log.txt.rank<N>``). Idempotent.

    ``color`` (detectron2's keyword): stdout lines in colour, the prefix green and warnings/errors
    marked in red, with the logger names' root ``name`` shortened to ``abbrev_name`` in them
    (default: ``"d2"`` for ``name="detectron2"``, else ``name`` itself; ``""`` drops it). Default
    None: colour when stdout is a terminal (detectron2 always colours by default; det keeps
    escape codes out of redirected logs). The file log is never coloured nor abbreviated.

        setup_logger("output/", comm.get_rank())
        setup_logger(name="detectron2", color=True)   # "[12/07 10:00:00 d2.engine.hooks]: ..."

    The default ``name="det"`` also sets up ``"detectron2"``, the logger detectron2's scripts write
    their own results to (``logging.getLogger("detectron2")``; det's library code logs under
    ``"det"``): ``setup_logger()`` in such a script shows both, as it does with detectron2.
    """
    if name == "det":
        setup_logger(output, distributed_rank, color=color, name="detectron2", level=level)
    if abbrev_name is None:
        abbrev_name = "d2" if name == "detectron2" else name
    if color is None:
        color = bool(getattr(sys.stdout, "isatty", lambda: False)())
    key = (name, os.fspath(output) if output is not None else None, distributed_rank, bool(color), abbrev_name)
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    if key in _CONFIGURED:
        return logger
    _CONFIGURED.add(key)
    formatter = logging.Formatter("[%(asctime)s %(name)s]: %(message)s", datefmt="%m/%d %H:%M:%S")
    if distributed_rank == 0 and not any(getattr(h, "_det_stdout", False) for h in logger.handlers):
        ch = _StdoutHandler()
        ch._det_stdout = True  # type: ignore[attr-defined]
        ch.setFormatter(_ColorfulFormatter(root_name=name, abbrev_name=abbrev_name) if color else formatter)
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


_CALL_COUNTS: Counter = Counter()
_LAST_LOGGED: dict[Any, float] = {}


def _caller(depth: int = 2) -> tuple[str, tuple[str, int, str]]:
    """The module name and (file, line, function) of the code that called our caller."""
    frame = sys._getframe(depth)
    try:
        code = frame.f_code
        module = frame.f_globals.get("__name__", "__main__")
        return (module if module != "__main__" else "det"), (code.co_filename, frame.f_lineno, code.co_name)
    finally:
        del frame


def log_first_n(lvl: int, msg: str, n: int = 1, *, name: str | None = None,
                key: str | Sequence[str] = "caller") -> None:
    """Log ``msg`` only the first ``n`` times for its key: ``"caller"`` (this call site),
    ``"message"`` (this text) or both (``("caller", "message")``). ``name`` is the logger's,
    by default the calling module's."""
    keys = (key,) if isinstance(key, str) else tuple(key)
    if not keys or set(keys) - {"caller", "message"}:
        raise ValueError(f"log_first_n: key must be 'caller', 'message' or both, got {key!r}")
    module, site = _caller()
    hash_key: tuple = ()
    if "caller" in keys:
        hash_key += site
    if "message" in keys:
        hash_key += (msg,)
    _CALL_COUNTS[hash_key] += 1
    if _CALL_COUNTS[hash_key] <= n:
        logging.getLogger(name or module).log(lvl, msg)


def log_every_n(lvl: int, msg: str, n: int = 1, *, name: str | None = None) -> None:
    """Log ``msg`` on the 1st, (n+1)th, (2n+1)th ... call from this call site."""
    module, site = _caller()
    _CALL_COUNTS[site] += 1
    if n == 1 or _CALL_COUNTS[site] % n == 1:
        logging.getLogger(name or module).log(lvl, msg)


def log_every_n_seconds(lvl: int, msg: str, n: float = 1, *, name: str | None = None) -> None:
    """Log ``msg`` at most once every ``n`` seconds from this call site."""
    module, site = _caller()
    last = _LAST_LOGGED.get(site)
    now = time.time()
    if last is None or now - last >= n:
        logging.getLogger(name or module).log(lvl, msg)
        _LAST_LOGGED[site] = now


def pipe_table(rows: Sequence[Sequence[str]], headers: Sequence[str], *, align: str = "left") -> str:
    """A markdown ("pipe") table of string cells, columns ``align``ed "left" or "center"."""
    if align not in ("left", "center"):
        raise ValueError(f"pipe_table: align must be 'left' or 'center', got {align!r}")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = (c.center(w) if align == "center" else c.ljust(w) for c, w in zip(cells, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(":" + "-" * w + (":" if align == "center" else "-") for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def create_small_table(small_dict: Mapping[str, Any]) -> str:
    """A one-row table of a few named values (floats with 3 decimals), as detectron2 logs
    evaluation results::

        |   AP   |  AP50  |
        |:------:|:------:|
        | 54.190 | 80.000 |
    """
    if not small_dict:
        raise ValueError("create_small_table needs at least one value")
    cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in small_dict.values()]
    return pipe_table([cells], [str(k) for k in small_dict], align="center")
