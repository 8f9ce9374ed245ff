"""det.engine.train.logger: rate-limited logging per call site, and detectron2's small result table."""

from __future__ import annotations

import logging

import pytest

from det.engine.train.logger import (
    create_small_table,
    log_every_n,
    log_every_n_seconds,
    log_first_n,
    pipe_table,
)


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_log_first_n_by_caller_and_by_message(caplog):
    caplog.set_level(logging.INFO)
    for i in range(5):
        log_first_n(logging.INFO, f"caller {i}", n=2, name="det.test")
    assert _messages(caplog) == ["caller 0", "caller 1"]
    caplog.clear()
    for text in ["a", "b", "a", "a"]:
        log_first_n(logging.INFO, text, n=1, name="det.test", key="message")
    assert _messages(caplog) == ["a", "b"]
    with pytest.raises(ValueError, match="key must be 'caller', 'message' or both"):
        log_first_n(logging.INFO, "x", key="line")


def test_log_every_n_logs_the_first_and_every_nth_call_of_a_site(caplog):
    caplog.set_level(logging.INFO)
    for i in range(7):
        log_every_n(logging.INFO, f"step {i}", n=3, name="det.test")
    assert _messages(caplog) == ["step 0", "step 3", "step 6"]
    assert {r.name for r in caplog.records} == {"det.test"}


def test_log_every_n_seconds_limits_by_time(caplog, monkeypatch):
    import det.engine.train.logger as logger_module

    now = [1000.0]
    monkeypatch.setattr(logger_module.time, "time", lambda: now[0])
    caplog.set_level(logging.INFO)
    for step, t in enumerate([1000.0, 1000.5, 1001.0, 1001.2, 1003.0]):
        now[0] = t
        log_every_n_seconds(logging.INFO, f"t{step}", n=1, name="det.test")
    assert _messages(caplog) == ["t0", "t2", "t4"]


def test_default_logger_is_the_calling_module(caplog):
    caplog.set_level(logging.INFO)
    log_first_n(logging.INFO, "from the test module")
    assert caplog.records[0].name == __name__


def test_create_small_table_is_detectron2s_centred_pipe_table():
    assert create_small_table({"AP": 54.19, "AP50": 80.0, "n": 3}) == (
        "|   AP   |  AP50  | n |\n"
        "|:------:|:------:|:-:|\n"
        "| 54.190 | 80.000 | 3 |"
    )
    assert pipe_table([["a", "bb"]], ["x", "y"]) == "| x | y  |\n|:--|:---|\n| a | bb |"
    with pytest.raises(ValueError, match="at least one value"):
        create_small_table({})
