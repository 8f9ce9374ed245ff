"""Errors raised by det.checkpoint.

Every error names the file (or URL) it is about, so a failing ``cfg.MODEL.WEIGHTS`` is found
without a debugger. They subclass ValueError because the cause is always the input, never det.
"""

from __future__ import annotations

__all__ = ["CheckpointLoadError", "IncompatibleCheckpointError", "UnsafeCheckpointError"]


class CheckpointLoadError(ValueError):
    """A checkpoint file could not be read: missing, truncated, corrupt or of an unknown layout.

    Raised before the model is touched, so the model keeps the weights it had.
    """


class UnsafeCheckpointError(CheckpointLoadError):
    """A pickle asked to import something other than plain arrays; nothing of it was executed."""


class IncompatibleCheckpointError(ValueError):
    """Strict loading found missing, unexpected or wrongly shaped keys; the model was not changed."""
