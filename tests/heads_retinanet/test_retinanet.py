"""RetinaNet and RetinaNetHead: anchor labelling, focal/box losses and the EMA normaliser,
per-level decoding and NMS, parameter names, zoo-config training, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from det.core import EventStorage, build_model, get_cfg
from det.core.layers import ShapeSpec
from det.core.modeling import Backbone, Box2BoxTransform, DefaultAnchorGenerator, Matcher
from det.heads.retinanet import CycleBatchNormList, RetinaNet, RetinaNetHead
from det.structures import Boxes, Instances

LN2 = math.log(2.0)


class ToyBackbone(Backbone):
    """One stride-8 level named p3 with 4 channels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=8, stride=8)
        self._out_features = ["p3"]
        self._out_feature_channels = {"p3": 4}
        self._out_feature_strides = {"p3": 8}

    def forward(self, x):
        return {"p3": self.conv(x)}


def _retinanet(num_classes=5, **overrides) -> RetinaNet:
    kwargs = dict(
        backbone=ToyBackbone(),
        head=RetinaNetHead(input_shape=[ShapeSpec(channels=4, stride=8)], num_classes=num_classes,
                           num_anchors=1, conv_dims=[4]),
        head_in_features=["p3"],
        anchor_generator=DefaultAnchorGenerator(sizes=[[16]], aspect_ratios=[[1.0]], strides=[8], offset=0.0),
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        anchor_matcher=Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True),
        num_classes=num_classes,
        pixel_mean=(0.0, 0.0, 0.0),
        pixel_std=(1.0, 1.0, 1.0),
    )
    kwargs.update(overrides)
    return RetinaNet(**kwargs)


def _gt(boxes, classes, size=(64, 64)) -> Instances:
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


# anchors against gt0 = [0,0,16,16] (class 3) and gt1 = [40,40,56,56] (class 1):
# IoU 1.0 -> class 3; 0.4375 (between 0.4 and 0.5) -> ignored; 0.25 -> background;
# 0.625 with gt1 -> class 1; no overlap -> background
ANCHORS = [Boxes(torch.tensor([[0.0, 0, 16, 16], [0, 0, 16, 7], [0, 0, 16, 4], [40, 40, 56, 50], [100, 100, 110, 110]]))]
GT = _gt([[0, 0, 16, 16], [40, 40, 56, 56]], [3, 1])


def test_label_anchors_uses_detectron2_thresholds_and_background_label():
    model = _retinanet()
    labels, boxes = model.label_anchors(ANCHORS, [GT])
    assert labels[0].tolist() == [3, -1, 5, 1, 5]
    assert boxes[0][[0, 3]].tolist() == [[0, 0, 16, 16], [40, 40, 56, 56]]


def test_label_anchors_without_ground_truth_is_all_background():
    model = _retinanet()
    labels, boxes = model.label_anchors(ANCHORS, [_gt([], [])])
    assert labels[0].tolist() == [5] * 5
    assert torch.equal(boxes[0], torch.zeros(5, 4))


def test_low_quality_match_makes_each_gt_best_anchor_foreground():
    model = _retinanet()
    anchors = [Boxes(torch.tensor([[0.0, 0, 16, 16], [0, 0, 40, 40]]))]
    labels, _ = model.label_anchors(anchors, [_gt([[0, 0, 8, 8]], [2])])
    # IoUs 0.25 and 0.04 are both background by threshold, but anchor 0 is the gt's best match
    assert labels[0].tolist() == [2, 5]


def test_losses_are_focal_and_l1_sums_over_the_ema_normaliser():
    model = _retinanet()
    labels, boxes = model.label_anchors(ANCHORS, [GT])
    pred_logits = [torch.zeros(1, 5, 5)]  # p = 0.5 everywhere
    pred_deltas = [torch.zeros(1, 5, 4)]
    with EventStorage(0) as storage:
        losses = model.losses(ANCHORS, pred_logits, labels, pred_deltas, boxes)
        assert storage.latest()["num_pos_anchors"][0] == 2.0
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    normalizer = 0.9 * 100 + 0.1 * 2
    assert model.loss_normalizer == pytest.approx(normalizer)
    # 4 valid anchors x 5 classes; 2 entries are positives: alpha*(1-p)^2*ln2, the rest (1-alpha)*p^2*ln2
    expected_cls = (18 * 0.75 * 0.25 * LN2 + 2 * 0.25 * 0.25 * LN2) / normalizer
    assert losses["loss_cls"].item() == pytest.approx(expected_cls, rel=1e-6)
    # anchor 0 is exact; anchor 3 needs dy = (48 - 45) / 10 and dh = log(16 / 10) (L1, beta 0)
    expected_box = (0.3 + math.log(1.6)) / normalizer
    assert losses["loss_box_reg"].item() == pytest.approx(expected_box, rel=1e-6)


