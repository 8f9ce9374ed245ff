"""Every detectron2 model-zoo YAML of ../shared/detectron2-configs works with det.

All 92 files merge into `get_cfg()`. Each one whose components are installed builds (widths shrunk
as the golden README's overrides do, to multiples of 32 so GroupNorm(32) stays valid; depths and
every structural switch are kept) and runs inference on a small image, and its output follows the
documented format of its meta-architecture. Each one needing a component that is not installed
fails with the error that names the distribution to install.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch

from det.core import build_model, get_cfg
from det.core.registry import STANDARD_PROVIDERS, ComponentNotFoundError, list_components
from det.structures import Boxes, Instances

SHARED = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
CONFIGS_ROOT = SHARED / "detectron2-configs"
CONFIGS = sorted(str(p.relative_to(CONFIGS_ROOT)) for p in CONFIGS_ROOT.rglob("*.yaml"))

IMAGE_HW = (64, 96)
OUTPUT_HW = (32, 48)  # asked for through "height"/"width": outputs are rescaled to it

# The golden cases' overrides, rounded up to 32 channels (GN configs use 32 groups).
SHRINK = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 32, "MODEL.RESNETS.RES2_OUT_CHANNELS", 32,
    "MODEL.FPN.OUT_CHANNELS", 32, "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "MODEL.ROI_BOX_HEAD.CONV_DIM", 32,
    "MODEL.ROI_MASK_HEAD.CONV_DIM", 32, "MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS", (32,) * 8,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32, "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "",
]


def test_all_92_configs_are_found():
    assert len(CONFIGS) == 92, f"expected detectron2's 92 model-zoo YAMLs under {CONFIGS_ROOT}"


@functools.cache
def _merged_once(name: str):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIGS_ROOT / name))
    cfg.freeze()
    return cfg


def _merged(name: str):
    cfg = _merged_once(name).clone()
    cfg.defrost()
    return cfg


@pytest.mark.parametrize("name", CONFIGS)
def test_config_merges(name):
    cfg = _merged(name)
    assert cfg.MODEL.META_ARCHITECTURE in {
        "GeneralizedRCNN", "ProposalNetwork", "RetinaNet", "SemanticSegmentor", "PanopticFPN"}
    assert cfg.MODEL.BACKBONE.NAME in {
        "build_resnet_backbone", "build_resnet_fpn_backbone", "build_retinanet_resnet_fpn_backbone"}


def required_components(cfg) -> list[tuple[str, str]]:
    """The (kind, name) pairs `build_model(cfg)` looks up, as detectron2's builders do."""
    m = cfg.MODEL
    meta = m.META_ARCHITECTURE
    needed = [("META_ARCH", meta), ("BACKBONE", m.BACKBONE.NAME)]
    uses_rpn = meta in ("GeneralizedRCNN", "ProposalNetwork", "PanopticFPN")
    if uses_rpn and m.PROPOSAL_GENERATOR.NAME != "PrecomputedProposals":
        needed += [("PROPOSAL_GENERATOR", m.PROPOSAL_GENERATOR.NAME), ("RPN_HEAD", m.RPN.HEAD_NAME),
                   ("ANCHOR_GENERATOR", m.ANCHOR_GENERATOR.NAME)]
    if meta in ("GeneralizedRCNN", "PanopticFPN"):
        needed.append(("ROI_HEADS", m.ROI_HEADS.NAME))
        if m.ROI_HEADS.NAME != "Res5ROIHeads":  # the C4 head is res5 itself, no box head
            needed.append(("ROI_BOX_HEAD", m.ROI_BOX_HEAD.NAME))
        if m.MASK_ON:
            needed.append(("ROI_MASK_HEAD", m.ROI_MASK_HEAD.NAME))
        if m.KEYPOINT_ON:
            needed.append(("ROI_KEYPOINT_HEAD", m.ROI_KEYPOINT_HEAD.NAME))
    if meta in ("SemanticSegmentor", "PanopticFPN"):
        needed.append(("SEM_SEG_HEADS", m.SEM_SEG_HEAD.NAME))
    if meta == "RetinaNet":
        needed.append(("ANCHOR_GENERATOR", m.ANCHOR_GENERATOR.NAME))
    return needed


