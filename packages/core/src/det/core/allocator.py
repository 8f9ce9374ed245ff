"""Keep freed activation memory in the process instead of handing it back to the kernel.

glibc's malloc serves every block above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
unmaps it on free. A Mask R-CNN inference at 800x1067 allocates activations of 10-60 MB each, so every
forward pass maps them again and takes one page fault per 4 KiB page on first touch: ~600,000 faults
and ~1 s of kernel time per image on the bench machine (bench/README.md), ~25% of the wall time.
Raising the thresholds keeps those blocks in malloc's heap, where the next forward reuses them.
The peak memory is unchanged (the same blocks are live at the same time); what changes is that the
process keeps its peak footprint between inferences instead of returning it, as a caching allocator
does::

    from det.core.allocator import retain_freed_memory
    retain_freed_memory()        # True when applied (glibc), False elsewhere or when opted out

It is process-wide, so det only calls it where det owns the process's inference loop:
:class:`~det.core.predictor.DefaultPredictor`, :func:`~det.core.fast.fast_mode` and the ``det``
commands. ``DET_KEEP_FREED_MEMORY=0`` in the environment turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

OPT_OUT_ENV = "DET_KEEP_FREED_MEMORY"

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # blocks below 1 GiB come from (and go back to) the heap
_FALLBACK_MMAP_THRESHOLD = 32 << 20  # glibc builds that cap the threshold accept this

_applied = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they are in effect.

    A no-op returning False on non-glibc systems (macOS, Windows, musl) and when
    ``DET_KEEP_FREED_MEMORY=0``.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(OPT_OUT_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not mallopt(_M_MMAP_THRESHOLD, _THRESHOLD) and not mallopt(_M_MMAP_THRESHOLD, _FALLBACK_MMAP_THRESHOLD):
        return False
    mallopt(_M_TRIM_THRESHOLD, _THRESHOLD)
    _applied = True
    return True


__all__ = ["OPT_OUT_ENV", "retain_freed_memory"]
