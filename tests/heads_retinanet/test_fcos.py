"""FCOS and FCOSHead: the point-to-box assignment against an independent loop over FCOS's rules,
centerness targets, the three losses against hand-written formulas, inference scoring, names."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from det.core import EventStorage, build_model, get_cfg
from det.core.layers import ShapeSpec
from det.core.modeling import Backbone
from det.heads.retinanet import FCOS, FCOSHead
from det.structures import Boxes, Instances

STRIDES = {"p3": 8, "p4": 16, "p5": 32}


class ToyFPN(Backbone):
    """Three levels p3/p4/p5 (strides 8/16/32) with 4 channels each."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleDict({k: nn.Conv2d(3, 4, kernel_size=s, stride=s) for k, s in STRIDES.items()})
        self._out_features = list(STRIDES)
        self._out_feature_channels = {k: 4 for k in STRIDES}
        self._out_feature_strides = dict(STRIDES)

    def forward(self, x):
        return {k: conv(x) for k, conv in self.convs.items()}


def _fcos(num_classes=3, **overrides) -> FCOS:
    kwargs = dict(
        backbone=ToyFPN(),
        head=FCOSHead(input_shape=[ShapeSpec(channels=4)] * 3, conv_dims=[4, 4], num_classes=num_classes,
                      norm="", prior_prob=0.01),
        head_in_features=["p3", "p4", "p5"],
        num_classes=num_classes,
        pixel_mean=(0.0, 0.0, 0.0),
        pixel_std=(1.0, 1.0, 1.0),
    )
    kwargs.update(overrides)
    return FCOS(**kwargs)


def _gt(boxes, classes, size=(128, 128)) -> Instances:
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


def reference_assignment(boxes, classes, image=128, radius=1.5, num_classes=3):
    """FCOS's rule, written as a loop over points (level by level, row-major), in plain floats:
    a point at the centre of its cell is foreground for a box when it is strictly inside it,
    |point - box centre| < radius * stride on both axes, and the largest of its distances to
    the four sides is in the level's range (first level from 0, last level to infinity); the
    smallest such box wins."""
    levels = list(STRIDES.values())
    labels, matched = [], []
    for li, s in enumerate(levels):
        lo = 0.0 if li == 0 else 4.0 * s
        hi = math.inf if li == len(levels) - 1 else 8.0 * s
        n = image // s
        for iy in range(n):
            for ix in range(n):
                px, py = (ix + 0.5) * s, (iy + 0.5) * s
                best = None
                for j, (x0, y0, x1, y1) in enumerate(boxes):
                    d = (px - x0, py - y0, x1 - px, y1 - py)
                    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                    if min(d) <= 0 or max(abs(px - cx), abs(py - cy)) >= radius * s:
                        continue
                    if not lo < max(d) < hi:
                        continue
                    area = (x1 - x0) * (y1 - y0)
                    if best is None or area < best[1]:
                        best = (j, area)
                labels.append(num_classes if best is None else classes[best[0]])
                matched.append(list(boxes[best[0]]) if best is not None else None)
    return labels, matched


