"""det-checkpoint installs and works where only torch and numpy exist (no other det, no safetensors)."""

from __future__ import annotations

import pytest

CODE = r"""
import sys, importlib.util
import torch
from torch import nn
from det.checkpoint import DetectionCheckpointer, Checkpointer

assert importlib.util.find_spec("safetensors") is None
assert importlib.util.find_spec("det.core") is None
model = nn.Linear(3, 2)
Checkpointer(model, {out!r}).save("model_final", iteration=1)
other = nn.Linear(3, 2)
assert DetectionCheckpointer(other).load({out!r} + "/model_final.pth", strict=True) == {{"iteration": 1}}
assert torch.equal(other.weight, model.weight)
try:
    Checkpointer(model, {out!r}, save_format="safetensors").save("x")
except ImportError as e:
    print("IMPORT-ERROR:", e)
loaded = [m for m in sys.modules if m == "det" or m.startswith("det.")]
print("DET-MODULES:", sorted(loaded))
"""


@pytest.mark.slow
def test_wheel_works_with_torch_and_numpy_only(make_child_venv, wheel_builder, repo_root, tmp_path):
    wheel = wheel_builder(repo_root / "packages" / "checkpoint", tmp_path)
    venv = make_child_venv(inherit=["torch", "numpy"])
    venv.pip_install("--no-deps", wheel)
    out = tmp_path / "out"
    result = venv.run(CODE.format(out=str(out)))
    assert "IMPORT-ERROR: Reading or writing .safetensors checkpoints needs the safetensors package: " \
           "pip install 'det-checkpoint[safetensors]'" in result.stdout
    det_modules = eval(result.stdout.split("DET-MODULES:")[1].strip())
    assert all(m == "det" or m.startswith("det.checkpoint") for m in det_modules), det_modules