def test_loss_normalizer_is_an_ema_across_iterations():
    model = _retinanet()
    labels, boxes = model.label_anchors(ANCHORS, [GT])
    args = (ANCHORS, [torch.zeros(1, 5, 5)], labels, [torch.zeros(1, 5, 4)], boxes)
    with EventStorage(0):
        model.losses(*args)
        model.losses(*args)
    assert model.loss_normalizer == pytest.approx((0.9 * 100 + 0.2) * 0.9 + 0.2)
    empty_labels, empty_boxes = model.label_anchors(ANCHORS, [_gt([], [])])
    model = _retinanet()
    with EventStorage(0):
        losses = model.losses(ANCHORS, [torch.zeros(1, 5, 5)], empty_labels, [torch.zeros(1, 5, 4)], empty_boxes)
    # no positives: the EMA still moves towards 1, and the box loss is exactly zero
    assert model.loss_normalizer == pytest.approx(90.1)
    assert losses["loss_box_reg"].item() == 0.0


def test_giou_box_loss():
    model = _retinanet(box_reg_loss_type="giou")
    labels, boxes = model.label_anchors(ANCHORS, [GT])
    with EventStorage(0):
        losses = model.losses(ANCHORS, [torch.zeros(1, 5, 5)], labels, [torch.zeros(1, 5, 4)], boxes)
    # anchor 3 = [40,40,56,50] vs [40,40,56,56]: IoU = enclosing ratio = 160/256, so GIoU loss 1 - 0.625
    assert losses["loss_box_reg"].item() == pytest.approx(0.375 / 90.2, rel=1e-6)


def test_decode_per_level_thresholds_then_keeps_top_k_anchor_class_pairs():
    model = _retinanet(num_classes=2)
    anchors = Boxes(torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]))
    scores = torch.tensor([[0.9, 0.01], [0.3, 0.6], [0.04, 0.2]])
    pred = model._decode_per_level_predictions(anchors, scores, torch.zeros(3, 4), 0.05, 3, (64, 64))
    assert pred.scores.tolist() == pytest.approx([0.9, 0.6, 0.3])
    assert pred.pred_classes.tolist() == [0, 1, 0]
    assert pred.pred_boxes.tensor.tolist() == [[0, 0, 10, 10], [20, 20, 30, 30], [20, 20, 30, 30]]
    assert pred.image_size == (64, 64)


def test_inference_single_image_runs_classwise_nms_and_caps_detections():
    model = _retinanet(num_classes=2, test_score_thresh=0.05, test_nms_thresh=0.5)
    anchors = [Boxes(torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 9], [30, 30, 40, 40]]))]
    scores = [torch.tensor([[0.9, 0.8], [0.7, 0.0], [0.0, 0.6]])]
    result = model.inference_single_image(anchors, scores, [torch.zeros(3, 4)], (64, 64))
    # anchor 1 class 0 overlaps anchor 0 class 0 (IoU 0.9): suppressed; class 1 is a separate NMS
    assert result.scores.tolist() == pytest.approx([0.9, 0.8, 0.6])
    assert result.pred_classes.tolist() == [0, 1, 1]
    model.max_detections_per_image = 2
    assert len(model.inference_single_image(anchors, scores, [torch.zeros(3, 4)], (64, 64))) == 2


def test_head_names_shapes_and_prior_initialisation():
    shapes = [ShapeSpec(channels=8, stride=s) for s in (8, 16)]
    torch.manual_seed(0)
    head = RetinaNetHead(input_shape=shapes, num_classes=3, num_anchors=2, conv_dims=[8, 8])
    names = {k for k, _ in head.named_parameters()}
    assert names == {
        "cls_subnet.0.weight", "cls_subnet.0.bias", "cls_subnet.2.weight", "cls_subnet.2.bias",
        "bbox_subnet.0.weight", "bbox_subnet.0.bias", "bbox_subnet.2.weight", "bbox_subnet.2.bias",
        "cls_score.weight", "cls_score.bias", "bbox_pred.weight", "bbox_pred.bias",
    }
    assert torch.allclose(head.cls_score.bias, torch.full((6,), -math.log(99.0)))
    assert torch.equal(head.bbox_pred.bias, torch.zeros(8))
    logits, deltas = head([torch.rand(2, 8, 6, 7), torch.rand(2, 8, 3, 4)])
    assert [t.shape for t in logits] == [(2, 6, 6, 7), (2, 6, 3, 4)]
    assert [t.shape for t in deltas] == [(2, 8, 6, 7), (2, 8, 3, 4)]


def test_head_norms():
    shapes = [ShapeSpec(channels=32)] * 3
    gn = RetinaNetHead(input_shape=shapes, num_classes=2, num_anchors=1, conv_dims=[32], norm="GN")
    assert [type(m).__name__ for m in gn.cls_subnet] == ["Conv2d", "GroupNorm", "ReLU"]
    bn = RetinaNetHead(input_shape=shapes, num_classes=2, num_anchors=1, conv_dims=[32], norm="BN")
    norm = bn.bbox_subnet[1]
    assert isinstance(norm, CycleBatchNormList) and len(norm) == 3
    assert {k for k, _ in norm.named_parameters()} == {"weight", "bias"}
    assert "0.running_mean" in dict(norm.named_buffers())