def _anchors(model, image=128):
    features = [torch.zeros(1, 4, image // s, image // s) for s in STRIDES.values()]
    return model.anchor_generator(features)


# boxes for every level (p3: largest side distance < 64, p4: 64..128, p5: > 128), nested and
# overlapping ones (the smallest wins), one touching the image border
BOXES = [[8.0, 8.0, 40.0, 40.0], [4.0, 60.0, 124.0, 124.0], [20.0, 20.0, 100.0, 90.0], [30.0, 30.0, 46.0, 50.0],
         [64.0, 0.0, 128.0, 48.0], [0.0, 0.0, 256.0, 256.0], [100.0, 120.0, 250.0, 256.0]]
CLASSES = [0, 2, 1, 1, 0, 2, 1]


def test_anchor_points_are_stride_boxes_at_cell_centres():
    anchors = _anchors(_fcos())
    assert [len(a) for a in anchors] == [256, 64, 16]
    assert anchors[0].tensor[:2].tolist() == [[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0]]
    assert anchors[2].get_centers()[5].tolist() == [48.0, 48.0]


def test_target_assignment_matches_an_independent_loop():
    model = _fcos()
    labels, matched = model.label_anchors(_anchors(model, 256), [_gt(BOXES, CLASSES, size=(256, 256))])
    want_labels, want_matched = reference_assignment(BOXES, CLASSES, image=256)
    assert labels[0].tolist() == want_labels
    fg = [i for i, lab in enumerate(want_labels) if lab != 3]
    assert [matched[0][i].tolist() for i in fg] == [want_matched[i] for i in fg]
    # every level and every box takes part in this case
    foreground = torch.tensor(want_labels) != 3
    assert foreground[:1024].any() and foreground[1024:1280].any() and foreground[1280:].any()
    assert {tuple(want_matched[i]) for i in fg} == {tuple(b) for b in BOXES}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_target_assignment_matches_on_random_boxes(seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(12, 2, generator=g) * 100
    wh = torch.rand(12, 2, generator=g) * 120 + 4
    boxes = torch.cat([xy, (xy + wh).clamp(max=128)], dim=1).round().tolist()
    classes = torch.randint(0, 3, (12,), generator=g).tolist()
    model = _fcos(center_sampling_radius=2.5)
    labels, _ = model.label_anchors(_anchors(model), [_gt(boxes, classes)])
    assert labels[0].tolist() == reference_assignment(boxes, classes, radius=2.5)[0]


def test_no_ground_truth_is_all_background():
    model = _fcos()
    labels, matched = model.label_anchors(_anchors(model), [_gt([], [])])
    assert labels[0].tolist() == [3] * 336 and torch.equal(matched[0], torch.zeros(336, 4))


def test_centerness_targets():
    model = _fcos()
    anchors = [Boxes(torch.tensor([[8.0, 8.0, 16.0, 16.0], [0.0, 0.0, 8.0, 8.0]]))]  # centres (12,12), (4,4)
    gt = torch.tensor([[8.0, 4.0, 40.0, 20.0], [0.0, 0.0, 8.0, 8.0]])
    ctr = model.compute_ctrness_targets(anchors, [gt])
    # point (12, 12) in [8, 4, 40, 20]: l=4, r=28, t=8, b=8 -> sqrt(4/28 * 8/8); (4,4) centred -> 1
    assert ctr.shape == (1, 2)
    assert ctr[0].tolist() == pytest.approx([math.sqrt(4 / 28), 1.0])


def _sigmoid_focal(logit, target, alpha=0.25, gamma=2.0):
    p = 1 / (1 + math.exp(-logit))
    p_t = p if target == 1 else 1 - p
    a_t = alpha if target == 1 else 1 - alpha
    return -a_t * (1 - p_t) ** gamma * math.log(p_t)


def _giou_loss(a, b):
    ix0, iy0, ix1, iy1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix1 - ix0) * max(0.0, iy1 - iy0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return 1 - (inter / union - (hull - union) / hull)


def test_losses_match_hand_computed_focal_giou_and_centerness():
    model = _fcos(num_classes=2)
    anchors = [Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0], [16.0, 0.0, 24.0, 8.0]]))]
    gt_labels = [torch.tensor([1, 2, 0])]  # 2 = background
    gt_boxes = [torch.tensor([[0.0, 0.0, 12.0, 10.0], [0.0, 0.0, 1.0, 1.0], [14.0, -2.0, 30.0, 6.0]])]
    logits = [torch.tensor([[[0.3, -1.2], [2.0, -0.5], [-0.7, 0.9]]])]
    deltas = [torch.tensor([[[0.4, 0.5, 1.0, 0.6], [1.0, 1.0, 1.0, 1.0], [0.3, 0.9, 0.8, 0.2]]])]
    ctr_logits = [torch.tensor([[[0.2], [5.0], [-0.4]]])]
    with EventStorage(0) as storage:
        losses = model.losses(anchors, logits, gt_labels, deltas, gt_boxes, ctr_logits)
        assert storage.latest()["num_pos_anchors"][0] == 2

    normalizer = 0.9 * 300 + 0.1 * 2
    targets = [[0, 1], [0, 0], [1, 0]]
    focal = sum(_sigmoid_focal(logits[0][0, r, k].item(), targets[r][k]) for r in range(3) for k in range(2))
    assert losses["loss_fcos_cls"].item() == pytest.approx(focal / normalizer, rel=1e-5)

    def decode(anchor, d):  # distances in strides from the anchor centre
        cx, cy, s = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2, anchor[2] - anchor[0]
        return [cx - d[0] * s, cy - d[1] * s, cx + d[2] * s, cy + d[3] * s]

    fg = [0, 2]
    a, g, d = anchors[0].tensor.tolist(), gt_boxes[0].tolist(), deltas[0][0].tolist()
    giou = sum(_giou_loss(decode(a[r], d[r]), g[r]) for r in fg)
    assert losses["loss_fcos_loc"].item() == pytest.approx(giou / normalizer, rel=1e-5)

    def centerness(anchor, box):
        cx, cy = (anchor[0] + anchor[2]) / 2, (anchor[1] + anchor[3]) / 2
        l, t, r, b = cx - box[0], cy - box[1], box[2] - cx, box[3] - cy
        return math.sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))

    def bce(logit, target):
        p = 1 / (1 + math.exp(-logit))
        return -(target * math.log(p) + (1 - target) * math.log(1 - p))

    ctr = sum(bce(ctr_logits[0][0, r, 0].item(), centerness(a[r], g[r])) for r in fg)
    assert losses["loss_fcos_ctr"].item() == pytest.approx(ctr / normalizer, rel=1e-5)
    assert model.loss_normalizer == pytest.approx(normalizer)


