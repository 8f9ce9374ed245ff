"""det-tridentnet from its wheel: installed into a fresh environment next to the wheels of det-core
and the parts it needs (no editable det, no index), it is found by `det plugins` and detectron2's
TridentNet YAML merges, builds, infers and trains a step. Before it is installed, the same YAML
fails with det's message naming the distribution to install."""

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
    "det-heads-rpn": "packages/heads/rpn",
    "det-heads-roi": "packages/heads/roi",
}

MERGE_ONLY = """
import json
from det.core import get_cfg
from det.core.config import ConfigKeyError
try:
    get_cfg().merge_from_file({config!r})
    print(json.dumps({{"merged": True}}))
except ConfigKeyError as e:
    print(json.dumps({{"error": str(e), "distribution": e.distribution}}))
"""

RUN_CONFIG = """
import json, math, torch
import det.projects.tridentnet as tridentnet
from det.core import build_model, get_cfg
from det.core.events import EventStorage
from det.structures import Boxes, Instances
cfg = get_cfg()
cfg.merge_from_file({config!r})
cfg.merge_from_list(["MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.RES2_OUT_CHANNELS", 16,
                     "MODEL.RESNETS.WIDTH_PER_GROUP", 4, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"])
torch.manual_seed(0)
model = build_model(cfg)
with torch.no_grad():
    model.proposal_generator.rpn_head.anchor_deltas.weight.zero_()
    for layer in (model.roi_heads.box_predictor.cls_score, model.roi_heads.box_predictor.bbox_pred):
        layer.weight.zero_(); layer.bias.zero_()
    model.roi_heads.box_predictor.cls_score.bias[0] = 5.0
image = torch.rand(3, 64, 96, generator=torch.Generator().manual_seed(0)) * 255
with torch.no_grad():
    (out,) = model.eval()([{{"image": image, "height": 32, "width": 48}}])
gt = Instances((64, 96)); gt.gt_boxes = Boxes(torch.tensor([[8., 10., 40., 50.]])); gt.gt_classes = torch.tensor([3])
with EventStorage():
    losses = model.train()([{{"image": image, "instances": gt}}])
sum(losses.values()).backward()
print(json.dumps({{
    "file": tridentnet.__file__,
    "parts": [type(model.backbone.res4[0]).__name__, type(model.proposal_generator).__name__,
              type(model.roi_heads).__name__],
    "trident": dict(cfg.MODEL.TRIDENT),
    "detections": len(out["instances"]), "image_size": list(out["instances"].image_size),
    "losses": sorted(k for k, v in losses.items() if math.isfinite(v.item())),
    "shared_grad": bool(model.backbone.res4[0].conv2.weight.grad.abs().sum() > 0),
}}))
"""


@pytest.mark.slow
def test_wheel_in_a_fresh_environment_next_to_det_core(repo_root, shared_dir, wheel_builder, tmp_path,
                                                       make_child_venv, third_party_of):
    plugin = wheel_builder(repo_root / "packages/projects/tridentnet", tmp_path)
    assert plugin.name == "det_tridentnet-0.1.0-py3-none-any.whl"
    files = zipfile.ZipFile(plugin).namelist()
    assert sorted(f for f in files if not f.startswith("det_tridentnet-")) == [
        f"det/projects/tridentnet/{name}" for name in (
            "__init__.py", "_plugin.py", "config.py", "py.typed", "trident_backbone.py", "trident_conv.py",
            "trident_rcnn.py", "trident_rpn.py", "version.py")]  # no det/__init__.py, no det/projects/__init__.py
    det_wheels = [wheel_builder(repo_root / folder, tmp_path) for folder in DET_WHEELS.values()]
    config = str(shared_dir / "detectron2-projects/projects/TridentNet/configs/tridentnet_fast_R_50_C4_1x.yaml")

    # third-party packages come from the main environment; det itself only from the wheels
    venv = make_child_venv(inherit=third_party_of("det-tridentnet"))
    venv.pip_install("--no-deps", *det_wheels)
    before = json.loads(venv.run(MERGE_ONLY.format(config=config)).stdout.strip().splitlines()[-1])
    assert before == {
        "error": "Non-existent config key: MODEL.TRIDENT. This key is added by the "
                 "distribution det-tridentnet; install it with: pip install det-tridentnet",
        "distribution": "det-tridentnet"}

    venv.pip_install("--no-deps", plugin)
    result = subprocess.run([str(venv.root / "bin" / "det"), "plugins", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == []
    assert ("det-tridentnet", "0.1.0", "loaded") in {(d["name"], d["version"], d["status"]) for d in report["distributions"]}
    assert sorted((kind, c["name"]) for kind, comps in report["components"].items() for c in comps
                  if c["distribution"] == "det-tridentnet") == [
        ("BACKBONE", "build_trident_resnet_backbone"), ("PROPOSAL_GENERATOR", "TridentRPN"),
        ("ROI_HEADS", "TridentRes5ROIHeads"), ("ROI_HEADS", "TridentStandardROIHeads")]

    ran = json.loads(venv.run(RUN_CONFIG.format(config=config)).stdout.strip().splitlines()[-1])
    assert ran["file"].startswith(str(venv.root))  # the wheel's copy, not the tree
    assert ran["parts"] == ["TridentBottleneckBlock", "TridentRPN", "TridentRes5ROIHeads"]
    assert ran["trident"] == {"NUM_BRANCH": 3, "BRANCH_DILATIONS": [1, 2, 3], "TRIDENT_STAGE": "res4",
                              "TEST_BRANCH_IDX": 1}
    assert ran["detections"] > 0 and ran["image_size"] == [32, 48]
    assert ran["losses"] == ["loss_box_reg", "loss_cls", "loss_rpn_cls", "loss_rpn_loc"]
    assert ran["shared_grad"] is True
