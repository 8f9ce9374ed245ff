"""Data pipeline, training loop, evaluation, visualization and commands for det."""

from det.engine.version import __version__

__all__ = ["__version__"]