def test_cycle_batch_norm_list_keeps_statistics_per_call_position():
    norm = CycleBatchNormList(length=2, num_features=1, momentum=1.0)
    norm(torch.full((2, 1, 2, 2), 3.0))
    norm(torch.full((2, 1, 2, 2), 5.0))
    norm(torch.full((2, 1, 2, 2), 7.0))  # back to layer 0
    assert norm[0].running_mean.item() == 7.0 and norm[1].running_mean.item() == 5.0


def test_head_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same channels"):
        RetinaNetHead(input_shape=[ShapeSpec(channels=4), ShapeSpec(channels=8)], num_classes=2,
                      num_anchors=1, conv_dims=[4])
    with pytest.raises(ValueError, match=r"same channels; got \[4, None\] \(one per level\)"):
        RetinaNetHead(input_shape=[ShapeSpec(channels=4), ShapeSpec()], num_classes=2, num_anchors=1, conv_dims=[4])
    head = RetinaNetHead(input_shape=[ShapeSpec(channels=4)] * 2, num_classes=2, num_anchors=1, conv_dims=[4])
    with pytest.raises(ValueError, match="built for 2 feature levels, got 1"):
        head([torch.rand(1, 4, 8, 8)])
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        _retinanet(box_reg_loss_type="l2")
    three_anchor_head = RetinaNetHead(input_shape=[ShapeSpec(channels=4, stride=8)], num_classes=5,
                                      num_anchors=3, conv_dims=[4])
    model = _retinanet(head=three_anchor_head).eval()
    with pytest.raises(ValueError, match="made 16 anchors but the head predicted 48 class rows"):
        model([{"image": torch.zeros(3, 32, 32)}])


def test_forward_errors_are_clear():
    model = _retinanet()
    image = torch.zeros(3, 32, 32)
    with pytest.raises(RuntimeError, match="EventStorage"):
        model([{"image": image, "instances": GT}])
    with EventStorage(0), pytest.raises(ValueError, match="'instances'"):
        model([{"image": image}])
    no_classes = Instances((32, 32), gt_boxes=Boxes(torch.zeros(0, 4)))
    with EventStorage(0), pytest.raises(ValueError, match="gt_classes"):
        model([{"image": image, "instances": no_classes}])
    with EventStorage(0), pytest.raises(ValueError, match=r"gt_classes must be in \[0, 5\).*\[1, 5\]"):
        model([{"image": image, "instances": _gt([[0, 0, 8, 8], [0, 0, 4, 4]], [1, 5], size=(32, 32))}])
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        model.eval()([{"image": torch.zeros(32, 32)}])


def _small_zoo_cfg(configs_dir):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "COCO-Detection" / "retinanet_R_50_FPN_3x.yaml"))
    # the golden README's shrinking: widths only, every code path and name stays
    cfg.merge_from_list([
        "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
        "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16,
        "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "",
    ])
    return cfg


@pytest.mark.slow
def test_zoo_config_trains_a_step_and_predicts(configs_dir):
    cfg = _small_zoo_cfg(configs_dir)
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model, RetinaNet)
    gt = _gt([[10, 12, 60, 70], [70, 20, 120, 90]], [3, 17], size=(128, 160))
    inputs = [{"image": torch.randint(0, 255, (3, 128, 160), dtype=torch.uint8), "instances": gt}]
    with EventStorage(0) as storage:
        losses = model(inputs)
        num_pos = storage.latest()["num_pos_anchors"][0]
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    assert num_pos > 0
    assert model.loss_normalizer == pytest.approx(90 + 0.1 * num_pos)
    sum(losses.values()).backward()
    assert model.head.cls_score.weight.grad.abs().sum() > 0
    assert model.backbone.bottom_up.stem.conv1.weight.grad is None  # frozen stem (FREEZE_AT 2)

    model.eval()
    with torch.no_grad():
        out = model([{"image": inputs[0]["image"], "height": 64, "width": 80}])
    inst = out[0]["instances"]
    assert inst.image_size == (64, 80)
    assert set(inst.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
    assert len(inst) <= 100
    assert bool((inst.scores[:-1] >= inst.scores[1:]).all())
    assert bool((inst.scores > 0.05).all())


@pytest.mark.slow
def test_default_predictor_returns_instances_at_the_original_size(configs_dir):
    import numpy as np

    from det.core import DefaultPredictor

    cfg = _small_zoo_cfg(configs_dir)
    cfg.merge_from_list(["INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 128])
    out = DefaultPredictor(cfg)(np.zeros((50, 70, 3), dtype=np.uint8))
    assert list(out) == ["instances"] and out["instances"].image_size == (50, 70)
