"""Keep freed activation memory in the process instead of handing it back to the kernel.

glibc's malloc serves blocks above its mmap threshold with a fresh ``mmap`` and unmaps them on free;
the threshold starts at 128 KiB and only creeps up as blocks are freed. A Mask R-CNN inference at
800x1067 allocates hundreds of activations of 1-50 MB, so a new process maps them again on every
forward pass and takes one page fault per 4 KiB page on first touch: ~300,000-600,000 faults per
image on the bench machine, 20-25% of the wall time (bench/README.md). Fixing the mmap threshold at
32 MB (glibc's own ceiling) and not trimming the heap keeps those blocks in malloc's heap, where the
next forward pass reuses them; the few bigger blocks (a stride-4 map, the pasted masks) are still
mapped fresh and returned, so they cannot fragment the heap.

The price is memory that stays with the process: freed activations are not returned between
inferences, and the heap's fragmentation adds to the peak (~+80 MB on the bench model with images of
varying sizes, bench/README.md)::

    from det.core.allocator import retain_freed_memory
    retain_freed_memory()        # True when applied (glibc), False elsewhere or when opted out

It is process-wide, so det only applies it where det owns the process's inference loop:
:class:`~det.core.predictor.DefaultPredictor`, :func:`~det.core.fast.fast_mode` and the ``det``
commands, through :func:`retain_freed_memory_where_chosen`, and only where the machine's
:func:`det.core.machine.inference_choices` keep freed memory (measured per machine kind, never
slower than glibc's default there). ``DET_KEEP_FREED_MEMORY=0`` in the environment turns it off
(lower peak, slower), ``=1`` on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

from det.core.machine import KEEP_FREED_MEMORY_ENV as OPT_OUT_ENV

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 1 << 30

_OFF = ("0", "false", "no", "off")

_applied = False


def retain_freed_memory() -> bool:
    """Fix glibc's mmap threshold at 32 MB and stop heap trimming, once per process; True if in effect.

    A no-op returning False on non-glibc systems (macOS, Windows, musl) and when
    ``DET_KEEP_FREED_MEMORY=0``.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(OPT_OUT_ENV, "").strip().lower() in _OFF:
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
    if not mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) or not mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD):
        return False
    _applied = True
    return True


def retain_freed_memory_where_chosen() -> bool:
    """What DefaultPredictor, fast mode and the det commands call: :func:`retain_freed_memory` where
    :func:`det.core.machine.inference_choices` keeps freed memory on this machine; True if in effect.

    ``DET_KEEP_FREED_MEMORY=1`` chooses it on any machine, ``=0`` on none.
    """
    from det.core.machine import inference_choices

    return inference_choices().retain_freed_memory and retain_freed_memory()


__all__ = ["OPT_OUT_ENV", "retain_freed_memory", "retain_freed_memory_where_chosen"]
