"""Used-by promise 1: `pip install det-core det-heads-mask` is a working Mask R-CNN, and nothing more.

Every det distribution of the tree is built into one wheel folder; a fresh environment that has
only third-party packages gets `pip install --no-index --find-links WHEELS det-core det-heads-mask`,
so pip picks det's closure from the local wheels alone. In it, detectron2's golden Mask R-CNN R50-FPN
(config + weights) builds and reproduces detectron2's outputs; a keypoint model names the
distribution to install; the keypoint, semseg, retinanet and engine distributions are absent.

(Promises 2-4 are in test_backbone_template.py, test_roi_heads_swap.py and
test_structures_standalone.py.)
"""

from __future__ import annotations

import json

import pytest
import torch

MASK_CLOSURE = {"det-structures", "det-checkpoint", "det-core", "det-backbones", "det-heads-rpn", "det-heads-roi",
                "det-heads-mask"}
ABSENT = ["det-heads-keypoint", "det-heads-semseg", "det-heads-retinanet", "det-engine"]

RUN_MASK_RCNN = """
import json, torch
from importlib import metadata
from det.checkpoint import DetectionCheckpointer
from det.core import build_model, get_cfg
import det.core, det.heads.mask

case = {case!r}
cfg = get_cfg()
cfg.merge_from_file(case + "/config.yaml")
model = build_model(cfg).eval()
DetectionCheckpointer(model).load(case + "/model_final.pth", strict=True)
with torch.no_grad():
    outputs = model(torch.load(case + "/inputs.pt", weights_only=True))
plain = []
for out in outputs:
    inst = out["instances"]
    fields = {{k: v for k, v in inst.get_fields().items()}}
    fields["pred_boxes"] = inst.pred_boxes.tensor
    plain.append({{"image_size": inst.image_size, "fields": fields}})
torch.save(plain, {out_file!r})
print(json.dumps({{
    "files": [det.core.__file__, det.heads.mask.__file__],
    "roi_heads": type(model.roi_heads).__name__,
    "mask_head": type(model.roi_heads.mask_head).__name__,
    "dists": sorted(d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"].startswith("det-")),
}}))
"""

ASK_FOR_KEYPOINTS = """
import json
from importlib import metadata
from det.core import build_model, get_cfg
from det.core.registry import ComponentNotFoundError

absent = {{}}
for name in {absent!r}:
    try:
        metadata.distribution(name)
        absent[name] = False
    except metadata.PackageNotFoundError:
        absent[name] = True
cfg = get_cfg()
cfg.merge_from_file({config!r})
try:
    build_model(cfg)
    error = None
except ComponentNotFoundError as e:
    error = [e.kind, e.name, e.distribution, str(e)]
print(json.dumps({{"absent": absent, "error": error}}))
"""


@pytest.mark.slow
def test_det_core_and_det_heads_mask_alone_run_golden_mask_rcnn(
        all_wheels, all_wheels_projects, golden_case, configs_dir, tmp_path, make_child_venv, assert_matches_golden,
        third_party_of):
    assert MASK_CLOSURE | set(ABSENT) <= set(all_wheels_projects)
    wheels = all_wheels
    venv = make_child_venv(inherit=third_party_of("det-core", "det-heads-mask"))
    assert venv.pip_install_names("--find-links", wheels, "det-core", "det-heads-mask") == MASK_CLOSURE  # and no third-party package

    case = golden_case("mask_rcnn_R_50_FPN")
    out_file = tmp_path / "outputs.pt"
    report = json.loads(venv.run(RUN_MASK_RCNN.format(case=str(case.root), out_file=str(out_file)))
                        .stdout.strip().splitlines()[-1])
    assert set(report["dists"]) == MASK_CLOSURE
    assert all(str(venv.root) in f for f in report["files"]), report["files"]  # the wheels, not the tree
    assert (report["roi_heads"], report["mask_head"]) == ("StandardROIHeads", "MaskRCNNConvUpsampleHead")

    ours, golden = torch.load(out_file, weights_only=True), case.outputs
    assert len(ours) == len(golden) == 2
    for mine, theirs in zip(ours, golden):
        assert tuple(mine["image_size"]) == tuple(theirs["instances"]["image_size"])
        pairs = assert_matches_golden(mine["fields"], theirs["instances"])
        assert len(pairs) >= len(theirs["instances"]["scores"]) - 2
        assert "pred_masks" in mine["fields"]

    config = configs_dir / "COCO-Keypoints" / "keypoint_rcnn_R_50_FPN_3x.yaml"
    result = json.loads(venv.run(ASK_FOR_KEYPOINTS.format(absent=ABSENT, config=str(config)))
                        .stdout.strip().splitlines()[-1])
    assert result["absent"] == {name: True for name in ABSENT}
    kind, name, distribution, message = result["error"]
    assert (kind, name, distribution) == ("ROI_KEYPOINT_HEAD", "KRCNNConvDeconvUpsampleHead", "det-heads-keypoint")
    assert "pip install det-heads-keypoint" in message


@pytest.mark.slow
def test_pip_install_det_structures_resolves_to_itself(all_wheels, make_child_venv):
    """Promise 4 with pip resolving (test_structures_standalone.py installs with --no-deps and
    exercises the API): among every det wheel, only det-structures is chosen."""
    venv = make_child_venv(inherit=["torch", "numpy", "pycocotools"])
    assert venv.pip_install_names("--find-links", all_wheels, "det-structures") == {"det-structures"}
    out = venv.run(
        "import importlib.util, det.structures\n"
        "from det.structures import Boxes, pairwise_iou\n"
        "import torch\n"
        "b = Boxes(torch.tensor([[0., 0., 2., 2.]]))\n"
        "print(pairwise_iou(b, b).item(), [importlib.util.find_spec(m) is None for m in ('torchvision', 'yacs', 'pluggy')])"
    ).stdout.strip()
    assert out == "1.0 [True, True, True]"
