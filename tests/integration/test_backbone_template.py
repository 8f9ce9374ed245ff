"""The backbone plugin template works as a real third-party distribution: built as a wheel,
installed into a fresh environment, found by name through its entry point."""

from __future__ import annotations

import pytest

TEMPLATE = "examples/det-backbone-template"

BACKBONE_BY_NAME = """
from det.core import build_backbone, get_cfg
from det.core.registry import list_components
import torch

infos = [c for c in list_components("BACKBONE") if c.name == "ToyBackbone"]
assert len(infos) == 1 and infos[0].distribution == "det-toy-backbone", infos
cfg = get_cfg()
assert cfg.MODEL.TOY_BACKBONE.CHANNELS == 16
cfg.merge_from_list(["MODEL.BACKBONE.NAME", "ToyBackbone", "MODEL.TOY_BACKBONE.CHANNELS", "8"])
backbone = build_backbone(cfg)
out = backbone(torch.rand(1, 3, 64, 64))
print(type(backbone).__module__, {k: tuple(v.shape) for k, v in out.items()})
"""

GENERALIZED_RCNN_ON_TOY = """
import torch
from det.core import EventStorage, build_model, get_cfg

cfg = get_cfg()
cfg.merge_from_list([
    "MODEL.DEVICE", "cpu",
    "MODEL.BACKBONE.NAME", "ToyBackbone",
    "MODEL.TOY_BACKBONE.OUT_FEATURES", "['toy3', 'toy4']",
    "MODEL.RPN.IN_FEATURES", "['toy3', 'toy4']",
    "MODEL.ANCHOR_GENERATOR.SIZES", "[[32], [64]]",
    "MODEL.ROI_HEADS.NAME", "StandardROIHeads",
    "MODEL.ROI_HEADS.IN_FEATURES", "['toy3', 'toy4']",
    "MODEL.ROI_HEADS.NUM_CLASSES", "3",
    "MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead",
    "MODEL.ROI_BOX_HEAD.NUM_FC", "1",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "7",
])
torch.manual_seed(0)
model = build_model(cfg)
assert type(model).__name__ == "GeneralizedRCNN"
assert type(model.backbone).__module__ == "det_toy_backbone.toy"
model.eval()
with torch.no_grad():
    outputs = model([{"image": torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8), "height": 96, "width": 128}])
inst = outputs[0]["instances"]
assert inst.image_size == (96, 128), inst.image_size
print("inference", len(inst))

from det.structures import Boxes, Instances
gt = Instances((96, 128))
gt.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 60.0, 50.0]]))
gt.gt_classes = torch.tensor([1])
model.train()
with EventStorage(0):
    losses = model([{"image": torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8), "instances": gt}])
assert sorted(losses) == ["loss_box_reg", "loss_cls", "loss_rpn_cls", "loss_rpn_loc"], sorted(losses)
sum(losses.values()).backward()
assert model.backbone.stem.weight.grad is not None
print("train", sorted(losses))
"""


@pytest.mark.slow
def test_template_plugin_wheel_in_a_fresh_env(repo_root, tmp_path, make_child_venv, wheel_builder):
    wheel = wheel_builder(repo_root / TEMPLATE, tmp_path)
    assert wheel.name.startswith("det_toy_backbone-0.1.0-")
    venv = make_child_venv(inherit="all")

    # Before installation the name is unknown to the toolkit.
    missing = venv.run("from det.core.registry import get_component\nget_component('BACKBONE', 'ToyBackbone')",
                       check=False)
    assert missing.returncode != 0 and "ToyBackbone" in missing.stderr

    venv.pip_install(wheel)
    out = venv.run(BACKBONE_BY_NAME).stdout
    assert out.strip() == "det_toy_backbone.toy {'toy2': (1, 8, 16, 16), 'toy3': (1, 8, 8, 8), " \
                          "'toy4': (1, 8, 4, 4), 'toy5': (1, 8, 2, 2)}"

    # The template's own test suite passes against the installed wheel.
    tests = repo_root / TEMPLATE / "tests"
    result = venv.run(
        "import sys, pytest\n"
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--rootdir', {str(tests.parent)!r}, "
        f"'-c', {str(tests.parent / 'pyproject.toml')!r}, {str(tests)!r}]))",
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout

    # A whole GeneralizedRCNN (det-heads-rpn + det-heads-roi) on the third-party backbone, by name.
    out = venv.run(GENERALIZED_RCNN_ON_TOY).stdout
    assert "train ['loss_box_reg', 'loss_cls', 'loss_rpn_cls', 'loss_rpn_loc']" in out