def _missing(cfg) -> list[tuple[str, str]]:
    installed = {(c.kind, c.name) for c in list_components()}
    return [kn for kn in required_components(cfg) if kn not in installed]


def _shrunk(name: str):
    cfg = _merged(name)
    cfg.merge_from_list(SHRINK)
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = max(1, 32 // cfg.MODEL.RESNETS.NUM_GROUPS)
    cfg.TEST.DETECTIONS_PER_IMAGE = 20
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST, cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 200, 50
    return cfg


def _tame_predictors(cfg, model):
    """Zero the final layers' weights and let their biases decide: a random-init R50 with PIXEL_STD 1
    has features around 1e3, whose random deltas make every box degenerate and whose logits
    saturate, so nothing would reach the mask/keypoint heads. Now boxes are the anchors/proposals
    and classes 0-2 (or the only class) score above the default 0.05 threshold (the rest far below it)."""
    with torch.no_grad():
        for name, module in model.named_modules():
            last = name.rsplit(".", 1)[-1]
            if last in ("anchor_deltas", "objectness_logits", "bbox_pred", "cls_score"):
                module.weight.zero_()
            if last == "cls_score":
                bias = module.bias
                bias.fill_(-10.0)
                if isinstance(module, torch.nn.Conv2d):  # RetinaNet: (anchors x classes) sigmoid logits
                    bias.view(-1, cfg.MODEL.RETINANET.NUM_CLASSES)[:, :3] = 2.0
                else:  # Fast R-CNN: K classes + background, softmax
                    bias[: min(3, len(bias) - 1)] = 5.0


def _inputs(cfg) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    item = {"image": torch.randint(0, 256, (3, *IMAGE_HW), dtype=torch.uint8, generator=g),
            "height": OUTPUT_HW[0], "width": OUTPUT_HW[1]}
    if cfg.MODEL.PROPOSAL_GENERATOR.NAME == "PrecomputedProposals":
        proposals = Instances(IMAGE_HW)
        proposals.proposal_boxes = Boxes(torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 10.0, 90.0, 60.0],
                                                       [0.0, 0.0, 96.0, 64.0]]))
        proposals.objectness_logits = torch.tensor([2.0, 1.0, 0.5])
        item["proposals"] = proposals
    return [item]


def _check_instances(cfg, inst):
    h, w = OUTPUT_HW
    assert isinstance(inst, Instances) and inst.image_size == OUTPUT_HW
    n = len(inst)
    assert 0 < n <= cfg.TEST.DETECTIONS_PER_IMAGE
    assert isinstance(inst.pred_boxes, Boxes) and inst.pred_boxes.tensor.shape == (n, 4)
    boxes = inst.pred_boxes.tensor
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= w).all()
    assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= h).all()
    assert inst.scores.shape == (n,) and inst.scores.dtype == torch.float32
    assert (inst.scores[:-1] >= inst.scores[1:]).all(), "instances are sorted by score"
    assert inst.pred_classes.dtype == torch.int64
    num_classes = cfg.MODEL.RETINANET.NUM_CLASSES if cfg.MODEL.META_ARCHITECTURE == "RetinaNet" \
        else cfg.MODEL.ROI_HEADS.NUM_CLASSES
    assert ((inst.pred_classes >= 0) & (inst.pred_classes < min(3, num_classes))).all()
    if cfg.MODEL.MASK_ON:
        assert inst.pred_masks.shape == (n, h, w) and inst.pred_masks.dtype == torch.bool
    else:
        assert not inst.has("pred_masks")
    if cfg.MODEL.KEYPOINT_ON:
        k = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
        assert inst.pred_keypoints.shape == (n, k, 3)
        r = cfg.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION * 4  # deconv x2, then up_scale x2
        assert inst.pred_keypoint_heatmaps.shape == (n, k, r, r)
    else:
        assert not inst.has("pred_keypoints")


