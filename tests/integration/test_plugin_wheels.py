"""det's own wheels in a venv without torch: the plugin layer and config stand on their own.

Builds det-structures, det-checkpoint, det-core and det-backbones into wheels, installs them
(without dependencies) into a child venv that has only yacs, pluggy and PyYAML, and checks what a
user of a partial installation sees: `det plugins`, the config system, and errors that say what to
install.
"""

from __future__ import annotations

import json
import subprocess

import pytest

DISTS = {
    "det-structures": "packages/structures",
    "det-checkpoint": "packages/checkpoint",
    "det-core": "packages/core",
    "det-backbones": "packages/backbones",
}


@pytest.fixture(scope="module")
def det_wheels(repo_root, wheel_builder, tmp_path_factory):
    out = tmp_path_factory.mktemp("det-wheels")
    return {name: wheel_builder(repo_root / folder, out) for name, folder in DISTS.items()}


@pytest.fixture
def torchless_venv(make_child_venv, det_wheels):
    venv = make_child_venv(inherit=["yacs", "pluggy", "PyYAML"])
    venv.pip_install("--no-deps", *det_wheels.values())
    return venv


@pytest.mark.slow
def test_partial_install_without_torch(torchless_venv, configs_dir):
    venv = torchless_venv
    assert venv.run("import importlib.util; print(importlib.util.find_spec('torch') is None)").stdout.strip() == "True"

    # the console script installed with det-core
    result = subprocess.run([str(venv.root / "bin" / "det"), "plugins", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted((d["name"], d["status"]) for d in report["distributions"]) == [
        ("det-backbones", "loaded"), ("det-core", "loaded")]
    assert report["errors"] == []
    assert "build_resnet_fpn_backbone" in {c["name"] for c in report["components"]["BACKBONE"]}

    code = f"""
import json, sys, warnings
from det.core.config import get_cfg
from det.core.registry import get_component, ComponentNotFoundError
out = {{}}
cfg = get_cfg()
cfg.merge_from_file({str(configs_dir / "COCO-InstanceSegmentation" / "mask_rcnn_R_50_FPN_3x.yaml")!r})
out["roi_heads"] = cfg.MODEL.ROI_HEADS.NAME
try:
    get_component("ROI_HEADS", cfg.MODEL.ROI_HEADS.NAME)
except ComponentNotFoundError as e:
    out["missing"] = str(e)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")   # converters cannot be handed to det.checkpoint without torch
    try:
        get_component("BACKBONE", "build_resnet_fpn_backbone")
    except ImportError as e:
        out["no_torch"] = str(e)
print(json.dumps(out))
"""
    out = json.loads(venv.run(code).stdout.strip().splitlines()[-1])
    assert out["roi_heads"] == "StandardROIHeads"
    assert out["missing"] == (
        "No ROI_HEADS component named 'StandardROIHeads' is installed. Installed ROI_HEADS components: (none). "
        "It is provided by the distribution det-heads-roi; install it with: pip install det-heads-roi")
    assert out["no_torch"].startswith("Cannot import BACKBONE component 'build_resnet_fpn_backbone' ")
    assert "(declared by det-backbones): ModuleNotFoundError: No module named 'torch'" in out["no_torch"]
