"""detectron2's import paths, served by det (det-compat-detectron2).

    from detectron2.config import get_cfg, LazyConfig, instantiate
    from detectron2.modeling import build_model, ROI_HEADS_REGISTRY
    from detectron2.engine import DefaultTrainer, DefaultPredictor

Every name is det's own object under detectron2's name (``detectron2.modeling.roi_heads.
StandardROIHeads is det.heads.roi.StandardROIHeads``): registries are det's registries, so a class
registered through them is what det's builders find. A detectron2 name det does not provide
raises an ImportError that says so. This distribution cannot be installed together with the real
detectron2 (both are the top-level package ``detectron2``): importing it then fails with a message.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import Any

from detectron2.version import __version__, det_compat_version


def _refuse_real_detectron2() -> None:
    try:
        real = metadata.distribution("detectron2")
    except metadata.PackageNotFoundError:
        real = None
    if real is not None:
        raise ImportError(
            f"Both det-compat-detectron2 and the real detectron2 {real.version} are installed; they are the same "
            "top-level package 'detectron2' and cannot work together. Uninstall one: "
            "`pip uninstall detectron2` to use det through detectron2's names, or "
            "`pip uninstall det-compat-detectron2` to use the real detectron2.")
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        candidate = os.path.join(os.path.abspath(entry or os.getcwd()), "detectron2")
        # a detectron2 checkout (it has a modeling/ folder; ours has none), not this package
        if (os.path.abspath(candidate) != here and os.path.isfile(os.path.join(candidate, "__init__.py"))
                and os.path.isdir(os.path.join(candidate, "modeling"))):
            raise ImportError(
                f"A real detectron2 source tree is importable at {candidate} next to det-compat-detectron2 "
                f"({here}); they cannot work together. Remove one from sys.path (PYTHONPATH) or uninstall "
                "det-compat-detectron2.")


_refuse_real_detectron2()

from detectron2 import _namespace  # noqa: E402  (after the check: nothing is set up when refused)

_namespace.install()


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(f"module 'detectron2' has no attribute {name!r}")
    value = _namespace.resolve("detectron2", name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_namespace.provided_names("detectron2", importing=False)})


__all__ = ["__version__", "det_compat_version"]
