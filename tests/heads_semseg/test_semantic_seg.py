"""SemSegFPNHead and SemanticSegmentor: detectron2's parameter names, towers per stride, the
cross-entropy loss with ignore_value padding, output rescaling, zoo-config training, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from det.core import EventStorage, build_model, get_cfg
from det.core.layers import ShapeSpec
from det.core.modeling import Backbone
from det.heads.semseg import SemanticSegmentor, SemSegFPNHead

FPN_SHAPES = {f"p{i}": ShapeSpec(channels=8, stride=2**i) for i in (5, 3, 2, 4)}  # deliberately unordered


def _head(**overrides) -> SemSegFPNHead:
    kwargs = dict(input_shape=FPN_SHAPES, num_classes=5, conv_dims=32, common_stride=4, norm="GN", ignore_value=255)
    kwargs.update(overrides)
    return SemSegFPNHead(**kwargs)


def _features(n=1, h=8, w=16):
    # p2 at stride 4 of an (4h, 4w) image
    return {f"p{i}": torch.rand(n, 8, h >> (i - 2), w >> (i - 2)) for i in (2, 3, 4, 5)}


class StridedBackbone(Backbone):
    """p2 (stride 4) and p3 (stride 8), inputs padded to multiples of 32."""

    def __init__(self):
        super().__init__()
        self.c2 = nn.Conv2d(3, 8, kernel_size=4, stride=4)
        self.c3 = nn.Conv2d(8, 8, kernel_size=2, stride=2)
        self._out_features = ["p2", "p3"]
        self._out_feature_channels = {"p2": 8, "p3": 8}
        self._out_feature_strides = {"p2": 4, "p3": 8}

    def forward(self, x):
        p2 = self.c2(x)
        return {"p2": p2, "p3": self.c3(p2)}

    @property
    def size_divisibility(self):
        return 32


class RecordingHead(nn.Module):
    """Stands in for a sem-seg head: records the targets it gets, predicts class = image row."""

    ignore_value = 255

    def __init__(self):
        super().__init__()
        self.targets = None
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, features, targets=None):
        self.targets = targets
        n, _, h, w = features["p2"].shape
        rows = torch.arange(h * 4, dtype=torch.float32).view(1, 1, -1, 1).expand(n, 1, h * 4, w * 4)
        logits = torch.cat([rows, -rows], dim=1) * self.scale
        if self.training:
            return None, {"loss_sem_seg": logits.mean() * 0}
        return logits, {}


def _segmentor(head=None) -> SemanticSegmentor:
    return SemanticSegmentor(backbone=StridedBackbone(), sem_seg_head=head or RecordingHead(),
                             pixel_mean=(0.0, 0.0, 0.0), pixel_std=(1.0, 1.0, 1.0))


def test_head_parameter_names_follow_detectron2():
    head = _head()
    assert head.in_features == ["p2", "p3", "p4", "p5"]
    names = {k for k, _ in head.named_parameters()}
    convs = ["p2.0", "p3.0", "p4.0", "p4.2", "p5.0", "p5.2", "p5.4"]
    assert names == {f"{c}.{p}" for c in convs for p in ("weight", "norm.weight", "norm.bias")} | {
        "predictor.weight", "predictor.bias"}
    assert [type(m).__name__ for m in head.p4] == ["Conv2d", "Upsample", "Conv2d", "Upsample"]
    assert [type(m).__name__ for m in head.p2] == ["Conv2d"]
    assert [s is getattr(head, f) for s, f in zip(head.scale_heads, head.in_features)] == [True] * 4
    assert head.p3[0].bias is None and type(head.p3[0].norm).__name__ == "GroupNorm"
    assert torch.equal(head.predictor.bias, torch.zeros(5))
    no_norm = _head(norm="")
    assert no_norm.p2[0].norm is None and no_norm.p2[0].bias is not None


def test_head_eval_returns_logits_at_input_resolution():
    head = _head().eval()
    logits, losses = head(_features(n=2, h=8, w=16))
    assert logits.shape == (2, 5, 32, 64) and losses == {}


def test_head_loss_is_mean_cross_entropy_over_non_ignored_pixels_times_weight():
    head = _head(loss_weight=0.5)
    with torch.no_grad():
        head.predictor.weight.zero_()  # uniform logits: every counted pixel costs log(5)
    targets = torch.full((1, 32, 64), 255, dtype=torch.long)
    targets[0, :4, :4] = 3
    targets[0, 10, 10] = 0
    _, losses = head(_features(), targets)
    assert set(losses) == {"loss_sem_seg"}
    assert losses["loss_sem_seg"].item() == pytest.approx(0.5 * math.log(5), rel=1e-6)


def test_head_loss_prefers_the_right_class():
    head = _head()
    with torch.no_grad():
        head.predictor.weight.zero_()
        head.predictor.bias.copy_(torch.tensor([0.0, 0.0, 3.0, 0.0, 0.0]))
    targets = torch.full((1, 32, 64), 2, dtype=torch.long)
    _, losses = head(_features(), targets)
    expected = -math.log(math.exp(3) / (math.exp(3) + 4))
    assert losses["loss_sem_seg"].item() == pytest.approx(expected, rel=1e-5)


def test_head_errors():
    with pytest.raises(ValueError, match="non-empty dict"):
        SemSegFPNHead(input_shape={}, num_classes=2, conv_dims=8, common_stride=4)
    with pytest.raises(ValueError, match="common_stride 8 is larger than the stride 4"):
        _head(common_stride=8)
    head = _head()
    with pytest.raises(ValueError, match="needs targets"):
        head(_features())
    with pytest.raises(ValueError, match=r"missing \['p5'\]"):
        head({k: v for k, v in _features().items() if k != "p5"}, None)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\) or ignore_value 255; got values in \[0, 7\]"):
        bad = torch.zeros(1, 32, 64, dtype=torch.long)
        bad[0, 0, :2] = torch.tensor([7, 255])
        head(_features(), bad)
    with pytest.raises(ValueError, match="do not match the predictions"):
        head(_features(), torch.zeros(1, 30, 64, dtype=torch.long))


def test_segmentor_pads_targets_like_images_with_ignore_value():
    model = _segmentor()
    seg = torch.arange(30 * 40).view(30, 40) % 2
    with EventStorage(0):
        losses = model([{"image": torch.zeros(3, 30, 40), "sem_seg": seg}])
    assert set(losses) == {"loss_sem_seg"}
    targets = model.sem_seg_head.targets
    assert targets.shape == (1, 32, 64) and targets.dtype == torch.long
    assert torch.equal(targets[0, :30, :40], seg)
    assert (targets[0, 30:] == 255).all() and (targets[0, :, 40:] == 255).all()


def test_segmentor_crops_padding_then_resizes_to_height_width():
    model = _segmentor().eval()
    image = torch.zeros(3, 30, 40)
    out = model([{"image": image}, {"image": image, "height": 15, "width": 20}])
    assert out[0]["sem_seg"].shape == (2, 30, 40)
    # the fake logits are the row index: cropping keeps rows 0..29, halving averages row pairs
    assert torch.equal(out[0]["sem_seg"][0, :, 0], torch.arange(30, dtype=torch.float32))
    assert out[1]["sem_seg"].shape == (2, 15, 20)
    assert torch.allclose(out[1]["sem_seg"][0, :, 0], torch.arange(15, dtype=torch.float32) * 2 + 0.5)


def test_segmentor_errors():
    model = _segmentor()
    image = torch.zeros(3, 32, 32)
    with pytest.raises(RuntimeError, match="EventStorage"):
        model([{"image": image, "sem_seg": torch.zeros(32, 32, dtype=torch.long)}])
    with EventStorage(0):
        with pytest.raises(ValueError, match="no 'sem_seg' key"):
            model([{"image": image}])
        with pytest.raises(ValueError, match=r"must be an \(H, W\) integer tensor, got a torch.float32"):
            model([{"image": image, "sem_seg": torch.zeros(32, 32)}])
        with pytest.raises(ValueError, match="same height and width"):
            model([{"image": image, "sem_seg": torch.zeros(16, 32, dtype=torch.long)}])
    with pytest.raises(ValueError, match="non-empty list"):
        model.eval()([])


def _small_cfg(configs_dir, name):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / name))
    # the golden README's shrinking: widths only, every code path and parameter name stays
    cfg.merge_from_list([
        "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
        "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.FPN.OUT_CHANNELS", 16,
        "MODEL.ROI_BOX_HEAD.FC_DIM", 64, "MODEL.ROI_BOX_HEAD.CONV_DIM", 32,
        "MODEL.ROI_MASK_HEAD.CONV_DIM", 32, "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
        "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "",
    ])
    return cfg


@pytest.mark.slow
def test_semantic_zoo_config_builds_trains_a_step_and_predicts(configs_dir):
    cfg = _small_cfg(configs_dir, "Misc/semantic_R_50_FPN_1x.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model, SemanticSegmentor) and isinstance(model.sem_seg_head, SemSegFPNHead)
    assert model.sem_seg_head.ignore_value == 255 and model.sem_seg_head.common_stride == 4
    assert model.sem_seg_head.predictor.weight.shape == (54, 32, 1, 1)
    assert "sem_seg_head.p5.4.norm.weight" in model.state_dict()

    seg = torch.randint(0, 54, (90, 120))
    seg[:10] = 255
    image = torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8)
    with EventStorage(0):
        losses = model([{"image": image, "sem_seg": seg}])
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])
    losses["loss_sem_seg"].backward()
    assert model.sem_seg_head.predictor.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        out = model([{"image": image, "height": 45, "width": 60}])
    assert list(out[0]) == ["sem_seg"]
    assert out[0]["sem_seg"].shape == (54, 45, 60) and out[0]["sem_seg"].dtype == torch.float32


@pytest.mark.slow
def test_default_predictor_returns_sem_seg_at_the_original_size(configs_dir):
    import numpy as np

    from det.core import DefaultPredictor

    cfg = _small_cfg(configs_dir, "Misc/semantic_R_50_FPN_1x.yaml")
    cfg.merge_from_list(["INPUT.MIN_SIZE_TEST", 64, "INPUT.MAX_SIZE_TEST", 128])
    predictor = DefaultPredictor(cfg)
    out = predictor(np.zeros((50, 70, 3), dtype=np.uint8))
    assert list(out) == ["sem_seg"] and out["sem_seg"].shape == (54, 50, 70)


def test_head_takes_the_lazy_shape_mapping_of_panoptic_fpn_py():
    """common/models/panoptic_fpn.py passes input_shape as a DictConfig of un-instantiated
    L(ShapeSpec)(...) nodes with interpolated channels; detectron2's head reads them by attribute."""
    from omegaconf import OmegaConf

    from det.core.config import LazyCall as L
    from det.core.config import instantiate

    cfg = OmegaConf.create({"backbone": {"out_channels": 16}})
    cfg.head = L(SemSegFPNHead)(
        input_shape={f: L(ShapeSpec)(stride=s, channels="${....backbone.out_channels}")
                     for f, s in zip(["p2", "p3"], [4, 8])},
        num_classes=3, conv_dims=32, common_stride=4, norm="GN")
    head = instantiate(cfg.head)
    assert head.in_features == ["p2", "p3"] and head.p3[0].in_channels == 16
    with pytest.raises(ValueError, match=r"the shape of 'p2' \(4\) needs channels and stride"):
        SemSegFPNHead(input_shape={"p2": 4}, num_classes=2, conv_dims=8, common_stride=4)
