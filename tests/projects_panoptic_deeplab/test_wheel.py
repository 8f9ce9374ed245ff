"""det-panoptic-deeplab as a user installs it: its wheel and det-deeplab's, built from this tree, in
a fresh environment next to det-core's wheels (no editable det, no index). Without them a
Panoptic-DeepLab YAML fails naming the distribution; with them it merges into a plain get_cfg(),
builds and infers."""

from __future__ import annotations

import zipfile

import pytest

from .conftest import SHRINK, YAMLS

pytestmark = pytest.mark.slow  # ten wheels and a child environment

THIRD_PARTY = ["torch", "torchvision", "numpy", "pycocotools", "yacs", "pyyaml", "pluggy", "pillow", "tqdm"]
DET = ["structures", "checkpoint", "core", "backbones", "heads/semseg", "data", "evaluation", "projects/deeplab"]

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
import det.projects.panoptic_deeplab
assert "site-packages" in det.projects.panoptic_deeplab.__file__, det.projects.panoptic_deeplab.__file__
from det.data import MetadataCatalog
assert MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).label_divisor == 1000  # det-data registers the dataset
cfg.merge_from_list(SHRINK)
model = build_model(cfg).eval()
with torch.no_grad():
    out = model([{"image": torch.zeros(3, 64, 64, dtype=torch.uint8)}])[0]
print("BUILT", type(model).__name__, type(model.ins_embed_head).__name__, tuple(out["panoptic_seg"][0].shape))
"""


def test_the_wheel_in_a_fresh_environment(repo_root, wheel_builder, tmp_path, make_child_venv):
    plugin = wheel_builder(repo_root / "packages/projects/panoptic_deeplab", tmp_path)
    assert plugin.name == "det_panoptic_deeplab-0.1.0-py3-none-any.whl"
    files = sorted(f for f in zipfile.ZipFile(plugin).namelist() if not f.startswith("det_panoptic_deeplab-"))
    assert files == [f"det/projects/panoptic_deeplab/{name}" for name in (
        "__init__.py", "_plugin.py", "build_solver.py", "config.py", "dataset_mapper.py", "panoptic_seg.py",
        "post_processing.py", "py.typed", "target_generator.py", "version.py")]
    det_wheels = [wheel_builder(repo_root / "packages" / name, tmp_path) for name in DET]
    venv = make_child_venv(inherit=THIRD_PARTY)
    venv.pip_install("--no-deps", *det_wheels)
    code = f"YAML = {str(YAMLS[3])!r}\nSHRINK = {SHRINK!r}\n{SCRIPT}"

    before = venv.run(code).stdout.strip().splitlines()[-1]
    assert before == (
        "ERROR Non-existent config key: MODEL.SEM_SEG_HEAD.HEAD_CHANNELS. This key is added by "
        "the distribution det-panoptic-deeplab; "
        "install it with: pip install det-panoptic-deeplab")

    venv.pip_install("--no-deps", plugin)
    after = venv.run(code).stdout.strip().splitlines()[-1]
    assert after == "BUILT PanopticDeepLab PanopticDeepLabInsEmbedHead (64, 64)"
