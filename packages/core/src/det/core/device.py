"""The device a config asks for (``MODEL.DEVICE``), checked against this machine: the one rule.

detectron2's configs, and so every model-zoo YAML, default to ``MODEL.DEVICE: cuda``. On a machine
without CUDA (no NVIDIA driver or GPU, or a CPU-only PyTorch build), det runs such a config on the
CPU and says so once, in one line that names the key::

    MODEL.DEVICE is 'cuda' but CUDA is not available on this machine; running on the CPU (set MODEL.DEVICE cpu to choose it and silence this)

Anything else that cannot work is an error naming the key and value: a device string PyTorch does
not parse, or ``cuda:N`` where this machine has fewer than N+1 GPUs. Where the device exists,
nothing changes: ``cuda`` (no index) stays ``cuda``, i.e. the current device, which is what each
process of a multi-GPU run selects. :func:`~det.core.modeling.build.build_model`,
:class:`~det.core.predictor.DefaultPredictor` and the ``det`` commands apply this rule::

    from det.core.device import resolve_device
    device = resolve_device(cfg.MODEL.DEVICE)      # torch.device("cpu") on a machine without CUDA

Why run rather than stop: a stock config on a laptop gives a result instead of PyTorch's "Found no
NVIDIA driver" traceback, the warning says which key decided it, and a machine with the device
behaves exactly as before. Inside a mode that only names devices (PyTorch's ``FakeTensorMode``,
:class:`det.core.emulated_cuda.EmulatedCUDA`) the asked-for device is kept: no GPU is needed there.
"""

from __future__ import annotations

import logging
import threading

import torch

from det.core.emulated_cuda import emulation_active

__all__ = ["device_available", "resolve_device"]

logger = logging.getLogger(__name__)

_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()

# device types whose absence falls back to the CPU, and how to ask whether they exist
_ACCELERATORS = {
    "cuda": lambda: torch.cuda.is_available(),
    "mps": lambda: torch.backends.mps.is_available(),
    "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available(),
}
_COUNTS = {
    "cuda": lambda: torch.cuda.device_count(),
    "xpu": lambda: torch.xpu.device_count(),
}


def device_available(device: str | torch.device) -> bool:
    """True if tensors can be made on ``device`` here (its type exists, and its index if given)."""
    device = torch.device(device)
    available = _ACCELERATORS.get(device.type)
    if available is None:
        return True  # cpu, meta, and types det does not know: PyTorch decides when they are used
    if not available():
        return False
    count = _COUNTS.get(device.type)
    return device.index is None or count is None or device.index < count()


def resolve_device(device: str | torch.device, *, key: str = "MODEL.DEVICE") -> torch.device:
    """The ``torch.device`` to use for ``device``, the value of config key ``key`` (see the module
    docstring for the rule). Warns once per process per (key, value) when it falls back to the CPU.

    Raises:
        ValueError: ``device`` is not a device PyTorch knows, or names a GPU index this machine
            does not have.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"{key} is {device!r}, which is not a device PyTorch knows (use cpu, cuda, or cuda:N for the N-th GPU)"
        ) from None
    if parsed.type not in _ACCELERATORS or emulation_active():
        return parsed
    if _ACCELERATORS[parsed.type]():
        count = _COUNTS.get(parsed.type)
        if parsed.index is not None and count is not None and parsed.index >= count():
            raise ValueError(
                f"{key} is {str(device)!r} but this machine has {count()} {parsed.type.upper()} "
                f"device(s), numbered from 0; set {key} {parsed.type}:0 (or {parsed.type} for the current one)"
            )
        return parsed
    with _lock:
        first = (key, str(device)) not in _warned
        _warned.add((key, str(device)))
    if first:
        logger.warning(
            "%s is %r but %s is not available on this machine; running on the CPU (set %s cpu to "
            "choose it and silence this)",
            key, str(device), parsed.type.upper(), key,
        )
    return torch.device("cpu")
