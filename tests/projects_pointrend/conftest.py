"""Fixtures of det-pointrend's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def without_pointrend(monkeypatch):
    """det-pointrend installed but disabled (DET_DISABLE_PLUGINS), as if it were not installed."""
    from det.core import plugins

    monkeypatch.setenv(plugins.DISABLE_ENV, "det-pointrend")
    plugins.reset()
    yield
    monkeypatch.delenv(plugins.DISABLE_ENV)
    plugins.reset()
