"""det-backbones-timm as a third party publishes it: its wheel, installed into a fresh environment
next to det-core's wheels (no editable det, no index), is found by `det plugins` and builds by name."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest

DET_WHEELS = {
    "det-structures": "packages/structures",
    "det-checkpoint": "packages/checkpoint",
    "det-core": "packages/core",
    "det-backbones": "packages/backbones",
}

BUILD_BY_NAME = """
import json, torch
from det.core import build_backbone, get_cfg
cfg = get_cfg()
cfg.merge_from_list(["MODEL.BACKBONE.NAME", "build_timm_fpn_backbone", "MODEL.TIMM.NAME", "resnet18",
                     "MODEL.FPN.OUT_CHANNELS", "16"])
fpn = build_backbone(cfg)
out = fpn(torch.rand(1, 3, 64, 64))
print(json.dumps({"module": type(fpn.bottom_up).__module__, "timm_keys": sorted(cfg.MODEL.TIMM),
                  "shapes": {k: list(v.shape) for k, v in out.items()}}))
"""


@pytest.mark.slow
def test_wheel_in_a_fresh_environment_next_to_det_core(repo_root, wheel_builder, tmp_path, make_child_venv):
    plugin = wheel_builder(repo_root / "packages/backbones-timm", tmp_path)
    assert plugin.name == "det_backbones_timm-0.1.0-py3-none-any.whl"
    files = zipfile.ZipFile(plugin).namelist()
    assert sorted(f for f in files if not f.startswith("det_backbones_timm-")) == [
        "det/backbones/timm/__init__.py", "det/backbones/timm/_plugin.py", "det/backbones/timm/config.py",
        "det/backbones/timm/py.typed", "det/backbones/timm/timm_backbone.py", "det/backbones/timm/version.py"]
    det_wheels = [wheel_builder(repo_root / folder, tmp_path) for folder in DET_WHEELS.values()]

    # third-party packages come from the main environment; det itself only from the wheels
    venv = make_child_venv(inherit=["torch", "torchvision", "numpy", "yacs", "pluggy", "PyYAML", "pycocotools",
                                    "timm"])
    venv.pip_install("--no-deps", *det_wheels)
    before = subprocess.run([str(venv.root / "bin" / "det"), "plugins", "--json"], capture_output=True, text=True)
    assert "det-backbones-timm" not in before.stdout

    venv.pip_install("--no-deps", plugin)
    result = subprocess.run([str(venv.root / "bin" / "det"), "plugins"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "det-backbones-timm       0.1.0      backbones-timm = det.backbones.timm._plugin" in result.stdout
    assert "build_timm_fpn_backbone" in result.stdout
    report = json.loads(subprocess.run([str(venv.root / "bin" / "det"), "plugins", "--json"],
                                       capture_output=True, text=True).stdout)
    assert report["errors"] == []
    assert {c["name"] for c in report["components"]["BACKBONE"] if c["distribution"] == "det-backbones-timm"} == {
        "build_timm_backbone", "build_timm_fpn_backbone"}

    found = json.loads(venv.run(BUILD_BY_NAME).stdout.strip().splitlines()[-1])
    assert found["module"] == "det.backbones.timm.timm_backbone"
    assert found["timm_keys"] == ["NAME", "NORM", "OUT_INDICES", "PRETRAINED", "PRETRAINED_FILE"]
    assert found["shapes"] == {"p2": [1, 16, 16, 16], "p3": [1, 16, 8, 8], "p4": [1, 16, 4, 4],
                               "p5": [1, 16, 2, 2], "p6": [1, 16, 1, 1]}
