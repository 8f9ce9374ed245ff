"""det-deeplab as a user installs it: its wheel, built from this tree, in a fresh environment next to
det-core's wheels (no editable det, no index). Without it a DeepLab YAML fails naming det-deeplab;
with it the same YAML merges into a plain get_cfg(), builds and infers."""

from __future__ import annotations

import zipfile

import pytest

from .conftest import SHRINK, YAMLS

pytestmark = pytest.mark.slow  # seven wheels and a child environment

THIRD_PARTY = ["torch", "torchvision", "numpy", "pycocotools", "yacs", "pyyaml", "pluggy", "pillow"]
DET = ["structures", "checkpoint", "core", "backbones", "heads/semseg"]

SCRIPT = r"""
import sys, torch
from det.core import build_model, get_cfg
from det.core.config import ConfigKeyError

cfg = get_cfg()
try:
    cfg.merge_from_file(YAML)
except ConfigKeyError as e:
    print("ERROR", e)
    sys.exit(0)
import det.projects.deeplab
assert "site-packages" in det.projects.deeplab.__file__, det.projects.deeplab.__file__  # the wheel
cfg.merge_from_list(SHRINK)
model = build_model(cfg).eval()
with torch.no_grad():
    out = model([{"image": torch.zeros(3, 64, 128, dtype=torch.uint8)}])
print("BUILT", type(model.sem_seg_head).__name__, type(model.backbone.stem).__name__, tuple(out[0]["sem_seg"].shape))
"""


def test_the_wheel_in_a_fresh_environment(repo_root, wheel_builder, tmp_path, make_child_venv):
    plugin = wheel_builder(repo_root / "packages/projects/deeplab", tmp_path)
    assert plugin.name == "det_deeplab-0.1.0-py3-none-any.whl"
    files = sorted(f for f in zipfile.ZipFile(plugin).namelist() if not f.startswith("det_deeplab-"))
    assert files == [f"det/projects/deeplab/{name}" for name in (
        "__init__.py", "_plugin.py", "build_solver.py", "config.py", "loss.py", "lr_scheduler.py", "py.typed",
        "resnet.py", "semantic_seg.py", "version.py")]
    det_wheels = [wheel_builder(repo_root / "packages" / name, tmp_path) for name in DET]
    venv = make_child_venv(inherit=THIRD_PARTY)
    venv.pip_install("--no-deps", *det_wheels)
    code = f"YAML = {str(YAMLS[2])!r}\nSHRINK = {SHRINK!r}\n{SCRIPT}"

    before = venv.run(code).stdout.strip().splitlines()[-1]
    assert before == (
        "ERROR Non-existent config key: MODEL.RESNETS.RES5_MULTI_GRID. This key is added by "
        "the distribution det-deeplab; install it "
        "with: pip install det-deeplab")

    venv.pip_install("--no-deps", plugin)
    after = venv.run(code).stdout.strip().splitlines()[-1]
    assert after == "BUILT DeepLabV3PlusHead DeepLabStem (19, 64, 128)"
