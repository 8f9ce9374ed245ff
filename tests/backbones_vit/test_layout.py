"""det.backbones.vit lives in its own distribution although det.backbones is det-backbones'
regular package: det.backbones extends its ``__path__`` (pkgutil.extend_path), which editable
installs need (each distribution's src/ is its own sys.path entry); wheels unpack into one
site-packages folder, and det-backbones-vit's wheel carries no det/backbones/__init__.py."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import det.backbones
import det.backbones.vit


def test_editable_install_finds_the_subpackage_in_its_own_folder(repo_root):
    paths = [Path(p) for p in det.backbones.__path__]
    assert repo_root / "packages/backbones/src/det/backbones" in paths
    assert repo_root / "packages/backbones-vit/src/det/backbones" in paths
    assert Path(det.backbones.vit.__file__).is_relative_to(repo_root / "packages/backbones-vit")
    assert not (repo_root / "packages/backbones-vit/src/det/backbones/__init__.py").exists()
    assert not (repo_root / "packages/backbones-vit/src/det/__init__.py").exists()


WHEELS = {
    "det-structures": "packages/structures",
    "det-checkpoint": "packages/checkpoint",
    "det-core": "packages/core",
    "det-backbones": "packages/backbones",
    "det-backbones-vit": "packages/backbones-vit",
}

IN_THE_CHILD = """
import json, torch
import det.backbones, det.backbones.vit
from det.core import build_backbone, get_cfg
cfg = get_cfg()
cfg.merge_from_list(["MODEL.BACKBONE.NAME", "build_vit_sfp_backbone", "MODEL.VIT.EMBED_DIM", "32",
                     "MODEL.VIT.DEPTH", "2", "MODEL.VIT.NUM_HEADS", "2", "MODEL.VIT.WINDOW_BLOCK_INDEXES", "[0]",
                     "MODEL.VIT.WINDOW_SIZE", "2", "MODEL.VIT.IMG_SIZE", "64", "MODEL.FPN.OUT_CHANNELS", "8"])
out = build_backbone(cfg)(torch.rand(1, 3, 64, 64))
print(json.dumps({"path": list(det.backbones.__path__), "vit": det.backbones.vit.__file__,
                  "shapes": {k: list(v.shape) for k, v in out.items()}}))
"""


@pytest.mark.slow
def test_wheels_install_side_by_side_into_one_site_packages(repo_root, wheel_builder, tmp_path, make_child_venv):
    wheels = {name: wheel_builder(repo_root / folder, tmp_path) for name, folder in WHEELS.items()}
    vit_files = zipfile.ZipFile(wheels["det-backbones-vit"]).namelist()
    assert sorted({f.split("/")[0] for f in vit_files}) == ["det", "det_backbones_vit-0.1.0.dist-info"]
    assert all(f.startswith("det/backbones/vit/") for f in vit_files if f.startswith("det/"))

    venv = make_child_venv(inherit=["torch", "torchvision", "numpy", "yacs", "pluggy", "PyYAML", "pycocotools"])
    venv.pip_install("--no-deps", *wheels.values())
    found = json.loads(venv.run(IN_THE_CHILD).stdout.strip().splitlines()[-1])
    site_backbones = str(venv.site_packages / "det" / "backbones")
    assert found["path"] == [site_backbones]
    assert found["vit"] == str(venv.site_packages / "det/backbones/vit/__init__.py")
    assert found["shapes"] == {"p2": [1, 8, 16, 16], "p3": [1, 8, 8, 8], "p4": [1, 8, 4, 4], "p5": [1, 8, 2, 2],
                               "p6": [1, 8, 1, 1]}

    result = subprocess.run([str(venv.root / "bin" / "det"), "plugins", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert ("det-backbones-vit", "loaded") in {(d["name"], d["status"]) for d in report["distributions"]}
    vit_names = {c["name"] for c in report["components"]["BACKBONE"] if c["distribution"] == "det-backbones-vit"}
    assert "build_vit_sfp_backbone" in vit_names and "build_swin_fpn_backbone" in vit_names

    # uninstalling the plugin leaves det-backbones whole
    uninstall = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv.python), "uninstall", "-y",
                                "det-backbones-vit"], capture_output=True, text=True)
    assert uninstall.returncode == 0, uninstall.stderr
    assert not (venv.site_packages / "det/backbones/vit").exists()
    assert (venv.site_packages / "det/backbones/__init__.py").exists()
    venv.run("import det.backbones; from det.backbones import FPN")
