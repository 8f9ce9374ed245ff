"""Every YAML of detectron2's projects/TridentNet/configs merges into a plain get_cfg(), builds,
runs inference and one training step, shrunk in width by overrides (depths and every structural
switch kept)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from det.backbones.resnet import BottleneckBlock
from det.core import build_model, get_cfg
from det.core.events import EventStorage
from det.core.layers import ShapeSpec
from det.projects.tridentnet import (
    TridentBottleneckBlock,
    TridentRes5ROIHeads,
    TridentRPN,
    TridentStandardROIHeads,
    merge_branch_instances,
)
from det.structures import Boxes, Instances

SHARED = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
CONFIG_DIR = SHARED / "detectron2-projects/projects/TridentNet/configs"
CONFIGS = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
SHRINK = ["MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.RES2_OUT_CHANNELS", 16,
          "MODEL.RESNETS.WIDTH_PER_GROUP", 4, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"]
DEPTH = {"Base-TridentNet-Fast-C4.yaml": 50, "tridentnet_fast_R_101_C4_3x.yaml": 101,
         "tridentnet_fast_R_50_C4_1x.yaml": 50, "tridentnet_fast_R_50_C4_3x.yaml": 50}


def test_the_four_configs_are_found():
    found = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    assert found == sorted(DEPTH), f"expected TridentNet's 4 YAMLs under {CONFIG_DIR}"


def merged(name: str, *overrides):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_DIR / name))
    cfg.merge_from_list([*SHRINK, *overrides])
    return cfg


def _images(num: int = 2):
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 64, 96, generator=g) * 255 for _ in range(num)]


def _tame_predictors(model):
    """Random-init features (PIXEL_STD 1) are ~1e3 and saturate the predictors: zero the final
    weights so that proposals are the anchors, boxes the proposals and class 0 scores high, so
    detections exist."""
    with torch.no_grad():
        model.proposal_generator.rpn_head.anchor_deltas.weight.zero_()
        for name in ("bbox_pred", "cls_score"):
            layer = getattr(model.roi_heads.box_predictor, name)
            layer.weight.zero_()
            layer.bias.zero_()
        model.roi_heads.box_predictor.cls_score.bias[0] = 5.0


@pytest.mark.parametrize("name", CONFIGS)
def test_config_merges_with_detectron2s_values(name):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_DIR / name))
    m = cfg.MODEL
    assert (m.META_ARCHITECTURE, m.BACKBONE.NAME, m.PROPOSAL_GENERATOR.NAME, m.ROI_HEADS.NAME) == (
        "GeneralizedRCNN", "build_trident_resnet_backbone", "TridentRPN", "TridentRes5ROIHeads")
    assert dict(m.TRIDENT) == {"NUM_BRANCH": 3, "BRANCH_DILATIONS": [1, 2, 3], "TEST_BRANCH_IDX": 1,
                               "TRIDENT_STAGE": "res4"}
    assert (m.RPN.POST_NMS_TOPK_TRAIN, m.ROI_HEADS.BATCH_SIZE_PER_IMAGE, m.ROI_HEADS.POSITIVE_FRACTION,
            m.ROI_HEADS.PROPOSAL_APPEND_GT) == (500, 128, 0.5, False)
    assert DEPTH[name] == m.RESNETS.DEPTH
    assert m.MASK_ON is False


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_infers_and_trains_one_step(name):
    cfg = merged(name)
    torch.manual_seed(0)
    model = build_model(cfg)

    # structure: res4 is the trident stage (its last block concatenates the branches); res5 is
    # the plain stage of the C4 ROI heads
    res4 = list(model.backbone.res4)
    assert [type(b) for b in res4] == [TridentBottleneckBlock] * {50: 6, 101: 23}[DEPTH[name]]
    assert [b.concat_output for b in res4] == [False] * (len(res4) - 1) + [True]
    assert all(b.conv2.dilations == [(1, 1), (2, 2), (3, 3)] and b.conv2.paddings == b.conv2.dilations for b in res4)
    assert all(type(b) is BottleneckBlock for b in (*model.backbone.res2, *model.backbone.res3))
    assert not hasattr(model.backbone, "res5")
    assert model.backbone.output_shape() == {"res4": ShapeSpec(channels=64, stride=16)}
    assert type(model.proposal_generator) is TridentRPN and type(model.roi_heads) is TridentRes5ROIHeads
    assert (model.proposal_generator.num_branch, model.proposal_generator.trident_fast) == (3, True)
    assert (model.roi_heads.num_branch, model.roi_heads.trident_fast) == (3, True)
    assert [type(b) for b in model.roi_heads.res5] == [BottleneckBlock] * 3

    # inference (TridentNet Fast: the middle branch alone), two images, rescaled outputs
    _tame_predictors(model)
    images = _images()
    model.eval()
    with torch.no_grad():
        outputs = model([{"image": im, "height": 32, "width": 48} for im in images])
    assert len(outputs) == 2
    for out in outputs:
        instances = out["instances"]
        assert instances.image_size == (32, 48)
        assert 0 < len(instances) <= cfg.TEST.DETECTIONS_PER_IMAGE
        assert set(instances.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
        assert (instances.scores[:-1] >= instances.scores[1:]).all()
        boxes = instances.pred_boxes.tensor
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 48).all() and (boxes[:, 3] <= 32).all()

    # one training step: every branch runs, so the ROI heads see 3 x 2 proposal sets
    seen = {}
    model.roi_heads.register_forward_pre_hook(
        lambda module, args: seen.update(proposals=len(args[2]), targets=len(args[3])))
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = []
    for im in images:
        gt = Instances((64, 96))
        gt.gt_boxes = Boxes(torch.tensor([[8.0, 10.0, 40.0, 50.0], [50.0, 5.0, 90.0, 30.0]]))
        gt.gt_classes = torch.tensor([3, 7])
        batch.append({"image": im, "instances": gt})
    shared = model.backbone.res4[0].conv2.weight
    before = shared.detach().clone()
    with EventStorage():
        losses = model(batch)
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert seen == {"proposals": 6, "targets": 2}  # the heads repeat the 2 targets per branch themselves
    optimizer.zero_grad()
    sum(losses.values()).backward()
    assert shared.grad is not None and shared.grad.abs().sum() > 0
    assert model.backbone.stem.conv1.weight.grad is None  # FREEZE_AT 2: stem and res2 frozen
    optimizer.step()
    assert not torch.equal(shared.detach(), before)


def test_all_branches_at_inference_merge_what_each_branch_finds_alone():
    """TEST_BRANCH_IDX -1 runs the three branches side by side: each image's detections are those
    of the three one-branch models merged by per-class NMS."""
    torch.manual_seed(3)
    model = build_model(merged("tridentnet_fast_R_50_C4_1x.yaml", "MODEL.TRIDENT.TEST_BRANCH_IDX", -1))
    _tame_predictors(model)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[:4] = torch.tensor([5.0, 4.0, 3.0, 2.0])
    model.eval()
    state = model.state_dict()
    inputs = [{"image": im} for im in _images()]
    with torch.no_grad():
        together = model(inputs)
        alone = []
        for branch in range(3):
            one = build_model(merged("tridentnet_fast_R_50_C4_1x.yaml", "MODEL.TRIDENT.TEST_BRANCH_IDX", branch))
            one.load_state_dict(state, strict=True)
            alone.append([out["instances"] for out in one.eval()(inputs)])
    assert (model.roi_heads.trident_fast, model.proposal_generator.trident_fast) == (False, False)
    expected = merge_branch_instances([inst for branch in alone for inst in branch], 3, 0.5, 100)
    for out, exp in zip(together, expected):
        got = out["instances"]
        assert len(got) == len(exp) > 0
        torch.testing.assert_close(got.scores, exp.scores)
        torch.testing.assert_close(got.pred_boxes.tensor, exp.pred_boxes.tensor)
        assert torch.equal(got.pred_classes, exp.pred_classes)


def test_trident_standard_roi_heads_on_an_fpn_free_res4():
    """TridentStandardROIHeads (no YAML of the project uses it) trains and infers on the trident
    res4 with a box head of its own."""
    cfg = merged("tridentnet_fast_R_50_C4_1x.yaml", "MODEL.ROI_HEADS.NAME", "TridentStandardROIHeads",
                 "MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead", "MODEL.ROI_BOX_HEAD.NUM_FC", 2,
                 "MODEL.ROI_BOX_HEAD.FC_DIM", 32, "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", 7)
    torch.manual_seed(0)
    model = build_model(cfg)
    assert type(model.roi_heads) is TridentStandardROIHeads
    assert model.roi_heads.box_in_features == ["res4"]
    _tame_predictors(model)
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": _images(1)[0]}])
    assert 0 < len(out["instances"]) <= 100
    model.train()
    gt = Instances((64, 96))
    gt.gt_boxes = Boxes(torch.tensor([[8.0, 10.0, 40.0, 50.0]]))
    gt.gt_classes = torch.tensor([1])
    with EventStorage():
        losses = model([{"image": _images(1)[0], "instances": gt}])
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
    assert all(math.isfinite(v.item()) for v in losses.values())


@pytest.mark.parametrize(("overrides", "message"), [
    (["MODEL.TRIDENT.BRANCH_DILATIONS", [1, 2]],
     r"MODEL.TRIDENT.BRANCH_DILATIONS needs one dilation per branch \(MODEL.TRIDENT.NUM_BRANCH=3\), got \[1, 2\]"),
    (["MODEL.TRIDENT.TEST_BRANCH_IDX", 3],
     r"MODEL.TRIDENT.TEST_BRANCH_IDX must be -1 \(every branch\) or a branch in \[0, 3\), got 3"),
    (["MODEL.TRIDENT.TRIDENT_STAGE", "res6"], r"MODEL.TRIDENT.TRIDENT_STAGE must be one of \['res2', 'res3', 'res4', 'res5'\], got 'res6'"),
    (["MODEL.TRIDENT.TRIDENT_STAGE", "res5"], r"TRIDENT_STAGE is res5, but the backbone stops at MODEL.RESNETS.OUT_FEATURES=\['res4'\]"),
    (["MODEL.RESNETS.DEPTH", 34], r"MODEL.RESNETS.DEPTH must be one of \[50, 101, 152\] for TridentNet"),
    (["MODEL.RESNETS.DEFORM_ON_PER_STAGE", [False, False, True, False]],
     r"deformable convs in the trident stage res4, which trident blocks do not support"),
])
def test_bad_trident_settings_fail_with_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model(merged("tridentnet_fast_R_50_C4_1x.yaml", *overrides))


def test_trident_heads_on_a_plain_backbone_say_what_is_wrong():
    cfg = merged("tridentnet_fast_R_50_C4_1x.yaml", "MODEL.BACKBONE.NAME", "build_resnet_backbone")
    model = build_model(cfg).train()
    gt = Instances((64, 96))
    gt.gt_boxes = Boxes(torch.tensor([[8.0, 10.0, 40.0, 50.0]]))
    gt.gt_classes = torch.tensor([1])
    with EventStorage(), pytest.raises(ValueError, match=(
            r"TridentRPN: feature 'res4' has batch size 1, expected 3 branch\(es\) x 1 image\(s\) = 3; "
            r"the backbone must be build_trident_resnet_backbone")):
        model([{"image": _images(1)[0], "instances": gt}])


def test_fast_mode_fuses_the_trident_blocks_and_keeps_the_detections():
    import copy

    from det.core.fast import fast_mode

    torch.manual_seed(0)
    model = build_model(merged("tridentnet_fast_R_50_C4_1x.yaml"))
    _tame_predictors(model)
    model.eval()
    inputs = [{"image": im} for im in _images()]
    with torch.no_grad():
        expected = model(inputs)
        fast = fast_mode(copy.deepcopy(model), bf16=False)
        got = fast(inputs)
    block = fast.backbone.res4[0]
    assert block.conv1.activation is not None and block.conv2.activation is not None  # ReLUs moved in
    for ours, theirs in zip(got, expected):
        ours, theirs = ours["instances"], theirs["instances"]
        assert len(ours) == len(theirs) > 0
        torch.testing.assert_close(ours.scores, theirs.scores, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours.pred_boxes.tensor, theirs.pred_boxes.tensor, rtol=1e-4, atol=1e-2)
