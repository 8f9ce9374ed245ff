"""Region proposal networks for det."""

from det.heads.rpn.version import __version__

__all__ = ["__version__"]
