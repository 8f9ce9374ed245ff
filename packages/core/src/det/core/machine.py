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

__all__ = ["CHOICES_ENV", "InferenceChoices", "MachineInfo", "collect_env_info", "inference_choices", "machine_info"]

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
    bf16_kernels: bool = False
    """oneDNN can run bfloat16 convolutions at all: natively (``bf16``) or emulated with AVX-512
    BW/VL/DQ (slowly). Without them (AVX2-only x86, the portable level) a bf16 convolution fails."""

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
            "bf16_kernels": self.bf16_kernels,
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
        and flags >= _AVX512_FOR_ONEDNN
        and aten.upper() == "AVX512"
        and _onednn_allows("AVX512_CORE", onednn_cap)
    )
    try:
        mkldnn_bf16 = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        mkldnn_bf16 = False
    # oneDNN's bf16 convolutions need AVX512-BF16 (or AMX), or AVX-NE-CONVERT (its AVX2_VNNI_2 level)
    # to be native; with AVX-512 BW/VL/DQ alone it emulates them. torch's own check reads the
    # hardware, not the caps: under ONEDNN_MAX_CPU_ISA=AVX2 oneDNN has no bf16 convolution at all.
    ne_convert = "avx_ne_convert" in flags and avx2 and _onednn_allows("AVX2_VNNI_2", onednn_cap)
    bf16 = mkldnn_bf16 and (
        ("avx512_bf16" in flags and avx512 and _onednn_allows("AVX512_CORE_BF16", onednn_cap)) or ne_convert
    )
    bf16_kernels = mkldnn_bf16 and (avx512 or ne_convert)
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
        bf16_kernels=bf16_kernels,
    )


CHOICES_ENV = "DET_CPU_CHOICES"
"""Environment variable overriding :func:`inference_choices`, e.g. ``channels_last=0,onednn_linear=1``."""

KEEP_FREED_MEMORY_ENV = "DET_KEEP_FREED_MEMORY"
"""det.core.allocator's switch (``0``/``1``): overrides the ``retain_freed_memory`` choice."""


@dataclass(frozen=True)
class InferenceChoices:
    """How det runs CPU inference on this machine, chosen from :func:`machine_info`.

    Invariant: a choice is on only on the kinds of machine where it was measured to be at least as
    fast as torch's plain default (bench/README.md, "Choices per machine"); every choice that
    depends on oneDNN's JIT kernels is off on the portable level (``capability == "default"``:
    aarch64, or x86 capped with ``ATEN_CPU_CAPABILITY=default``)::

        from det.core.machine import inference_choices
        inference_choices().channels_last     # eval batches NHWC?
        inference_choices().describe()        # "channels_last on, onednn_linear on, ..."
    """

    channels_last: bool
    """Eval-mode batches and per-region head inputs in NHWC (det.core.modeling.inputs.inference_layout)."""
    onednn_linear: bool
    """det.core.layers.Linear runs float32 inference on oneDNN's inner product instead of F.linear."""
    fused_conv: bool
    """Fast mode runs a convolution and its ReLU as one oneDNN op (det.core.fast)."""
    fast_bf16: bool
    """Fast mode's default precision is bfloat16 (only where the CPU computes it natively)."""
    retain_freed_memory: bool
    """DefaultPredictor, fast mode and the det commands keep freed memory (det.core.allocator)."""

    def as_dict(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in _CHOICE_NAMES}

    def describe(self) -> str:
        """One line for logs and benchmark output."""
        return ", ".join(f"{name} {'on' if on else 'off'}" for name, on in self.as_dict().items())


_CHOICE_NAMES = ("channels_last", "onednn_linear", "fused_conv", "fast_bf16", "retain_freed_memory")


_TRUE, _FALSE = ("1", "on", "true", "yes"), ("0", "off", "false", "no")


def _parse_overrides(text: str, variable: str) -> dict[str, bool]:
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip().lower()
        if not sep or name not in _CHOICE_NAMES or value not in _TRUE + _FALSE:
            if variable == KEEP_FREED_MEMORY_ENV:
                raise ValueError(f"{variable}={text.partition('=')[2]!r}: expected 0 or 1; fix or unset it")
            raise ValueError(
                f"{variable}={text!r}: {item!r} is not NAME=0 or NAME=1 with NAME one of "
                f"{', '.join(_CHOICE_NAMES)}; fix or unset the variable"
            )
        overrides[name] = value in _TRUE
    return overrides


_choices: InferenceChoices | None = None