class FixedHead(nn.Module):
    """Returns preset logits / distances / centerness on one 2x2 level (stride 8)."""

    def __init__(self, logits, deltas, ctr):
        super().__init__()
        self.out = (logits, deltas, ctr)

    def forward(self, features):
        return [[t.clone()] for t in self.out]


class OneLevel(Backbone):
    def __init__(self):
        super().__init__()
        self._out_features, self._out_feature_channels, self._out_feature_strides = ["p3"], {"p3": 1}, {"p3": 8}

    def forward(self, x):
        return {"p3": x[:, :1, ::8, ::8]}


def test_inference_scores_are_geometric_mean_of_class_and_centerness():
    logits = torch.full((1, 2, 2, 2), -10.0)
    logits[0, 1, 0, 0] = 2.0  # point (4, 4): class 1
    logits[0, 0, 1, 1] = 0.0  # point (12, 12): class 0, p = 0.5
    ctr = torch.zeros(1, 1, 2, 2)
    ctr[0, 0, 1, 1] = -3.0
    deltas = torch.full((1, 4, 2, 2), 0.5)  # boxes of side 8 around each point
    model = _fcos(num_classes=2, backbone=OneLevel(), head=FixedHead(logits, deltas, ctr), head_in_features=["p3"],
                  test_score_thresh=0.1).eval()
    with torch.no_grad():
        inst = model([{"image": torch.zeros(3, 16, 16)}])[0]["instances"]
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # (12, 12): sqrt(0.5 * sigmoid(-3)) = 0.155 > 0.1; the -10 logits give ~0.0048, below
    assert inst.scores.tolist() == pytest.approx([math.sqrt(s(2.0) * 0.5), math.sqrt(0.5 * s(-3.0))], rel=1e-5)
    assert inst.pred_classes.tolist() == [1, 0]
    assert inst.pred_boxes.tensor.tolist() == [[0.0, 0.0, 8.0, 8.0], [8.0, 8.0, 16.0, 16.0]]
    model.test_score_thresh = 0.2  # the model-zoo threshold drops the second
    with torch.no_grad():
        assert len(model([{"image": torch.zeros(3, 16, 16)}])[0]["instances"]) == 1


def test_head_shapes_names_and_init():
    head = FCOSHead(input_shape=[ShapeSpec(channels=32)] * 2, conv_dims=[32, 32], num_classes=5, norm="GN")
    logits, deltas, ctr = head([torch.rand(2, 32, 8, 8), torch.rand(2, 32, 4, 4)])
    assert [t.shape for t in logits] == [(2, 5, 8, 8), (2, 5, 4, 4)]
    assert [t.shape for t in deltas] == [(2, 4, 8, 8), (2, 4, 4, 4)]
    assert [t.shape for t in ctr] == [(2, 1, 8, 8), (2, 1, 4, 4)]
    # detectron2's FCOS checkpoint keys: RetinaNetHead's towers (conv, GN, ReLU) + ctrness
    assert sorted(k for k in head.state_dict() if not k.startswith(("cls_subnet", "bbox_subnet"))) == [
        "bbox_pred.bias", "bbox_pred.weight", "cls_score.bias", "cls_score.weight", "ctrness.bias", "ctrness.weight"]
    assert "cls_subnet.1.weight" in head.state_dict() and isinstance(head.cls_subnet[1], nn.GroupNorm)
    assert head.cls_score.bias[0].item() == pytest.approx(-math.log(99))
    assert torch.count_nonzero(head.ctrness.bias) == 0
    with pytest.raises(ValueError, match="one point per position"):
        FCOSHead(input_shape=[ShapeSpec(channels=32)], conv_dims=[32], num_classes=5, num_anchors=9)
    with pytest.raises(ValueError, match="built for 2 feature levels, got 1"):
        head([torch.rand(1, 32, 4, 4)])


def test_training_step_and_inference_run():
    torch.manual_seed(0)
    model = _fcos()
    inputs = [{"image": torch.rand(3, 128, 128) * 255, "instances": _gt(BOXES[:5], CLASSES[:5])},
              {"image": torch.rand(3, 96, 128) * 255, "instances": _gt([], [], size=(96, 128))}]
    with EventStorage(0):
        losses = model(inputs)
    assert sorted(losses) == ["loss_fcos_cls", "loss_fcos_ctr", "loss_fcos_loc"]
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.head.ctrness.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 128, 128) * 255, "height": 64, "width": 64}])
    assert out[0]["instances"].image_size == (64, 64)


def test_bad_input_and_yaml_are_refused_clearly():
    model = _fcos()
    with EventStorage(0), pytest.raises(ValueError, match=r"gt_classes must be in \[0, 3\) \(FCOS num_classes\)"):
        model([{"image": torch.rand(3, 64, 64), "instances": _gt([[0, 0, 8, 8]], [3], size=(64, 64))}])
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE = "FCOS"
    with pytest.raises(ValueError, match="FCOS has no YAML config keys.*fcos_R_50_FPN_1x.py"):
        build_model(cfg)
