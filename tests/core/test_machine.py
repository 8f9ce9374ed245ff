"""det.core.machine reports the effective CPU level, emulation caps included."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from det.core.machine import MachineInfo, machine_info


def _info_in_child(**env: str) -> dict:
    code = "import json; from det.core.machine import machine_info; print(json.dumps(machine_info().as_dict()))"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_levels_are_ordered_and_consistent() -> None:
    info = machine_info()
    assert info.capability in {"amx", "avx512_bf16", "avx512", "avx2", "default"}
    # a higher level implies the lower ones
    if info.amx:
        assert info.bf16 and info.avx512
    if info.avx512:
        assert info.avx2
    assert info.cpus >= 1 and info.cpu_model
    assert info.capability in info.describe()


def test_capability_names() -> None:
    base = dict(cpu_model="x", arch="x86_64", cpus=2, aten_capability="AVX2", onednn_max_isa="DEFAULT")
    no = dict(avx2=False, avx512=False, bf16=False, amx=False)
    assert MachineInfo(**base, **no).capability == "default"
    assert MachineInfo(**base, **{**no, "avx2": True}).capability == "avx2"
    assert MachineInfo(**base, **{**no, "avx2": True, "avx512": True}).capability == "avx512"
    assert MachineInfo(**base, **{**no, "avx2": True, "avx512": True, "bf16": True}).capability == "avx512_bf16"
    assert MachineInfo(**base, avx2=True, avx512=True, bf16=True, amx=True).capability == "amx"


def test_emulated_avx2_machine_reports_no_avx512_or_bf16() -> None:
    info = _info_in_child(ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    assert info["avx512"] is False and info["bf16"] is False and info["amx"] is False
    assert info["bf16_kernels"] is False  # oneDNN capped at AVX2 has no bf16 convolution at all
    assert info["capability"] in {"avx2", "default"}
    assert info["onednn_max_isa"] == "AVX2"


def test_portable_level_when_everything_is_capped() -> None:
    info = _info_in_child(ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="SSE41")
    assert info["capability"] == "default"
    assert info["aten_capability"] == "DEFAULT"


def _choices_in_child(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import json; from det.core.machine import inference_choices, machine_info; "
        "print(json.dumps({**inference_choices().as_dict(), 'bf16_kernels': machine_info().bf16_kernels}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("DET_CPU_CHOICES", "DET_KEEP_FREED_MEMORY")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)


def test_portable_level_takes_no_onednn_route() -> None:
    """aarch64 and x86 capped at ATen's portable level: no channels_last, no oneDNN linear or fused
    conv, no bf16 (what every ISA-specific path is gated on)."""
    out = _choices_in_child(ATEN_CPU_CAPABILITY="default")
    choices = json.loads(out.stdout)
    assert choices == {
        "channels_last": False,
        "onednn_linear": False,
        "fused_conv": False,
        "fast_bf16": False,
        "retain_freed_memory": choices["retain_freed_memory"],
        "bf16_kernels": False,
    }


def test_choices_follow_the_level() -> None:
    from det.core.machine import inference_choices

    info, choices = machine_info(), inference_choices()
    onednn = info.capability != "default"
    assert (choices.channels_last, choices.onednn_linear, choices.fused_conv) == (onednn, onednn, onednn)
    assert choices.fast_bf16 is info.bf16
    assert info.bf16_kernels or not info.bf16  # native bf16 implies the kernels
    assert choices.describe().startswith(f"channels_last {'on' if onednn else 'off'}, ")


def test_environment_overrides_single_choices() -> None:
    out = _choices_in_child(DET_CPU_CHOICES="channels_last=0, fused_conv=off", DET_KEEP_FREED_MEMORY="1")
    choices = json.loads(out.stdout)
    assert choices["channels_last"] is False and choices["fused_conv"] is False
    assert choices["retain_freed_memory"] is True
    out = _choices_in_child(DET_KEEP_FREED_MEMORY="0")
    assert json.loads(out.stdout)["retain_freed_memory"] is False


def test_bad_override_names_the_variable_and_the_choices() -> None:
    out = _choices_in_child(DET_CPU_CHOICES="channel_last=0")
    assert out.returncode != 0
    assert (
        "ValueError: DET_CPU_CHOICES='channel_last=0': 'channel_last=0' is not NAME=0 or NAME=1 with NAME one "
        "of channels_last, onednn_linear, fused_conv, fast_bf16, retain_freed_memory; fix or unset the variable"
    ) in out.stderr
    out = _choices_in_child(DET_KEEP_FREED_MEMORY="maybe")
    assert "ValueError: DET_KEEP_FREED_MEMORY='maybe': expected 0 or 1; fix or unset it" in out.stderr


def test_collect_env_info_names_the_machine_and_the_software():
    import torch

    from det.core.machine import collect_env_info, machine_info

    text = collect_env_info()
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.split("PyTorch built with")[0].splitlines()
                if line and not line.startswith("-"))
    assert rows["CPU"] == machine_info().describe()
    assert rows["PyTorch"].startswith(torch.__version__ + " @")
    assert rows["det-core"].startswith("0.") and rows["det-structures"].startswith("0.")
    assert rows["GPU available"] == ("Yes" if torch.cuda.is_available() else "No: torch.cuda.is_available() == False")
    assert {"sys.platform", "Python", "numpy", "torchvision", "Pillow", "fvcore", "iopath", "cv2"} <= set(rows)
    assert text.endswith(torch.__config__.show())
