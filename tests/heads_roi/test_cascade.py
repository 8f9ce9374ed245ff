"""CascadeROIHeads from the model-zoo config Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml (widths shrunk
as in the golden README; without the mask head when det-heads-mask is not installed)."""

from __future__ import annotations

import pytest
import torch

from det.core import EventStorage, build_model, get_cfg
from det.core.registry import list_components
from det.structures import Boxes, Instances

pytestmark = pytest.mark.slow  # whole zoo-sized models: end-to-end

SHRINK = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16,
    "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "MODEL.ROI_BOX_HEAD.CONV_DIM", 32, "MODEL.ROI_MASK_HEAD.CONV_DIM", 32,
    "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", 200, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 64,
]


def _mask_head_installed(cfg) -> bool:
    return any(c.name == cfg.MODEL.ROI_MASK_HEAD.NAME for c in list_components("ROI_MASK_HEAD"))


@pytest.fixture(scope="module")
def cascade(configs_dir):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "Misc" / "cascade_mask_rcnn_R_50_FPN_1x.yaml"))
    cfg.merge_from_list(SHRINK)
    if not _mask_head_installed(cfg):
        cfg.MODEL.MASK_ON = False
    torch.manual_seed(0)
    return build_model(cfg), cfg


def _inputs(with_masks=False):
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    gt = Instances((96, 128))
    gt.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 50.0]]))
    gt.gt_classes = torch.tensor([1, 7])
    if with_masks:
        import numpy as np

        from det.structures import PolygonMasks

        gt.gt_masks = PolygonMasks([[np.array([10, 12, 60, 12, 60, 70, 10, 70], dtype=np.float64)],
                                    [np.array([70, 20, 120, 20, 120, 50], dtype=np.float64)]])
    return [{"image": image, "instances": gt}]


def test_structure_follows_detectron2(cascade):
    model, _cfg = cascade
    heads = model.roi_heads
    assert type(heads).__name__ == "CascadeROIHeads"
    assert heads.num_cascade_stages == 3
    assert [m.thresholds[1] for m in heads.proposal_matchers] == [0.5, 0.6, 0.7]
    assert heads.proposal_matcher is heads.proposal_matchers[0]
    assert [p.box2box_transform.weights for p in heads.box_predictor] == [
        (10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0)]
    names = set(model.state_dict())
    for i in range(3):
        assert {f"roi_heads.box_head.{i}.fc1.weight", f"roi_heads.box_head.{i}.fc2.bias",
                f"roi_heads.box_predictor.{i}.cls_score.weight", f"roi_heads.box_predictor.{i}.bbox_pred.bias"} <= names
        # class-agnostic regression
        assert heads.box_predictor[i].bbox_pred.out_features == 4


def test_trains_one_step_with_per_stage_losses_and_statistics(cascade):
    model, cfg = cascade
    model.train()
    with EventStorage(0) as storage:
        losses = model(_inputs(with_masks=cfg.MODEL.MASK_ON))
        stats = storage.latest()
    expected = {"loss_rpn_cls", "loss_rpn_loc"} | {f"loss_{n}_stage{i}" for n in ("cls", "box_reg") for i in range(3)}
    if cfg.MODEL.MASK_ON:
        expected.add("loss_mask")
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    for i in range(3):
        assert f"stage{i}/fast_rcnn/cls_accuracy" in stats
    assert {"roi_head/num_fg_samples", "stage1/roi_head/num_fg_samples", "stage2/roi_head/num_bg_samples"} <= set(stats)
    assert "fast_rcnn/cls_accuracy" not in stats
    sum(losses.values()).backward()
    assert model.roi_heads.box_head[2].fc1.weight.grad is not None


def test_inference_averages_stage_scores_and_uses_last_stage_boxes(cascade):
    model, _cfg = cascade
    heads = model.roi_heads.eval()
    saved = {k: v.clone() for k, v in heads.state_dict().items()}
    try:
        with torch.no_grad():
            for i, predictor in enumerate(heads.box_predictor):
                predictor.cls_score.weight.zero_()
                predictor.bbox_pred.weight.zero_()
                predictor.bbox_pred.bias.zero_()
                bias = torch.zeros(81)
                bias[5] = float(i + 1)  # stage i favours class 5 more and more
                predictor.cls_score.bias.copy_(bias)
        proposals = Instances((96, 128))
        proposals.proposal_boxes = Boxes(torch.tensor([[10.0, 10.0, 50.0, 40.0]]))
        proposals.objectness_logits = torch.tensor([1.0])
        features = {f: torch.rand(1, 16, 96 // s, 128 // s) for f, s in zip(["p2", "p3", "p4", "p5"], [4, 8, 16, 32])}
        with torch.no_grad():
            (det,), _ = heads(None, features, [proposals])
        probs = [torch.softmax(torch.tensor([0.0] * 5 + [float(i + 1)] + [0.0] * 75), 0)[5] for i in range(3)]
        expected = sum(probs) / 3
        assert det.pred_classes.tolist()[0] == 5
        assert det.scores[0].item() == pytest.approx(expected.item(), rel=1e-5)
        assert det.pred_boxes.tensor[0].tolist() == pytest.approx([10.0, 10.0, 50.0, 40.0], abs=1e-4)
    finally:
        heads.load_state_dict(saved)


def test_full_model_inference(cascade):
    model, _cfg = cascade
    model.eval()
    with torch.no_grad():
        (out,) = model([{"image": _inputs()[0]["image"]}])
    inst = out["instances"]
    assert inst.image_size == (96, 128)
    assert len(inst) <= 100
    assert {"pred_boxes", "scores", "pred_classes"} <= set(inst.get_fields())


def test_cascade_config_errors(configs_dir):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "Misc" / "cascade_mask_rcnn_R_50_FPN_1x.yaml"))
    cfg.merge_from_list(SHRINK)
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = False
    with pytest.raises(ValueError, match="class-agnostic"):
        build_model(cfg)
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
    cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = [0.5, 0.6]
    with pytest.raises(ValueError, match="one of each per stage"):
        build_model(cfg)


def test_images_without_ground_truth_and_without_proposals(cascade):
    model, cfg = cascade
    gt = Instances((96, 128))
    gt.gt_boxes = Boxes(torch.zeros(0, 4))
    gt.gt_classes = torch.zeros(0, dtype=torch.int64)
    if cfg.MODEL.MASK_ON:
        from det.structures import PolygonMasks

        gt.gt_masks = PolygonMasks([])
    model.train()
    with EventStorage(0):
        losses = model([{"image": _inputs()[0]["image"], "instances": gt}])
    assert all(losses[f"loss_box_reg_stage{i}"].item() == 0.0 for i in range(3))
    assert all(torch.isfinite(v) for v in losses.values())
    heads = model.roi_heads.eval()
    none = Instances((96, 128))
    none.proposal_boxes = Boxes(torch.zeros(0, 4))
    none.objectness_logits = torch.zeros(0)
    features = {f: torch.rand(1, 16, 96 // s, 128 // s) for f, s in zip(["p2", "p3", "p4", "p5"], [4, 8, 16, 32])}
    with torch.no_grad():
        (det,), _ = heads(None, features, [none])
    assert len(det) == 0
