"""DenseDetector is a base other one-stage detectors plug into: transposition, EMA, decoding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from det.core import EventStorage
from det.core.modeling import Backbone, Box2BoxTransform, DefaultAnchorGenerator
from det.heads.retinanet import DenseDetector, permute_to_N_HWA_K
from det.structures import Boxes, Instances


class TwoLevelBackbone(Backbone):
    def __init__(self):
        super().__init__()
        self.c8 = nn.Conv2d(3, 2, kernel_size=8, stride=8)
        self.c16 = nn.Conv2d(3, 2, kernel_size=16, stride=16)
        self._out_features = ["p4", "p3"]  # deliberately not in stride order
        self._out_feature_channels = {"p3": 2, "p4": 2}
        self._out_feature_strides = {"p3": 8, "p4": 16}

    def forward(self, x):
        return {"p3": self.c8(x), "p4": self.c16(x)}


class CenterOnlyHead(nn.Module):
    """One logit per position and class, no box regression (deltas are zeros)."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.score = nn.Conv2d(2, num_classes, 1)

    def forward(self, features):
        logits = [self.score(f) for f in features]
        deltas = [torch.zeros(f.shape[0], 4, *f.shape[2:]) for f in features]
        return logits, deltas


class ToyDetector(DenseDetector):
    """What a one-stage detector of another distribution writes: two methods."""

    def __init__(self):
        super().__init__(TwoLevelBackbone(), CenterOnlyHead(2), pixel_mean=(0.0,) * 3, pixel_std=(1.0,) * 3)
        self.anchor_generator = DefaultAnchorGenerator(sizes=[[8], [16]], aspect_ratios=[[1.0]], strides=[8, 16])
        self.box2box_transform = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
        self.test_score_thresh = 0.0
        self.test_topk_candidates = 3

    def forward_training(self, images, features, predictions, gt_instances):
        logits, _ = self._transpose_dense_predictions(predictions, [2, 4])
        return {"loss_toy": torch.cat(logits, dim=1).sigmoid().mean()}

    def forward_inference(self, images, features, predictions):
        logits, deltas = self._transpose_dense_predictions(predictions, [2, 4])
        anchors = self.anchor_generator(features)
        return [
            self._decode_multi_level_predictions(
                anchors, [x[i].sigmoid() for x in logits], [x[i] for x in deltas], 0.0, 3, size
            )
            for i, size in enumerate(images.image_sizes)
        ]


def test_permute_to_n_hwa_k_orders_rows_by_position_then_anchor():
    # (N=1, A*K = 2*3, H=1, W=2): value = 100*a + 10*k + x
    t = torch.tensor([[[[100 * a + 10 * k + x for x in range(2)]] for a in range(2) for k in range(3)]]).float()
    out = permute_to_N_HWA_K(t, 3)
    assert out.shape == (1, 4, 3)
    assert out[0].tolist() == [[0, 10, 20], [100, 110, 120], [1, 11, 21], [101, 111, 121]]
    with pytest.raises(ValueError, match="not a multiple of K=4"):
        permute_to_N_HWA_K(torch.zeros(1, 6, 2, 2), 4)


def test_head_in_features_default_to_all_backbone_features_by_stride():
    assert ToyDetector().head_in_features == ["p3", "p4"]


def test_subclass_trains_and_infers_through_the_base_forward():
    model = ToyDetector()
    image = torch.rand(3, 32, 48) * 255
    with EventStorage(0):
        losses = model([{"image": image, "instances": Instances((32, 48))}])
    assert set(losses) == {"loss_toy"}
    model.eval()
    out = model([{"image": image, "height": 16, "width": 24}])
    inst = out[0]["instances"]
    # top-3 anchor-class pairs of each of the 2 levels, rescaled by 1/2
    assert len(inst) == 6 and inst.image_size == (16, 24)
    assert set(inst.get_fields()) == {"pred_boxes", "scores", "pred_classes"}


def test_ema_update_starts_from_the_initial_value():
    model = ToyDetector()
    assert model._ema_update("norm", 10, 100) == pytest.approx(91.0)
    assert model._ema_update("norm", 10, 100) == pytest.approx(91.0 * 0.9 + 1.0)
    assert model._ema_update("other", 0, 50, momentum=0.5) == 25.0


def test_base_forward_methods_must_be_implemented():
    base = DenseDetector(TwoLevelBackbone(), CenterOnlyHead(2), pixel_mean=(0.0,) * 3, pixel_std=(1.0,) * 3).eval()
    with pytest.raises(NotImplementedError, match="forward_inference"):
        base([{"image": torch.zeros(3, 32, 32)}])
    with pytest.raises(ValueError, match=r"head_in_features \['p9'\]"):
        DenseDetector(TwoLevelBackbone(), CenterOnlyHead(2), ["p9"], pixel_mean=(0.0,) * 3, pixel_std=(1.0,) * 3)


def test_decode_per_level_with_fewer_candidates_than_k():
    model = ToyDetector()
    anchors = Boxes(torch.tensor([[0.0, 0, 8, 8], [8, 0, 16, 8]]))
    scores = torch.tensor([[0.2, 0.01], [0.01, 0.01]])
    pred = model._decode_per_level_predictions(anchors, scores, torch.zeros(2, 4), 0.05, 1000, (8, 16))
    assert len(pred) == 1 and pred.pred_classes.tolist() == [0]
    assert pred.pred_boxes.tensor.tolist() == [[0, 0, 8, 8]]


def test_visualize_training_puts_gt_above_predictions():
    model = ToyDetector().eval()
    image = torch.rand(3, 32, 48) * 255
    gt = Instances((32, 48), gt_boxes=Boxes(torch.tensor([[2.0, 2, 20, 20]])))
    images = model.preprocess_image([{"image": image}])
    features = [model.backbone(images.tensor)[f] for f in model.head_in_features]
    results = model.forward_inference(images, features, model.head(features))
    with EventStorage(0) as storage:
        model.visualize_training([{"image": image, "instances": gt}], results)
    (name, img, it), = storage._vis_data
    assert name == "Top: GT bounding boxes; Bottom: 20 Highest Scoring Results"
    assert img.shape == (3, 64, 48) and it == 0
    assert img[1, 2, 2:21].tolist() == [255] * 19  # the gt box outline, green, in the top half
