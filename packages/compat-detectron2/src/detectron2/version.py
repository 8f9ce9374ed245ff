"""Versions: detectron2's API version this namespace follows, and this distribution's own."""

__version__ = "0.6"
"""detectron2's version whose import paths and behaviour det-compat-detectron2 follows (what
``detectron2.__version__`` reports, for scripts that compare it)."""

det_compat_version = "0.1.0"
"""The version of the det-compat-detectron2 distribution."""
