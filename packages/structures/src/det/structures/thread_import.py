"""Import a module on a thread of its own, so its import cannot keep the caller's frames alive.

Importing ``torchvision.ops`` calls ``torch.fx.wrap``, whose frame ends up referring to itself: a
reference cycle that keeps every frame below it on the stack, and their tensors, alive until the
cyclic garbage collector runs. Imported from inside a forward pass (the first NMS, the first mask
target), that pinned the pass's activations, ~190 MB for Mask R-CNN at 800x1067, past its end. On
a fresh thread the cycle holds only that thread's frames. det-core imports this too (det-structures
is the one distribution every other depends on), so the rule lives here once.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

__all__ = ["import_on_own_thread"]


def import_on_own_thread(name: str) -> ModuleType:
    """``importlib.import_module(name)``, run on a new thread; its exception is re-raised here."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    failure: list[BaseException] = []

    def load() -> None:
        try:
            importlib.import_module(name)
        except BaseException as e:  # re-raised on the caller's thread
            failure.append(e)

    loader = threading.Thread(target=load, name=f"det-import-{name}")
    loader.start()
    loader.join()
    if failure:
        raise failure[0]
    return sys.modules[name]