def inference_choices() -> InferenceChoices:
    """det's CPU inference choices for this machine (read once per process; ``DET_CPU_CHOICES``
    overrides single choices, e.g. ``DET_CPU_CHOICES=channels_last=0``).

    Cached in a plain module global rather than ``functools.lru_cache``: model code calls it, and
    torch.compile/export read a global as a constant where they would trace into a cached function.
    """
    global _choices
    if _choices is None:
        _choices = _choose(machine_info())
    return _choices


def _choose(info: MachineInfo) -> InferenceChoices:
    # Measured on Mask R-CNN R50-FPN at 800x1067 (bench/README.md, "Choices per machine"):
    # - AVX-512 + AVX512-BF16 (Zen 5 class EPYC, 2026-11-24, the issue #13 profiling round, each
    #   change against the model without it): channels_last 2.14 -> 1.69 s, oneDNN
    #   linear box head 135 -> 60 ms, allocator -0.3 to -0.5 s, fast mode fp32 (folded BN + fused
    #   conv) 1.074 -> 1.055 s.
    # - AVX2 only (EPYC, 2026-12-07, bench_choices.py: DefaultPredictor in alternating processes,
    #   process CPU time at 1 thread, choice on / off): channels_last 0.95, oneDNN
    #   linear 1.00, allocator 0.95, fused conv 0.96: none is slower, so the levels agree.
    # The portable level (aarch64, ATEN_CPU_CAPABILITY=default) was not measured on its hardware:
    # it takes torch's plain path, which is what "never slower than the default" means there.
    onednn = info.capability != "default"
    choices = {
        "channels_last": onednn,
        "onednn_linear": onednn,
        "fused_conv": onednn,
        "fast_bf16": info.bf16,
        "retain_freed_memory": True,
    }
    keep = os.environ.get(KEEP_FREED_MEMORY_ENV, "").strip()
    if keep:  # det.core.allocator's own switch, older than DET_CPU_CHOICES
        choices.update(_parse_overrides(f"retain_freed_memory={keep}", KEEP_FREED_MEMORY_ENV))
    choices.update(_parse_overrides(os.environ.get(CHOICES_ENV, ""), CHOICES_ENV))
    return InferenceChoices(**choices)


def collect_env_info() -> str:
    """A table of the software and hardware a run used, for logs and bug reports (detectron2's
    ``collect_env_info``): platform, Python, numpy, every installed det distribution, PyTorch and
    how it was built, this CPU (:meth:`MachineInfo.describe`, with the emulation caps), the GPUs,
    and the libraries detectron2 code reaches for, then ``torch.__config__.show()``."""
    import sys
    from importlib import metadata

    import torch

    def version(distribution: str) -> str | None:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            return None

    rows: list[tuple[str, str]] = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("numpy", version("numpy") or "not installed"),
    ]
    det_versions = sorted(
        (d.metadata["Name"], d.version) for d in metadata.distributions()
        if (d.metadata["Name"] or "").lower().startswith("det-")
    )
    rows += [(name, f"{v} @{os.path.dirname(__file__)}" if name == "det-core" else v)
             for name, v in det_versions]
    rows += [
        ("PyTorch", f"{torch.__version__} @{os.path.dirname(torch.__file__)}"),
        ("PyTorch debug build", str(torch.version.debug)),
        ("CPU", machine_info().describe()),
        ("CPU choices", inference_choices().describe()),
    ]
    if torch.cuda.is_available():
        names: dict[str, list[str]] = {}
        for index in range(torch.cuda.device_count()):
            names.setdefault(torch.cuda.get_device_name(index), []).append(str(index))
        rows += [("GPU available", "Yes"), *((f"GPU {','.join(ids)}", name) for name, ids in names.items())]
        rows += [("CUDA (PyTorch built with)", str(torch.version.cuda or torch.version.hip)),
                 ("cuDNN", str(torch.backends.cudnn.version()))]
    else:
        rows.append(("GPU available", "No: torch.cuda.is_available() == False"))
    for label, distributions in (("torchvision", ("torchvision",)), ("Pillow", ("pillow",)),
                                 ("fvcore", ("fvcore",)), ("iopath", ("iopath",)),
                                 ("cv2", ("opencv-python", "opencv-python-headless", "opencv-contrib-python"))):
        found = next((v for v in map(version, distributions) if v), None)
        rows.append((label, found or "not installed"))
    width = max(len(key) for key, _ in rows)
    rule = "-" * width + "  " + "-" * min(80, max(len(value) for _, value in rows))
    table = "\n".join([rule, *(f"{key:<{width}}  {value}" for key, value in rows), rule])
    return table + "\n" + torch.__config__.show()