def _check_output(cfg, out: dict):
    meta = cfg.MODEL.META_ARCHITECTURE
    h, w = OUTPUT_HW
    expected_keys = {"GeneralizedRCNN": {"instances"}, "RetinaNet": {"instances"},
                     "ProposalNetwork": {"proposals"}, "SemanticSegmentor": {"sem_seg"},
                     "PanopticFPN": {"instances", "sem_seg", "panoptic_seg"}}[meta]
    assert set(out) == expected_keys
    if "instances" in out:
        _check_instances(cfg, out["instances"])
    if "proposals" in out:
        props = out["proposals"]
        assert props.image_size == OUTPUT_HW and len(props) > 0
        assert props.proposal_boxes.tensor.shape == (len(props), 4)
        assert props.objectness_logits.shape == (len(props),)
    if "sem_seg" in out:
        assert out["sem_seg"].shape == (cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, h, w)
    if "panoptic_seg" in out:
        pred, segments_info = out["panoptic_seg"]
        assert pred.shape == (h, w) and pred.dtype == torch.int32
        ids = {s["id"] for s in segments_info}
        assert set(pred.unique().tolist()) - {0} <= ids
        for s in segments_info:
            assert set(s) >= {"id", "isthing", "category_id"}
            assert (s.keys() >= {"score", "instance_id"}) if s["isthing"] else ("area" in s)


_CHECKED: dict[str, str] = {}  # what build_model reads -> the config that was built and run with it


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_and_runs_or_names_what_to_install(name):
    cfg = _shrunk(name)
    # Many files differ only in schedule or datasets: build each distinct model once.
    key = cfg.MODEL.dump() + repr((cfg.INPUT.FORMAT, cfg.TEST.DETECTIONS_PER_IMAGE))
    if key in _CHECKED:
        return
    missing = _missing(cfg)
    if missing:
        providers = {STANDARD_PROVIDERS[kn] for kn in missing}
        with pytest.raises(ComponentNotFoundError) as info:
            build_model(cfg)
        assert info.value.distribution in providers, str(info.value)
        assert f"pip install {info.value.distribution}" in str(info.value) or \
            f"pip install -U {info.value.distribution}" in str(info.value)
        _CHECKED[key] = name
        return
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    _tame_predictors(cfg, model)
    assert type(model).__name__ == cfg.MODEL.META_ARCHITECTURE
    with torch.no_grad():
        outputs = model(_inputs(cfg))
    assert isinstance(outputs, list) and len(outputs) == 1
    _check_output(cfg, outputs[0])
    _CHECKED[key] = name


PROVIDERS = sorted({d for (kind, _), d in STANDARD_PROVIDERS.items() if d != "det-core"})


@pytest.mark.slow
@pytest.mark.parametrize("distribution", PROVIDERS)
def test_configs_without_their_provider_name_it(distribution):
    """With one distribution disabled (as good as not installed), every zoo config that needs one
    of its components fails with the error naming it; the others do not ask for it."""
    from det.core import plugins

    needing = {}  # one config per distinct model
    for n in CONFIGS:
        cfg = _merged(n)
        if any(STANDARD_PROVIDERS.get(kn) == distribution for kn in required_components(cfg)):
            needing.setdefault(cfg.MODEL.dump(), n)
    needing = list(needing.values())
    assert needing, f"no zoo config uses {distribution}"
    plugins.disable(distribution)
    try:
        for name in needing:
            cfg = _shrunk(name)
            assert {STANDARD_PROVIDERS[kn] for kn in _missing(cfg)} == {distribution}, name
            with pytest.raises(ComponentNotFoundError) as info:
                build_model(cfg)
            assert info.value.distribution == distribution, name
            assert f"It is provided by {distribution}" in str(info.value), str(info.value)
    finally:
        plugins.reset()
