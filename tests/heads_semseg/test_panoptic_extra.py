"""The [panoptic] extra, with real wheels in a fresh environment: `pip install det-heads-semseg`
builds a SemanticSegmentor and names the extra for PanopticFPN; after
`pip install 'det-heads-semseg[panoptic]'` PanopticFPN builds and predicts."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # builds eight wheels and two child environments' worth of models

THIRD_PARTY = ["torch", "torchvision", "numpy", "pycocotools", "yacs", "pyyaml", "pluggy", "pillow"]
BASE = ["structures", "checkpoint", "core", "backbones", "heads/semseg"]
EXTRA = ["heads/rpn", "heads/roi", "heads/mask"]

SCRIPT = r"""
import torch
import det.heads.semseg
from det.core import build_model, get_cfg

assert "site-packages" in det.heads.semseg.__file__, det.heads.semseg.__file__  # the wheel, not the tree

def cfg_of(name):
    cfg = get_cfg()
    cfg.merge_from_file(CONFIGS + "/" + name)
    cfg.merge_from_list(["MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
                         "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16,
                         "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32, "MODEL.ROI_MASK_HEAD.CONV_DIM", 32,
                         "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    return cfg

image = torch.zeros(3, 64, 64, dtype=torch.uint8)
semantic = build_model(cfg_of("Misc/semantic_R_50_FPN_1x.yaml")).eval()
print("SEMANTIC", tuple(semantic([{"image": image}])[0]["sem_seg"].shape))
try:
    panoptic = build_model(cfg_of("COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml")).eval()
except ImportError as e:
    print("PANOPTIC-ERROR", e)
else:
    out = panoptic([{"image": image}])[0]
    print("PANOPTIC", sorted(out), out["panoptic_seg"][0].dtype)
"""


def test_panoptic_extra_installs_the_instance_branch(repo_root, configs_dir, tmp_path, make_child_venv,
                                                     wheel_builder):
    built = {folder: wheel_builder(repo_root / "packages" / folder, tmp_path) for folder in BASE + EXTRA}
    venv = make_child_venv(inherit=THIRD_PARTY)
    script = f"CONFIGS = {str(configs_dir)!r}\n" + SCRIPT

    # --no-deps: third-party packages come from the main environment, det's from these wheels
    venv.pip_install("--no-deps", *(built[f] for f in BASE))
    out = venv.run(script).stdout
    assert "SEMANTIC (54, 64, 64)" in out
    assert (
        "PANOPTIC-ERROR PanopticFPN's instance branch needs det-heads-rpn, det-heads-roi, det-heads-mask, "
        "which are not installed: pip install 'det-heads-semseg[panoptic]'"
    ) in out
    # what `pip install 'det-heads-semseg[panoptic]'` adds is exactly the instance branch
    requires = venv.run(
        "import re\nfrom importlib import metadata\n"
        "print(sorted(re.split('[<>=!~; ]', r)[0] for r in metadata.requires('det-heads-semseg') if 'panoptic' in r))"
    ).stdout.strip()
    assert requires == "['det-heads-mask', 'det-heads-roi', 'det-heads-rpn']"

    venv.pip_install("--no-deps", *(built[f] for f in EXTRA))
    out = venv.run(script).stdout
    assert "PANOPTIC ['instances', 'panoptic_seg', 'sem_seg'] torch.int32" in out
