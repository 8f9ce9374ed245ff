"""The torchvision adapter, the torchvision-ResNet checkpoint converter and the plugin module."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

from det.backbones import (
    FPN,
    BasicStem,
    ResNet,
    TorchvisionBackbone,
    build_torchvision_backbone,
    build_torchvision_fpn_backbone,
    convert_torchvision_resnet_checkpoint,
)
from det.core import get_cfg
from det.core.layers import FrozenBatchNorm2d, ShapeSpec


def randomize_bn(model):
    """Non-trivial BatchNorm statistics, so that a wrong mapping changes the outputs."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


def test_resnet18_levels_like_detectron2():
    backbone = TorchvisionBackbone("resnet18", out_features=["stem", "res3", "res5"])
    assert backbone.output_shape() == {
        "stem": ShapeSpec(channels=64, stride=4), "res3": ShapeSpec(channels=128, stride=8),
        "res5": ShapeSpec(channels=512, stride=32)}
    assert [n for n, _ in backbone.body.named_children()] == [
        "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]  # no avgpool/fc
    out = backbone(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "stem": (1, 64, 16, 16), "res3": (1, 128, 8, 8), "res5": (1, 512, 2, 2)}


def test_torchvision_weights_load_into_body_and_give_torchvision_features():
    tv = randomize_bn(torchvision.models.resnet18(weights=None)).eval()
    backbone = TorchvisionBackbone("resnet18", out_features=["res4"], norm="BN").eval()
    result = backbone.body.load_state_dict(tv.state_dict(), strict=False)
    assert result.missing_keys == []
    assert sorted({k.split(".")[0] for k in result.unexpected_keys}) == ["fc", "layer4"]  # res5 was pruned
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x)))))))
        assert torch.allclose(backbone(x)["res4"], expected, atol=1e-5)


def test_generic_features_models_are_cut_by_stride():
    backbone = TorchvisionBackbone("mobilenet_v3_small", out_features=["res3", "res4", "res5"])
    assert backbone.output_shape() == {
        "res3": ShapeSpec(channels=24, stride=8), "res4": ShapeSpec(channels=48, stride=16),
        "res5": ShapeSpec(channels=576, stride=32)}
    assert [n for n, _ in backbone.body.named_children()] == ["features"]
    out = backbone(torch.rand(2, 3, 96, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res3": (2, 24, 12, 8), "res4": (2, 48, 6, 4), "res5": (2, 576, 3, 2)}
    regnet = TorchvisionBackbone("regnet_x_400mf", out_features=["res2", "res5"])
    assert regnet.output_shape() == {"res2": ShapeSpec(channels=32, stride=4), "res5": ShapeSpec(channels=400, stride=32)}


def test_norm_and_freeze():
    frozen_bn = TorchvisionBackbone("resnet18", out_features=["res5"])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen_bn.modules())
    assert isinstance(frozen_bn.body.bn1, FrozenBatchNorm2d)
    trainable = TorchvisionBackbone("resnet18", out_features=["res5"], norm="BN", freeze_at=2)
    assert isinstance(trainable.body.bn1, FrozenBatchNorm2d)  # frozen with the stem
    assert isinstance(trainable.body.layer1[0].bn1, FrozenBatchNorm2d)
    assert isinstance(trainable.body.layer2[0].bn1, nn.BatchNorm2d)
    assert {p.requires_grad for p in trainable.body.layer1.parameters()} == {False}
    assert {p.requires_grad for p in trainable.body.layer2.parameters()} == {True}


def test_adapter_errors():
    with pytest.raises(ValueError, match=r"'resnet7' is not a torchvision classification model; available: .*resnet18"):
        TorchvisionBackbone("resnet7")
    with pytest.raises(ValueError, match=r"channels-last models such as Swin are unsupported"):
        TorchvisionBackbone("swin_t")
    with pytest.raises(ValueError, match=r"resnet18 has levels \['stem', 'res2', 'res3', 'res4', 'res5'\]; out_features \['p2'\]"):
        TorchvisionBackbone("resnet18", out_features=["p2"])
    with pytest.raises(ValueError, match=r"take 3 input channels, got in_channels=1"):
        TorchvisionBackbone("resnet18", in_channels=1)
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\), got \(1, 1, 32, 32\)"):
        TorchvisionBackbone("resnet18")(torch.rand(1, 1, 32, 32))


