"""det-pointrend from its wheel: installed into a fresh environment next to the wheels of det-core
and the heads it needs (built from this tree, no index), PointRend's YAMLs merge, build, train a
step and infer; before it is installed, the same YAML fails naming det-pointrend."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest

from ._helpers import POINTREND, SHRINK
from .test_configs import PLAIN_MASK_RCNN_TO_POINTREND

DET_WHEELS = ["packages/structures", "packages/checkpoint", "packages/core", "packages/backbones",
              "packages/heads/rpn", "packages/heads/roi", "packages/heads/mask", "packages/heads/semseg"]

RUN = """
import json, sys, torch
from det.core import EventStorage, build_model, get_cfg
from det.structures import BitMasks, Boxes, Instances
out = {{}}
for path, extra in {runs!r}:
    cfg = get_cfg()
    cfg.merge_from_file(path)
    cfg.merge_from_list({shrink!r} + extra)
    torch.manual_seed(0)
    model = build_model(cfg)
    image = torch.randint(0, 256, (3, 64, 96)).float()
    if cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor":
        sample = {{"image": image, "sem_seg": torch.randint(0, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, (64, 96))}}
        head = model.sem_seg_head
    else:
        gt = Instances((64, 96), gt_boxes=Boxes(torch.tensor([[10.0, 8.0, 50.0, 40.0]])), gt_classes=torch.tensor([1]))
        masks = torch.zeros(1, 64, 96, dtype=torch.bool)
        masks[0, 10:38, 12:48] = True
        gt.gt_masks = BitMasks(masks)
        sample = {{"image": image, "instances": gt}}
        head = model.roi_heads.mask_head
        assert type(head).__module__ == "det.projects.point_rend.mask_head"
    with EventStorage(0):
        losses = model([sample])
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        [result] = model([{{"image": image}}])
    out[path.rsplit("/", 1)[1]] = [type(head).__name__, sorted(losses), sorted(result)]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_wheel_in_a_fresh_environment_next_to_det_core(repo_root, configs_dir, wheel_builder, tmp_path,
                                                       make_child_venv, third_party_of):
    plugin = wheel_builder(repo_root / "packages/projects/pointrend", tmp_path)
    assert plugin.name == "det_pointrend-0.1.0-py3-none-any.whl"
    files = sorted(f for f in zipfile.ZipFile(plugin).namelist() if not f.startswith("det_pointrend-"))
    assert files == [f"det/projects/point_rend/{name}" for name in (
        "__init__.py", "_plugin.py", "color_augmentation.py", "config.py", "mask_head.py", "point_features.py",
        "point_head.py", "py.typed", "roi_heads.py", "semantic_seg.py", "version.py")]
    det_wheels = [wheel_builder(repo_root / folder, tmp_path) for folder in DET_WHEELS]

    venv = make_child_venv(inherit=third_party_of("det-pointrend"))
    venv.pip_install("--no-deps", *det_wheels)
    yaml = str(POINTREND / "InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml")
    before = venv.run(f"from det.core import get_cfg\nget_cfg().merge_from_file({yaml!r})", check=False)
    assert before.returncode != 0
    assert ("Non-existent config key: MODEL.ROI_MASK_HEAD.FC_DIM. This key is added by the distribution "
            "det-pointrend; install it with: pip install det-pointrend") in before.stderr
    # a plain Mask R-CNN asking for PointRend's head by config is told the same
    mask_rcnn = str(configs_dir / "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml")
    swap = f"from det.core import get_cfg\ncfg = get_cfg()\ncfg.merge_from_file({mask_rcnn!r})\n" \
           f"cfg.merge_from_list({PLAIN_MASK_RCNN_TO_POINTREND!r})"
    assert "This key is added by the distribution det-pointrend" in venv.run(swap, check=False).stderr

    # pip's resolver checks the declared dependencies against the installed det wheels
    venv.pip_install(plugin)
    det = venv.root / "bin" / "det"
    report = json.loads(subprocess.run([str(det), "plugins", "--json"], capture_output=True, text=True).stdout)
    assert report["errors"] == []
    assert {c["name"] for c in report["components"]["ROI_MASK_HEAD"] if c["distribution"] == "det-pointrend"} == {
        "PointRendMaskHead", "ImplicitPointRendMaskHead"}

    runs = [(yaml, []), (str(POINTREND / "InstanceSegmentation/implicit_pointrend_R_50_FPN_1x_coco.yaml"), []),
            (str(POINTREND / "SemanticSegmentation/pointrend_semantic_R_101_FPN_1x_cityscapes.yaml"), []),
            (mask_rcnn, PLAIN_MASK_RCNN_TO_POINTREND)]  # installing det-pointrend is the only change
    result = venv.run(RUN.format(runs=runs, shrink=SHRINK))
    found = json.loads(result.stdout.strip().splitlines()[-1])
    mask_losses = ["loss_box_reg", "loss_cls", "loss_mask", "loss_mask_point", "loss_rpn_cls", "loss_rpn_loc"]
    assert found == {
        "mask_rcnn_R_50_FPN_1x.yaml": ["PointRendMaskHead", mask_losses, ["instances"]],
        "pointrend_rcnn_R_50_FPN_1x_coco.yaml": ["PointRendMaskHead", mask_losses, ["instances"]],
        "implicit_pointrend_R_50_FPN_1x_coco.yaml": [
            "ImplicitPointRendMaskHead",
            ["loss_box_reg", "loss_cls", "loss_l2", "loss_mask_point", "loss_rpn_cls", "loss_rpn_loc"],
            ["instances"]],
        "pointrend_semantic_R_101_FPN_1x_cityscapes.yaml": [
            "PointRendSemSegHead", ["loss_sem_seg", "loss_sem_seg_point"], ["sem_seg"]],
    }
