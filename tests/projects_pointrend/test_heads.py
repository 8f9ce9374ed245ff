"""PointRend's heads: detectron2's parameter names and shapes (state dicts written from the
documented layout load with strict=True), old-layout upgrades, and the point MLPs and point loss
against direct computations."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from det.core.config import get_cfg
from det.core.events import EventStorage
from det.core.layers import ShapeSpec
from det.core.registry import get_component
from det.projects.point_rend.point_head import ImplicitPointHead, StandardPointHead, roi_mask_point_loss
from det.structures import Boxes, Instances

from ._helpers import POINTREND

FPN = {f"p{i}": ShapeSpec(channels=256, stride=2**i) for i in range(2, 7)}


def cfg_of(yaml: str, *overrides):
    cfg = get_cfg()
    cfg.merge_from_file(str(POINTREND / yaml))
    cfg.merge_from_list(list(overrides))
    return cfg


def mask_head_of(cfg):
    shapes = {f: FPN[f] for f in cfg.MODEL.ROI_HEADS.IN_FEATURES}
    return get_component("ROI_MASK_HEAD", cfg.MODEL.ROI_MASK_HEAD.NAME)(cfg, shapes)


# detectron2's PointRend R50-FPN COCO model (Base-PointRend-RCNN-FPN.yaml): roi_heads.mask_head.*
POINTREND_MASK_HEAD = {
    "coarse_head.reduce_spatial_dim_conv.weight": (256, 256, 2, 2),
    "coarse_head.reduce_spatial_dim_conv.bias": (256,),
    "coarse_head.fc1.weight": (1024, 256 * 7 * 7),
    "coarse_head.fc1.bias": (1024,),
    "coarse_head.fc2.weight": (1024, 1024),
    "coarse_head.fc2.bias": (1024,),
    "coarse_head.prediction.weight": (80 * 7 * 7, 1024),
    "coarse_head.prediction.bias": (80 * 7 * 7,),
    "point_head.fc1.weight": (256, 256 + 80, 1),
    "point_head.fc1.bias": (256,),
    "point_head.fc2.weight": (256, 256 + 80, 1),
    "point_head.fc2.bias": (256,),
    "point_head.fc3.weight": (256, 256 + 80, 1),
    "point_head.fc3.bias": (256,),
    "point_head.predictor.weight": (80, 256 + 80, 1),
    "point_head.predictor.bias": (80,),
}

# PointRend semantic R101-FPN Cityscapes: sem_seg_head.* (SemSegFPNHead + point head, no coarse
# prediction after the first layer)
POINTREND_SEMSEG_HEAD = {
    # each level's tower: conv (+ 2x upsample, no parameters) per halving of the stride down to 4
    **{f"coarse_sem_seg_head.{level}.{2 * k if level != 'p2' else k}.{p}": shape
       for level, n in (("p2", 1), ("p3", 1), ("p4", 2), ("p5", 3)) for k in range(n)
       for p, shape in (("weight", (128, 256 if k == 0 else 128, 3, 3)), ("norm.weight", (128,)), ("norm.bias", (128,)))},
    "coarse_sem_seg_head.predictor.weight": (19, 128, 1, 1),
    "coarse_sem_seg_head.predictor.bias": (19,),
    "point_head.fc1.weight": (256, 256 + 19, 1),
    "point_head.fc1.bias": (256,),
    "point_head.fc2.weight": (256, 256, 1),
    "point_head.fc2.bias": (256,),
    "point_head.fc3.weight": (256, 256, 1),
    "point_head.fc3.bias": (256,),
    "point_head.predictor.weight": (19, 256, 1),
    "point_head.predictor.bias": (19,),
}


def load_documented(module, documented: dict[str, tuple[int, ...]]) -> None:
    """Load random tensors under the documented names with strict=True, then check they arrived."""
    torch.manual_seed(0)
    state = {k: torch.randn(shape) for k, shape in documented.items()}
    buffers = {k: v for k, v in module.state_dict().items() if k not in documented}
    module.load_state_dict({**state, **buffers}, strict=True)
    got = module.state_dict()
    for k, v in state.items():
        assert torch.equal(got[k], v), k


def test_pointrend_mask_head_has_detectron2_checkpoint_layout():
    head = mask_head_of(cfg_of("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml"))
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == POINTREND_MASK_HEAD
    load_documented(head, POINTREND_MASK_HEAD)
    # the subdivision starts at 28x28 (7 -> 14 -> 28 cover 784 points at once) and takes 3 steps
    assert (head.mask_point_subdivision_init_resolution, head.mask_point_subdivision_steps) == (28, 3)


def test_implicit_pointrend_mask_head_layout():
    # full width would make parameter_head.prediction 283472 x 1024; the layout is the same narrower
    cfg = cfg_of("InstanceSegmentation/implicit_pointrend_R_50_FPN_1x_coco.yaml", "MODEL.POINT_HEAD.FC_DIM", 8)
    head = mask_head_of(cfg)
    # point MLP: (256 p2 + 256 positional) -> 8 -> 8 -> 8 -> 80, weights then biases
    num_params = 512 * 8 + 8 * 8 + 8 * 8 + 8 * 80 + (8 + 8 + 8 + 80)
    assert head.num_params == head.point_head.num_params == num_params
    expected = {k.replace("coarse_head.", "parameter_head."): v for k, v in POINTREND_MASK_HEAD.items()
                if k.startswith("coarse_head.")}
    expected["parameter_head.prediction.weight"] = (num_params, 1024)
    expected["parameter_head.prediction.bias"] = (num_params,)
    expected["point_head.positional_encoding_gaussian_matrix"] = (2, 128)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == expected
    load_documented(head, expected)
    assert head.mask_point_subdivision_init_resolution == 28 and head.regularizer == 0.00001


def test_pointrend_semseg_head_layout():
    cfg = cfg_of("SemanticSegmentation/pointrend_semantic_R_101_FPN_1x_cityscapes.yaml")
    head = get_component("SEM_SEG_HEADS", "PointRendSemSegHead")(cfg, FPN)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == POINTREND_SEMSEG_HEAD
    load_documented(head, POINTREND_SEMSEG_HEAD)


def test_old_pointrend_checkpoints_are_upgraded_on_load():
    cfg = cfg_of("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml", "MODEL.ROI_HEADS.NAME", "PointRendROIHeads")
    roi_heads = get_component("ROI_HEADS", "PointRendROIHeads")(cfg, FPN)
    state = roi_heads.state_dict()
    old = {}
    for k, v in state.items():
        k = k.replace("mask_head.point_head", "mask_point_head").replace("mask_head.coarse_head.fc", "mask_coarse_head.coarse_mask_fc")
        old[k.replace("mask_head.coarse_head", "mask_coarse_head")] = v.clone() + 1
    assert "mask_coarse_head.coarse_mask_fc1.weight" in old and "mask_point_head.fc1.weight" in old
    roi_heads.load_state_dict(old, strict=True)  # no version metadata: the old layout
    torch.testing.assert_close(roi_heads.mask_head.coarse_head.fc1.weight, state["mask_head.coarse_head.fc1.weight"])
    # CoarseMaskHead configs are upgraded too
    cfg.MODEL.ROI_MASK_HEAD.NAME = "CoarseMaskHead"
    assert type(get_component("ROI_HEADS", "PointRendROIHeads")(cfg, FPN).mask_head).__name__ == "PointRendMaskHead"
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    with pytest.raises(ValueError, match="PointRendROIHeads builds PointRendMaskHead"):
        get_component("ROI_HEADS", "PointRendROIHeads")(cfg, FPN)


def test_standard_point_head_is_the_documented_mlp():
    cfg = cfg_of("InstanceSegmentation/Base-PointRend-RCNN-FPN.yaml", "MODEL.POINT_HEAD.FC_DIM", 6,
                 "MODEL.POINT_HEAD.NUM_CLASSES", 3, "MODEL.POINT_HEAD.NUM_FC", 2)
    head = StandardPointHead(cfg, ShapeSpec(channels=4))
    torch.manual_seed(0)
    for p in head.parameters():
        p.data.normal_()
    fine, coarse = torch.randn(2, 4, 5), torch.randn(2, 3, 5)
    for r in range(2):
        for j in range(5):
            x = torch.cat([fine[r, :, j], coarse[r, :, j]])
            for fc in (head.fc1, head.fc2):
                x = torch.cat([F.relu(fc.weight[:, :, 0] @ x + fc.bias), coarse[r, :, j]])
            expected = head.predictor.weight[:, :, 0] @ x + head.predictor.bias
            torch.testing.assert_close(head(fine, coarse)[r, :, j], expected, atol=1e-5, rtol=1e-5)


def test_implicit_point_head_runs_each_regions_own_mlp():
    cfg = cfg_of("InstanceSegmentation/Base-Implicit-PointRend.yaml", "MODEL.POINT_HEAD.FC_DIM", 4,
                 "MODEL.POINT_HEAD.NUM_FC", 2, "MODEL.POINT_HEAD.NUM_CLASSES", 2)
    torch.manual_seed(0)
    head = ImplicitPointHead(cfg, ShapeSpec(channels=3))
    fine, coords = torch.randn(2, 3, 5), torch.rand(2, 5, 2)
    params = torch.randn(2, head.num_params)
    out = head(fine, coords, params)
    assert out.shape == (2, 2, 5)
    g = head.positional_encoding_gaussian_matrix
    sizes = [(4, 259), (4, 4), (2, 4)]  # (out, in) of each layer: 256 positional + 3 image channels first
    for r in range(2):
        flat = params[r].tolist()
        weights, biases, at = [], [], 0
        for o, i in sizes:
            weights.append(torch.tensor(flat[at:at + o * i]).view(o, i))
            at += o * i
        for o, _ in sizes:
            biases.append(torch.tensor(flat[at:at + o]))
            at += o
        assert at == head.num_params
        for j in range(5):
            proj = 2 * torch.pi * ((2 * coords[r, j] - 1) @ g)
            x = torch.cat([torch.sin(proj), torch.cos(proj), fine[r, :, j]])
            for k, (w, b) in enumerate(zip(weights, biases)):
                x = w @ x + b
                x = F.relu(x) if k < 2 else x
            torch.testing.assert_close(out[r, :, j], x, atol=1e-4, rtol=1e-4)


def test_roi_mask_point_loss_is_bce_of_the_gt_class_ignoring_minus_one():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6)
    labels = torch.rand(3, 6).round()
    labels[1, 2] = -1
    a, b = Instances((10, 10)), Instances((10, 10))
    a.gt_classes, b.gt_classes = torch.tensor([2]), torch.tensor([0, 3])
    with EventStorage(0) as storage:
        loss = roi_mask_point_loss(logits, [a, Instances((10, 10), gt_classes=torch.zeros(0, dtype=torch.long)), b],
                                   labels)
    total, count, correct = 0.0, 0, 0
    for r, c in enumerate([2, 0, 3]):
        for j in range(6):
            z, y = float(logits[r, c, j]), float(labels[r, j])
            count += 1
            if y == -1:
                continue
            total += max(z, 0) - z * y + torch.log1p(torch.exp(torch.tensor(-abs(z)))).item()
            correct += int((z > 0) == (y == 1))
    assert loss.item() == pytest.approx(total / count, rel=1e-5)  # mean over all points, ignored weigh 0
    assert storage.history("point/accuracy").latest() == pytest.approx(correct / 17)


def test_mask_head_inference_subdivides_to_224_and_handles_no_detections():
    cfg = cfg_of("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml", "MODEL.ROI_MASK_HEAD.FC_DIM", 32,
                 "MODEL.POINT_HEAD.FC_DIM", 16, "MODEL.ROI_MASK_HEAD.CONV_DIM", 16)
    shapes = {f: ShapeSpec(channels=16, stride=FPN[f].stride) for f in cfg.MODEL.ROI_HEADS.IN_FEATURES}
    head = get_component("ROI_MASK_HEAD", "PointRendMaskHead")(cfg, shapes).eval()
    features = {f: torch.randn(1, 16, 64 // s.stride, 64 // s.stride) for f, s in shapes.items()}
    found = Instances((64, 64), pred_boxes=Boxes(torch.tensor([[4.0, 4.0, 40.0, 30.0], [10.0, 20.0, 60.0, 62.0]])),
                      pred_classes=torch.tensor([5, 79]))
    none = Instances((64, 64), pred_boxes=Boxes(torch.zeros(0, 4)), pred_classes=torch.zeros(0, dtype=torch.long))
    with torch.no_grad():
        [out] = head(features, [found])
        [empty] = head(features, [none])
    assert out.pred_masks.shape == (2, 1, 224, 224)
    assert ((out.pred_masks >= 0) & (out.pred_masks <= 1)).all()
    assert empty.pred_masks.shape == (0, 1, 28, 28)


def test_semseg_subdivision_recomputing_every_pixel_is_the_point_head_at_every_pixel():
    """With SUBDIVISION_NUM_POINTS >= pixels, each step recomputes every cell, so the result is the
    point head evaluated directly at the centre of every output pixel."""
    cfg = cfg_of("SemanticSegmentation/Base-PointRend-Semantic-FPN.yaml", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 5,
                 "MODEL.POINT_HEAD.NUM_CLASSES", 5, "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32, "MODEL.POINT_HEAD.FC_DIM", 8)
    shapes = {f"p{i}": ShapeSpec(channels=8, stride=2**i) for i in range(2, 6)}
    torch.manual_seed(0)
    head = get_component("SEM_SEG_HEADS", "PointRendSemSegHead")(cfg, shapes).eval()
    for p in head.point_head.parameters():
        p.data.normal_()
    features = {f: torch.randn(1, 8, 64 // s.stride, 96 // s.stride) for f, s in shapes.items()}
    with torch.no_grad():
        logits, _ = head(features)
        coarse = head.coarse_sem_seg_head.layers(features)  # (1, 5, 16, 24) at stride 4
        assert logits.shape == (1, 5, 64, 96)  # two 2x steps
        ys, xs = torch.meshgrid((torch.arange(64) + 0.5) / 64, (torch.arange(96) + 0.5) / 96, indexing="ij")
        centres = torch.stack([xs.flatten(), ys.flatten()], dim=1)[None]
        from det.projects.point_rend.point_features import point_sample

        direct = head.point_head(point_sample(features["p2"], centres, align_corners=False),
                                 point_sample(coarse, centres, align_corners=False))
    torch.testing.assert_close(logits.view(1, 5, -1), direct, atol=1e-5, rtol=1e-5)


def test_semseg_head_refuses_itself_as_coarse_head():
    cfg = cfg_of("SemanticSegmentation/Base-PointRend-Semantic-FPN.yaml",
                 "MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME", "PointRendSemSegHead")
    with pytest.raises(ValueError, match="COARSE_SEM_SEG_HEAD_NAME is 'PointRendSemSegHead', a PointRend head itself"):
        get_component("SEM_SEG_HEADS", "PointRendSemSegHead")(cfg, FPN)
    cfg.MODEL.POINT_HEAD.NUM_CLASSES = 3
    with pytest.raises(ValueError, match=r"MODEL.POINT_HEAD.NUM_CLASSES \(3\) must equal MODEL.SEM_SEG_HEAD.NUM_CLASSES \(54\)"):
        cfg.MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME = "SemSegFPNHead"
        get_component("SEM_SEG_HEADS", "PointRendSemSegHead")(cfg, FPN)


def test_mask_head_config_errors_name_the_key():
    cfg = cfg_of("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml", "MODEL.ROI_MASK_HEAD.POOLER_TYPE",
                 "ROIAlignV2")
    with pytest.raises(ValueError, match=r"set MODEL\.ROI_MASK_HEAD\.POOLER_TYPE to \"\" \(got 'ROIAlignV2'\)"):
        get_component("ROI_MASK_HEAD", "PointRendMaskHead")(cfg, FPN["p2"])
    cfg = cfg_of("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml", "MODEL.POINT_HEAD.IN_FEATURES", ["p9"])
    with pytest.raises(ValueError, match=r"MODEL.POINT_HEAD.IN_FEATURES names \['p9'\], which the mask head is not given"):
        mask_head_of(cfg)
    cfg = cfg_of("InstanceSegmentation/pointrend_rcnn_R_50_FPN_1x_coco.yaml", "MODEL.ROI_MASK_HEAD.CONV_DIM", 512)
    with pytest.raises(ValueError, match="region features have 256 channels, fewer than conv_dim 512"):
        mask_head_of(cfg)
