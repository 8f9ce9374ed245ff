"""det.core.machine reports the effective CPU level, emulation caps included."""

from __future__ import annotations

import json
import os
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
    assert info["capability"] in {"avx2", "default"}
    assert info["onednn_max_isa"] == "AVX2"


def test_portable_level_when_everything_is_capped() -> None:
    info = _info_in_child(ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="SSE41")
    assert info["capability"] == "default"
    assert info["aten_capability"] == "DEFAULT"