def test_config_keys_and_builders():
    cfg = get_cfg()
    assert cfg.MODEL.TORCHVISION_BACKBONE.NAME == "resnet50"
    assert cfg.MODEL.TORCHVISION_BACKBONE.OUT_FEATURES == ["res2", "res3", "res4", "res5"]
    assert cfg.MODEL.TORCHVISION_BACKBONE.NORM == "FrozenBN"
    cfg.MODEL.TORCHVISION_BACKBONE.NAME = "resnet18"
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.BACKBONE.FREEZE_AT = 2
    bottom_up = build_torchvision_backbone(cfg, ShapeSpec(channels=3))
    assert list(bottom_up.output_shape()) == ["res2", "res3", "res4", "res5"]
    assert {p.requires_grad for p in bottom_up.body.layer1.parameters()} == {False}
    fpn = build_torchvision_fpn_backbone(cfg, ShapeSpec(channels=3))  # empty FPN.IN_FEATURES: all levels
    assert isinstance(fpn, FPN)
    assert fpn.output_shape() == {f"p{i}": ShapeSpec(channels=16, stride=2**i) for i in range(2, 7)}
    assert fpn.fpn_lateral5.weight.shape == (16, 512, 1, 1)
    out = fpn(torch.rand(1, 3, 64, 64))
    assert [tuple(v.shape) for v in out.values()] == [(1, 16, 16, 16), (1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 2, 2), (1, 16, 1, 1)]


@pytest.mark.parametrize("depth", [18, 50])
def test_converter_maps_torchvision_resnet_onto_det_resnet(depth):
    tv = randomize_bn(getattr(torchvision.models, f"resnet{depth}")(weights=None)).eval()
    converted = convert_torchvision_resnet_checkpoint(tv.state_dict())
    assert converted["__author__"] == "torchvision" and converted["matching_heuristics"] is True
    # torchvision strides the 3x3 conv: STRIDE_IN_1X1 = False
    extra = {} if depth < 50 else {"stride_in_1x1": False}
    net = ResNet(BasicStem(norm="BN"), ResNet.make_default_stages(depth, norm="BN", **extra),
                 num_classes=1000, out_features=["linear"]).eval()
    # strict: torch's BatchNorm fills the dropped num_batches_tracked itself
    assert net.load_state_dict(converted["model"], strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x)["linear"], tv(x), atol=1e-5)


def test_converter_names():
    tv = torchvision.models.resnet50(weights=None).state_dict()
    model = convert_torchvision_resnet_checkpoint({"model": tv})["model"]
    renames = {
        "conv1.weight": "stem.conv1.weight",
        "bn1.running_mean": "stem.conv1.norm.running_mean",
        "layer1.0.conv1.weight": "res2.0.conv1.weight",
        "layer1.0.bn3.weight": "res2.0.conv3.norm.weight",
        "layer1.0.downsample.0.weight": "res2.0.shortcut.weight",
        "layer1.0.downsample.1.running_var": "res2.0.shortcut.norm.running_var",
        "layer4.2.bn2.bias": "res5.2.conv2.norm.bias",
        "fc.weight": "linear.weight",
    }
    for old, new in renames.items():
        assert torch.equal(model[new], tv[old])
    assert len(model) == len([k for k in tv if not k.endswith("num_batches_tracked")])


def test_converter_ignores_other_checkpoints(golden_dir):
    golden = torch.load(golden_dir / "mask_rcnn_R_50_FPN" / "model_final.pth", weights_only=True)
    assert convert_torchvision_resnet_checkpoint(golden) is None
    assert convert_torchvision_resnet_checkpoint({"model": torchvision.models.mobilenet_v2(weights=None).state_dict()}) is None
    tv = torchvision.models.resnet18(weights=None).state_dict()
    assert convert_torchvision_resnet_checkpoint({**tv, "extra_head.weight": torch.zeros(1)}) is None
    assert convert_torchvision_resnet_checkpoint([1, 2]) is None


def test_plugin_module_declares_everything_without_importing_torch():
    code = (
        "import sys, det.backbones._plugin as p\n"
        "assert 'torch' not in sys.modules, 'plugin imported torch'\n"
        "print(p.DET_PLUGIN_API_VERSION)\n"
        "for d in p.det_components(): print(*d)\n"
        "for d in p.det_checkpoint_converters(): print(*d)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [
        "1",
        "BACKBONE build_resnet_backbone det.backbones.resnet:build_resnet_backbone",
        "BACKBONE build_resnet_fpn_backbone det.backbones.fpn:build_resnet_fpn_backbone",
        "BACKBONE build_retinanet_resnet_fpn_backbone det.backbones.fpn:build_retinanet_resnet_fpn_backbone",
        "BACKBONE build_torchvision_backbone det.backbones.torchvision_backbone:build_torchvision_backbone",
        "BACKBONE build_torchvision_fpn_backbone det.backbones.torchvision_backbone:build_torchvision_fpn_backbone",
        "torchvision_resnet det.backbones.convert:convert_torchvision_resnet_checkpoint",
    ]
