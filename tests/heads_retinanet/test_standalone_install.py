"""`pip install det-heads-retinanet` (with det-core and det-backbones, its declared det
requirements) builds and runs RetinaNet from the model-zoo YAML: no RPN/ROI package needed."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slow  # builds six wheels and a child environment

THIRD_PARTY = ["torch", "torchvision", "numpy", "pycocotools", "yacs", "pyyaml", "pluggy", "pillow"]
DET = ["structures", "checkpoint", "core", "backbones", "heads/retinanet"]

SCRIPT = r"""
import importlib.util
import torch
import det.heads.retinanet
from det.core import EventStorage, build_model, get_cfg
from det.structures import Boxes, Instances

assert "site-packages" in det.heads.retinanet.__file__, det.heads.retinanet.__file__
for name in ("det.heads.rpn", "det.heads.roi", "det.heads.mask"):
    assert importlib.util.find_spec(name) is None, name
cfg = get_cfg()
cfg.merge_from_file(CONFIGS + "/COCO-Detection/retinanet_R_50_FPN_1x.yaml")
cfg.merge_from_list(["MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
                     "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16,
                     "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
model = build_model(cfg)
gt = Instances((64, 64), gt_boxes=Boxes(torch.tensor([[8.0, 8, 40, 48]])), gt_classes=torch.tensor([2]))
image = torch.zeros(3, 64, 64, dtype=torch.uint8)
with EventStorage(0):
    print("LOSSES", sorted(model([{"image": image, "instances": gt}])))
print("EVAL", sorted(model.eval()([{"image": image}])[0]["instances"].get_fields()))
"""


def test_retinanet_installs_and_runs_without_the_two_stage_heads(repo_root, configs_dir, tmp_path,
                                                                 make_child_venv, wheel_builder):
    wheels = [wheel_builder(repo_root / "packages" / folder, tmp_path) for folder in DET]
    venv = make_child_venv(inherit=THIRD_PARTY)
    venv.pip_install("--no-deps", *wheels)
    out = venv.run(f"CONFIGS = {str(configs_dir)!r}\n" + SCRIPT).stdout
    assert "LOSSES ['loss_box_reg', 'loss_cls']" in out
    assert "EVAL ['pred_boxes', 'pred_classes', 'scores']" in out
    requires = venv.run(
        "from importlib import metadata; print('\\n'.join(metadata.requires('det-heads-retinanet')))"
    ).stdout.split()
    assert sorted(re.split("[<>=!~; ]", r)[0] for r in requires) == [
        "det-backbones", "det-core", "det-structures", "numpy", "torch"]
