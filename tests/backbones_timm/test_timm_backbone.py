"""det-backbones-timm: timm models as det backbones (random init; nothing is downloaded)."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from timm.layers import FrozenBatchNormAct2d, GroupNormAct
from torch import nn

from det.backbones import FPN
from det.backbones.timm import TimmBackbone, build_timm_backbone
from det.core import build_backbone, get_cfg
from det.core.layers import FrozenBatchNorm2d, ShapeSpec
from det.core.registry import list_components


def test_convnext_levels_channels_and_strides():
    backbone = TimmBackbone("convnext_atto")  # ConvNeXt's structure at the smallest width
    assert backbone.output_shape() == {
        "res2": ShapeSpec(channels=40, stride=4), "res3": ShapeSpec(channels=80, stride=8),
        "res4": ShapeSpec(channels=160, stride=16), "res5": ShapeSpec(channels=320, stride=32)}
    out = backbone(torch.rand(1, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (1, 40, 16, 24), "res3": (1, 80, 8, 12), "res4": (1, 160, 4, 6), "res5": (1, 320, 2, 3)}


def test_default_levels_skip_stride_2_and_out_indices_choose():
    effnet = TimmBackbone("efficientnet_b0")  # timm's levels: strides 2, 4, 8, 16, 32
    assert {k: (s.channels, s.stride) for k, s in effnet.output_shape().items()} == {
        "res2": (24, 4), "res3": (40, 8), "res4": (112, 16), "res5": (320, 32)}
    chosen = TimmBackbone("efficientnet_b0", out_indices=[0, 3])
    assert {k: (s.channels, s.stride) for k, s in chosen.output_shape().items()} == {"res1": (16, 2), "res4": (112, 16)}
    assert list(chosen(torch.rand(1, 3, 64, 64))) == ["res1", "res4"]


def test_frozen_bn_keeps_timm_fused_activations_and_values():
    torch.manual_seed(0)
    plain = TimmBackbone("efficientnet_b0", norm="BN").eval()
    gen = torch.Generator().manual_seed(0)
    for m in plain.modules():  # non-trivial statistics, so a dropped activation would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    frozen = TimmBackbone("efficientnet_b0", norm="FrozenBN")
    incompatible = frozen.load_state_dict(plain.state_dict(), strict=False)
    assert incompatible.missing_keys == []
    assert all(k.endswith("num_batches_tracked") for k in incompatible.unexpected_keys)
    kinds = {type(m) for m in frozen.modules()}
    assert FrozenBatchNormAct2d in kinds and not any(issubclass(k, nn.BatchNorm2d) for k in kinds)
    assert isinstance(frozen.body.bn1.act, nn.SiLU)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = plain(x), frozen(x)
    for name in expected:
        assert torch.allclose(got[name], expected[name], atol=1e-4), name
    # plain BatchNorms (no fused activation) become det's FrozenBatchNorm2d
    assert isinstance(TimmBackbone("resnet18").body.bn1, FrozenBatchNorm2d)


def test_group_norm_conversion():
    backbone = TimmBackbone("efficientnet_b0", norm="GN")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    stem = backbone.body.bn1
    assert isinstance(stem, GroupNormAct) and stem.num_groups == 32 and isinstance(stem.act, nn.SiLU)
    # 24 channels are not a multiple of 32: gcd(32, 24) = 8 groups
    assert {m.num_groups for m in backbone.modules() if isinstance(m, nn.GroupNorm) and m.num_channels == 24} == {8}
    resnet = TimmBackbone("resnet18", norm="GN")
    assert type(resnet.body.bn1) is nn.GroupNorm
    loss = sum(v.sum() for v in backbone(torch.rand(2, 3, 64, 64)).values())
    loss.backward()
    assert stem.weight.grad is not None


def test_freeze_at_follows_timm_feature_levels():
    backbone = TimmBackbone("resnet18", norm="BN", freeze_at=2)  # stem (level 0) and layer1 (level 1)
    frozen = sorted({n.split(".")[0] for n, p in backbone.body.named_parameters() if not p.requires_grad})
    assert frozen == ["conv1", "layer1"]  # bn1 became a FrozenBatchNorm2d: buffers, no parameters
    assert isinstance(backbone.body.bn1, FrozenBatchNorm2d) and isinstance(backbone.body.layer1[0].bn1, FrozenBatchNorm2d)
    assert type(backbone.body.layer2[0].bn1) is nn.BatchNorm2d
    with pytest.raises(ValueError, match=r"freeze_at=6 but timm model 'resnet18' has 5 feature levels"):
        TimmBackbone("resnet18", freeze_at=6)


def test_channels_last_timm_features_come_out_channels_first():
    backbone = TimmBackbone("swin_tiny_patch4_window7_224", norm="", img_size=112).eval()
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        out = backbone(x)
        raw = backbone.body(x)
    assert out["res3"].shape == (1, 192, 14, 14)
    assert torch.equal(out["res5"], raw[-1].permute(0, 3, 1, 2))


def test_pretrained_weights_from_a_local_file(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    backbone = TimmBackbone("resnet18", pretrained_file=str(path), norm="BN")
    assert torch.equal(backbone.body.conv1.weight, source.conv1.weight)
    assert torch.equal(backbone.body.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


def test_pretrained_asks_timm(monkeypatch):
    calls = []
    create = timm.create_model

    def spy(name, pretrained=False, **kwargs):
        calls.append((name, pretrained, kwargs))
        return create(name, pretrained=False, **kwargs)  # nothing is downloaded here

    monkeypatch.setattr(timm, "create_model", spy)
    TimmBackbone("resnet18", pretrained=True, drop_path_rate=0.1)
    assert calls == [("resnet18", True, {"drop_path_rate": 0.1, "features_only": True, "in_chans": 3})]


def test_errors():
    with pytest.raises(ValueError, match=r"'convnext_tinny' is not a timm model name; did you mean convnext_tiny"):
        TimmBackbone("convnext_tinny")
    with pytest.raises(ValueError, match=r"norm must be one of \('FrozenBN', 'GN', 'BN', ''\), got 'SyncBN'"):
        TimmBackbone("resnet18", norm="SyncBN")
    with pytest.raises(ValueError, match=r"out_indices \[0, 1, 2\] give several levels at one stride"):
        TimmBackbone("vit_tiny_patch16_224", out_indices=[0, 1, 2])
    with pytest.raises(ValueError, match=r"timm could not build 'resnet18' as a feature extractor"):
        TimmBackbone("resnet18", out_indices=[7])
    with pytest.raises(ValueError, match=r"TimmBackbone takes \(N, C, H, W\) images, got \(3, 64, 64\)"):
        TimmBackbone("resnet18")(torch.rand(3, 64, 64))


def test_plugin_components_and_config():
    declared = {c.name for c in list_components("BACKBONE") if c.distribution == "det-backbones-timm"}
    assert declared == {"build_timm_backbone", "build_timm_fpn_backbone"}
    cfg = get_cfg()
    assert dict(cfg.MODEL.TIMM) == {"NAME": "resnet50", "OUT_INDICES": [], "PRETRAINED": False,
                                    "PRETRAINED_FILE": "", "NORM": "FrozenBN"}


def test_fpn_by_name_from_config():
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "build_timm_fpn_backbone", "MODEL.TIMM.NAME", "efficientnet_b0",
                         "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.BACKBONE.FREEZE_AT", "0"])
    fpn = build_backbone(cfg)
    assert isinstance(fpn, FPN) and fpn.bottom_up.model_name == "efficientnet_b0"
    assert fpn.in_features == ("res2", "res3", "res4", "res5")
    out = fpn(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p2": (1, 32, 16, 16), "p3": (1, 32, 8, 8), "p4": (1, 32, 4, 4), "p5": (1, 32, 2, 2), "p6": (1, 32, 1, 1)}
    cfg.merge_from_list(["MODEL.TIMM.OUT_INDICES", "[2, 4]", "MODEL.TIMM.NORM", "GN"])
    plain = build_timm_backbone(cfg, ShapeSpec(channels=3))
    assert list(plain.output_shape()) == ["res3", "res5"]


@pytest.mark.slow
def test_det_train_mask_rcnn_from_a_yaml_naming_a_timm_model(tmp_path):
    import yaml

    from det.core.cli import main as det_main
    from det.data import DatasetCatalog
    from det.data.shapes import ShapesConfig, register_shapes
    from det.engine.demo import DEMO_CONFIG

    names = ("timm_shapes_train", "timm_shapes_val")
    register_shapes(ShapesConfig(num_train=4, num_val=2, seed=3, min_image_size=64, max_image_size=80,
                                 min_shape_size=16, max_shape_size=36), tmp_path / "data", names=names, replace=True)
    config = tmp_path / "mask_rcnn_efficientnet_b0.yaml"
    config.write_text(yaml.safe_dump({
        "_BASE_": str(DEMO_CONFIG),
        "MODEL": {"BACKBONE": {"NAME": "build_timm_fpn_backbone", "FREEZE_AT": 0},
                  "TIMM": {"NAME": "efficientnet_b0", "NORM": "GN"},
                  "FPN": {"IN_FEATURES": [], "OUT_CHANNELS": 32}, "ROI_BOX_HEAD": {"FC_DIM": 32},
                  "ROI_MASK_HEAD": {"CONV_DIM": 16, "NORM": ""},  # 16 < GroupNorm's 32 groups
                  "ROI_HEADS": {"BATCH_SIZE_PER_IMAGE": 32}},
        "DATASETS": {"TRAIN": [names[0]], "TEST": [names[1]]},
        "INPUT": {"MIN_SIZE_TRAIN": [64], "MAX_SIZE_TRAIN": 128, "MIN_SIZE_TEST": 64, "MAX_SIZE_TEST": 128},
        "SOLVER": {"IMS_PER_BATCH": 2, "MAX_ITER": 3, "WARMUP_ITERS": 1},
    }))
    try:
        status = det_main(["train", "--config-file", str(config), "OUTPUT_DIR", str(tmp_path / "out")])
    finally:
        for name in names:
            DatasetCatalog.remove(name)
    assert status == 0
    metrics = [json.loads(line) for line in (tmp_path / "out" / "metrics.json").read_text().splitlines()]
    losses = [m["total_loss"] for m in metrics if "total_loss" in m]
    assert losses and all(loss == loss and loss < 100 for loss in losses)  # finite
    state = torch.load(tmp_path / "out" / "model_final.pth", weights_only=True)["model"]
    assert "backbone.bottom_up.body.conv_stem.weight" in state
    assert any(k.startswith("roi_heads.mask_head.") for k in state)
