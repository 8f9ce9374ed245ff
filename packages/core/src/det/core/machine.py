"""What this machine's CPU can do, read once: the facts that speed choices, test selection and
benchmark reports are based on.

Invariant: every capability is the *effective* one — what the kernels torch will run here can use,
after the emulation caps ``ATEN_CPU_CAPABILITY`` (ATen's vectorised kernels) and
``ONEDNN_MAX_CPU_ISA`` (oneDNN's convolutions) — so a machine told to behave like an AVX2-only one
reports itself as one::

    from det.core.machine import machine_info
    info = machine_info()
    info.bf16, info.capability      # (False, "avx2") on an AVX2-only CPU
    print(info.describe())          # "AMD EPYC, 2 cpus, x86_64, avx2 (ATen AVX2, oneDNN default)"

aarch64 and other architectures report ``capability == "default"`` unless torch says otherwise,
so every ISA-specific path behind these checks degrades to the portable one.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

__all__ = ["MachineInfo", "machine_info"]

# oneDNN's ISA names in increasing order (ONEDNN_MAX_CPU_ISA values, case-insensitive), as its
# documentation lists them; a cap below AVX512_CORE means oneDNN runs no AVX-512 code.
_ONEDNN_ISA_ORDER = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX10_1_512",
    "AVX512_CORE_FP16",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX512_CORE_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
    "DEFAULT",
    "ALL",
)
_AVX512_FOR_ONEDNN = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})


@dataclass(frozen=True)
class MachineInfo:
    """The CPU facts det's choices depend on (effective, after emulation caps)."""

    cpu_model: str
    arch: str
    cpus: int
    avx2: bool
    avx512: bool
    bf16: bool
    amx: bool
    aten_capability: str
    onednn_max_isa: str

    @property
    def capability(self) -> str:
        """The most capable level of "amx", "avx512_bf16", "avx512", "avx2", "default"."""
        if self.amx:
            return "amx"
        if self.bf16 and self.avx512:
            return "avx512_bf16"
        if self.avx512:
            return "avx512"
        if self.avx2:
            return "avx2"
        return "default"

    def describe(self) -> str:
        """One line for logs, benchmark output and summaries."""
        return (
            f"{self.cpu_model}, {self.cpus} cpus, {self.arch}, {self.capability} "
            f"(ATen {self.aten_capability}, oneDNN {self.onednn_max_isa})"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "cpu_model": self.cpu_model,
            "arch": self.arch,
            "cpus": self.cpus,
            "capability": self.capability,
            "avx2": self.avx2,
            "avx512": self.avx512,
            "bf16": self.bf16,
            "amx": self.amx,
            "aten_capability": self.aten_capability,
            "onednn_max_isa": self.onednn_max_isa,
        }


def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset[str]()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = frozenset(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or "unknown cpu", flags


def _onednn_allows(isa: str, cap: str) -> bool:
    """Whether oneDNN under ``ONEDNN_MAX_CPU_ISA=cap`` may use ``isa``."""
    cap = cap.upper()
    if cap not in _ONEDNN_ISA_ORDER:
        return True  # oneDNN ignores values it does not know
    return _ONEDNN_ISA_ORDER.index(isa) <= _ONEDNN_ISA_ORDER.index(cap)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def machine_info() -> MachineInfo:
    """This machine's effective CPU capabilities (read once per process)."""
    import torch

    model, flags = _cpuinfo()
    aten = str(torch.backends.cpu.get_cpu_capability())  # "AVX512", "AVX2", "DEFAULT", "SVE256", ...
    onednn_cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "DEFAULT"
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    avx2 = x86 and "avx2" in flags and aten.upper() in ("AVX2", "AVX512") and _onednn_allows("AVX2", onednn_cap)
    avx512 = (
        x86
        and _AVX512_FOR_ONEDNN <= flags
        and aten.upper() == "AVX512"
        and _onednn_allows("AVX512_CORE", onednn_cap)
    )
    try:
        mkldnn_bf16 = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        mkldnn_bf16 = False
    # oneDNN's bf16 convolutions need AVX512-BF16 (or AMX), or AVX-NE-CONVERT (its AVX2_VNNI_2 level).
    bf16 = mkldnn_bf16 and (
        ("avx512_bf16" in flags and avx512 and _onednn_allows("AVX512_CORE_BF16", onednn_cap))
        or ("avx_ne_convert" in flags and avx2 and _onednn_allows("AVX2_VNNI_2", onednn_cap))
    )
    amx = bf16 and avx512 and {"amx_bf16", "amx_tile"} <= flags and _onednn_allows("AVX512_CORE_AMX", onednn_cap)
    return MachineInfo(
        cpu_model=model,
        arch=platform.machine(),
        cpus=_cpu_count(),
        avx2=avx2,
        avx512=avx512,
        bf16=bf16,
        amx=amx,
        aten_capability=aten,
        onednn_max_isa=onednn_cap,
    )
