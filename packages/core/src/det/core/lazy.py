"""Lazily imported public names for a package ``__init__`` (PEP 562), so that importing a det
package (as ``det plugins`` does for every plugin) never pulls in torch.

Invariant: a name is imported from its module on first attribute access and then stored on the
package, so later accesses are plain attribute lookups::

    _LAZY = {"RPN": "det.heads.rpn.rpn", "find_top_rpn_proposals": "det.heads.rpn.proposal_utils"}
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY)

A name whose module is the package's own submodule of that name (``"hooks":
"det.engine.train.hooks"``) is that submodule.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` for ``names`` (public name ->
    module that defines it)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module)
        value = imported if module == f"{package}.{name}" else getattr(imported, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
