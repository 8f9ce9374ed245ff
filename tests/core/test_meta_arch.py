"""GeneralizedRCNN and ProposalNetwork built from explicit toy parts, and build_model."""

import numpy as np
import pytest
import torch
from torch import nn

from det.core import EventStorage
from det.core.events import get_event_storage
from det.core.modeling import Backbone, GeneralizedRCNN, ProposalNetwork
from det.structures import Boxes, Instances

# Tiny stand-ins for the real parts: enough to drive the meta-architectures.


class ToyBackbone(Backbone):
    def __init__(self, in_channels=3, size_divisibility=8):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, stride=4, padding=1)
        self._size_divisibility = size_divisibility
        self._out_features = ["toy"]
        self._out_feature_channels = {"toy": 4}
        self._out_feature_strides = {"toy": 4}

    @property
    def size_divisibility(self):
        return self._size_divisibility

    def forward(self, x):
        return {"toy": self.conv(x)}


class ToyProposalGenerator(nn.Module):
    """One proposal per image: the left half of the (unpadded) image."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, images, features, gt_instances=None):
        self.seen.append((images, gt_instances))
        proposals = []
        for h, w in images.image_sizes:
            p = Instances((h, w))
            p.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, w / 2, float(h)]]))
            p.objectness_logits = torch.tensor([1.5])
            proposals.append(p)
        losses = {"loss_rpn_cls": features["toy"].mean() * 0 + 0.25} if self.training else {}
        return proposals, losses


class ToyROIHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = nn.Parameter(torch.tensor(0.5))

    def forward(self, images, features, proposals, targets=None):
        if self.training:
            get_event_storage().put_scalar("roi_head/num_fg_samples", 1)
            return [], {"loss_cls": self.score * 2}
        results = []
        for p in proposals:
            r = Instances(p.image_size)
            r.pred_boxes = p.proposal_boxes.clone()
            r.scores = self.score.detach().expand(len(p))
            r.pred_classes = torch.zeros(len(p), dtype=torch.int64)
            results.append(r)
        return results, {}

    def forward_with_given_boxes(self, features, instances):
        for x in instances:
            x.pred_masks_seen = torch.ones(len(x))
        return instances


def make_model(**kw):
    args = dict(
        backbone=ToyBackbone(),
        proposal_generator=ToyProposalGenerator(),
        roi_heads=ToyROIHeads(),
        pixel_mean=[100.0, 110.0, 120.0],
        pixel_std=[2.0, 2.0, 2.0],
        input_format="BGR",
    )
    args.update(kw)
    return GeneralizedRCNN(**args)


def _input(h=30, w=20, with_gt=True, **extra):
    d = {"image": torch.full((3, h, w), 120, dtype=torch.uint8), **extra}
    if with_gt:
        d["instances"] = Instances(
            (h, w), gt_boxes=Boxes(torch.tensor([[1.0, 2.0, 10.0, 12.0]])), gt_classes=torch.tensor([0])
        )
    return d


def test_attributes_buffers_and_state_dict():
    model = make_model()
    assert model.pixel_mean.shape == (3, 1, 1) and model.pixel_mean.flatten().tolist() == [
        100.0,
        110.0,
        120.0,
    ]
    assert model.device == torch.device("cpu") and model.input_format == "BGR" and model.vis_period == 0
    keys = set(model.state_dict())
    assert "pixel_mean" not in keys and "pixel_std" not in keys
    assert {"backbone.conv.weight", "roi_heads.score"} <= keys
    with pytest.raises(ValueError, match="different shapes"):
        make_model(pixel_std=[1.0])
    with pytest.raises(ValueError, match="input_format is required"):
        make_model(input_format=None, vis_period=10)


def test_preprocess_normalises_and_pads_to_size_divisibility():
    model = make_model()
    images = model.preprocess_image([_input(30, 20), _input(17, 25)])
    assert images.tensor.shape == (2, 3, 32, 32)
    assert images.image_sizes == [(30, 20), (17, 25)]
    # (120 - mean) / 2 per channel, zero padding outside the image
    assert images.tensor[0, :, 0, 0].tolist() == [10.0, 5.0, 0.0]
    assert images.tensor[0, :, 31, 0].tolist() == [0.0, 0.0, 0.0]


def test_training_returns_losses_and_uses_storage():
    model = make_model().train()
    with EventStorage(0) as storage:
        losses = model([_input(), _input(24, 16)])
    assert set(losses) == {"loss_cls", "loss_rpn_cls"}
    assert losses["loss_cls"].item() == 1.0 and losses["loss_rpn_cls"].item() == 0.25
    assert storage.latest()["roi_head/num_fg_samples"] == (1.0, 0)
    _, gt = model.proposal_generator.seen[-1]
    assert [len(g) for g in gt] == [1, 1]
    sum(losses.values()).backward()
    assert model.roi_heads.score.grad.item() == 2.0


def test_training_outside_event_storage_is_a_clear_error():
    model = make_model().train()
    with pytest.raises(RuntimeError, match="EventStorage"):
        model([_input()])


def test_training_without_instances_names_the_key():
    model = make_model().train()
    with EventStorage(0), pytest.raises(ValueError, match=r"batched_inputs\[0\] has no 'instances' key"):
        model([_input(with_gt=False)])


@pytest.mark.parametrize(
    "inputs, match",
    [
        ("not a list", "non-empty list of dicts"),
        ([], "non-empty list"),
        ([{"img": torch.zeros(3, 4, 4)}], "no 'image' key"),
        ([{"image": np.zeros((3, 4, 4))}], r"must be a torch.Tensor of shape \(3, H, W\)"),
        ([{"image": torch.zeros(4, 4, 3)}], r"shape \(4, 4, 3\); expected \(3, H, W\)"),
        ([{"image": torch.zeros(1, 3, 4, 4)}], r"expected \(3, H, W\)"),
        ([{"image": torch.zeros(3, 4, 4, dtype=torch.bool)}], "dtype torch.bool"),
        ([{"image": torch.zeros(3, 0, 4)}], "empty"),
    ],
)
def test_bad_inputs_raise_value_error(inputs, match):
    model = make_model().eval()
    with pytest.raises(ValueError, match=match):
        model(inputs)


def test_inference_rescales_to_height_width():
    model = make_model().eval()
    with torch.no_grad():
        out = model([_input(30, 20, with_gt=False, height=60, width=10), _input(24, 16, with_gt=False)])
    a, b = out[0]["instances"], out[1]["instances"]
    assert a.image_size == (60, 10) and b.image_size == (24, 16)
    # the proposal is the left half: (0, 0, 10, 30) scaled by (0.5, 2)
    assert a.pred_boxes.tensor.tolist() == [[0.0, 0.0, 5.0, 60.0]]
    assert b.pred_boxes.tensor.tolist() == [[0.0, 0.0, 8.0, 24.0]]
    assert a.scores.tolist() == [0.5] and a.pred_classes.tolist() == [0]


def test_inference_without_postprocess_and_with_given_boxes():
    model = make_model().eval()
    with torch.no_grad():
        raw = model.inference([_input(30, 20, with_gt=False, height=60, width=10)], do_postprocess=False)
        assert isinstance(raw[0], Instances) and raw[0].image_size == (30, 20)
        given = Instances(
            (30, 20),
            pred_boxes=Boxes(torch.tensor([[1.0, 1.0, 5.0, 5.0]])),
            pred_classes=torch.tensor([2]),
            scores=torch.tensor([0.9]),
        )
        out = model.inference([_input(30, 20, with_gt=False)], detected_instances=[given])
    assert out[0]["instances"].pred_masks_seen.tolist() == [1.0]
    with pytest.raises(RuntimeError, match="eval"):
        model.train().inference([_input()])


def test_precomputed_proposals_are_required_without_proposal_generator():
    model = make_model(proposal_generator=None).eval()
    with pytest.raises(ValueError, match="'proposals'"):
        model([_input(with_gt=False)])
    props = Instances(
        (30, 20),
        proposal_boxes=Boxes(torch.tensor([[2.0, 2.0, 6.0, 6.0]])),
        objectness_logits=torch.tensor([0.1]),
    )
    with torch.no_grad():
        out = model([_input(with_gt=False, proposals=props)])
    assert out[0]["instances"].pred_boxes.tensor.tolist() == [[2.0, 2.0, 6.0, 6.0]]


def test_vis_period_puts_an_image():
    model = make_model(vis_period=2).train()
    with EventStorage(0) as storage:
        model([_input()])
        ((name, img, it),) = storage._vis_data
    assert it == 0 and "GT bounding boxes" in name
    assert img.shape == (3, 30, 40) and img.dtype == np.uint8
    # BGR input 120 everywhere -> RGB; ground-truth box outlined in green on the left half
    assert img[:, 2, 1].tolist() == [0, 255, 0] and img[:, 20, 15].tolist() == [120, 120, 120]


def test_proposal_network_train_and_inference():
    model = ProposalNetwork(
        backbone=ToyBackbone(),
        proposal_generator=ToyProposalGenerator(),
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[1.0, 1.0, 1.0],
    )
    with EventStorage(0):
        assert set(model.train()([_input()])) == {"loss_rpn_cls"}
    with pytest.raises(RuntimeError, match="EventStorage"):
        model.train()([_input()])
    with torch.no_grad():
        out = model.eval()([_input(30, 20, with_gt=False, height=15, width=40)])
    p = out[0]["proposals"]
    assert p.image_size == (15, 40) and p.proposal_boxes.tensor.tolist() == [[0.0, 0.0, 20.0, 15.0]]
    assert p.objectness_logits.tolist() == [1.5]


# module-level builders: registering the same object twice is allowed, a new lambda is not
def _build_toy_backbone(cfg, input_shape):
    return ToyBackbone(input_shape.channels)


def _build_toy_rpn(cfg, input_shape):
    return ToyProposalGenerator()


def _build_toy_roi_heads(cfg, input_shape):
    return ToyROIHeads()


def _build_identity(cfg, input_shape):
    return torch.nn.Identity()


def test_build_model_from_config_with_registered_parts():
    from det.core import build_model, get_cfg
    from det.core.registry import BACKBONE_REGISTRY, PROPOSAL_GENERATOR_REGISTRY, ROI_HEADS_REGISTRY

    BACKBONE_REGISTRY.register(_build_toy_backbone, name="_test_meta_arch_backbone")
    PROPOSAL_GENERATOR_REGISTRY.register(_build_toy_rpn, name="_test_meta_arch_rpn")
    ROI_HEADS_REGISTRY.register(_build_toy_roi_heads, name="_test_meta_arch_roi")
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "_test_meta_arch_backbone"
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "_test_meta_arch_rpn"
    cfg.MODEL.ROI_HEADS.NAME = "_test_meta_arch_roi"
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    assert isinstance(model, GeneralizedRCNN) and model.training
    assert model.pixel_mean.flatten().tolist() == pytest.approx(list(cfg.MODEL.PIXEL_MEAN))
    assert model.input_format == "BGR" and isinstance(model.roi_heads, ToyROIHeads)

    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PrecomputedProposals"
    assert build_model(cfg).proposal_generator is None

    cfg.MODEL.META_ARCHITECTURE = "ProposalNetwork"
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "_test_meta_arch_rpn"
    assert isinstance(build_model(cfg), ProposalNetwork)


def test_build_backbone_rejects_non_backbone():
    from det.core import build_backbone, get_cfg
    from det.core.registry import BACKBONE_REGISTRY

    BACKBONE_REGISTRY.register(_build_identity, name="_test_not_a_backbone")
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "_test_not_a_backbone"
    with pytest.raises(TypeError, match=r"must be an instance of det\.core\.modeling\.Backbone"):
        build_backbone(cfg)
