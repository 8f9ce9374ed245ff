"""What every kernel wrapper checks before launching: where the tensors live and how they are laid out."""

from __future__ import annotations

import torch
import triton

INTERPRETED: bool = bool(triton.knobs.runtime.interpret)
"""True when triton was set to run kernels in its interpreter (``TRITON_INTERPRET=1`` before the
kernels were defined). Then kernels take CPU tensors; otherwise they need CUDA tensors."""


def check_device(fn: str, *tensors: torch.Tensor) -> torch.device:
    """The one device of ``tensors``, if the kernels can run there; a clear error otherwise."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(
            f"det.ops_cuda.{fn}: all tensors must be on one device, got {sorted(map(str, devices))}"
        )
    device = devices.pop()
    if device.type == "cuda":
        return device
    if device.type == "cpu" and INTERPRETED:
        return device
    raise ValueError(
        f"det.ops_cuda.{fn}: Triton kernels need CUDA tensors, got tensors on {device}. Use "
        "det.core.layers (it dispatches to the reference implementation off CUDA), or set "
        "TRITON_INTERPRET=1 before importing det.ops_cuda to run the kernels on the CPU in Triton's "
        "interpreter (slow; for tests)."
    )


def compute_dtype(fn: str, t: torch.Tensor) -> torch.dtype:
    """float32 and float64 are computed as they are; half precisions in float32 (like detectron2)."""
    if t.dtype in (torch.float32, torch.float64):
        return t.dtype
    if t.dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    raise TypeError(f"det.ops_cuda.{fn}: expected a floating point tensor, got {t.dtype}")


__all__ = ["INTERPRETED", "check_device", "compute_dtype"]
