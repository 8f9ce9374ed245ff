"""Backbones load through det.checkpoint.DetectionCheckpointer: golden .pth/.pkl and torchvision files."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from det.checkpoint import DetectionCheckpointer
from det.core import build_backbone, build_model, get_cfg

GOLDEN = "mask_rcnn_R_50_FPN"


class BackboneOnly(nn.Module):
    """Holds the backbone where a meta-architecture does, so checkpoint names line up."""

    def __init__(self, cfg):
        super().__init__()
        self.backbone = build_backbone(cfg)


def _relative_errors(model, golden_dir):
    features = torch.load(golden_dir / GOLDEN / "features.pt", weights_only=True)
    model.eval()
    with torch.no_grad():
        out = model.backbone(features["input"])
    return {k: ((v - features[k]).abs().max() / features[k].abs().max()).item() for k, v in out.items()}


def _golden_model(golden_dir):
    cfg = get_cfg()
    cfg.merge_from_file(str(golden_dir / GOLDEN / "config.yaml"))
    torch.manual_seed(1)  # a different init than the golden one
    return BackboneOnly(cfg)


def test_golden_pth_through_checkpointer(golden_dir):
    model = _golden_model(golden_dir)
    assert max(_relative_errors(model, golden_dir).values()) > 1e-2  # random init is far off
    DetectionCheckpointer(model).load(str(golden_dir / GOLDEN / "model_final.pth"))
    errors = _relative_errors(model, golden_dir)
    assert list(errors) == ["p2", "p3", "p4", "p5", "p6"] and max(errors.values()) <= 1e-4


def test_golden_model_zoo_pkl_through_checkpointer(golden_dir):
    model = _golden_model(golden_dir)
    DetectionCheckpointer(model).load(str(golden_dir / GOLDEN / "model_final.pkl"))
    errors = _relative_errors(model, golden_dir)
    assert list(errors) == ["p2", "p3", "p4", "p5", "p6"] and max(errors.values()) <= 1e-4


def test_torchvision_resnet_file_is_converted_by_the_plugin(tmp_path):
    tv = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "resnet50_torchvision.pth"
    torch.save(tv.state_dict(), path)

    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False  # torchvision strides the 3x3 conv
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    model = BackboneOnly(cfg)
    DetectionCheckpointer(model).load(str(path))
    bottom_up = model.backbone.bottom_up
    assert torch.equal(bottom_up.stem.conv1.weight, tv.conv1.weight)
    assert torch.equal(bottom_up.stem.conv1.norm.running_var, tv.bn1.running_var)
    assert torch.equal(bottom_up.res3[1].conv2.weight, tv.layer2[1].conv2.weight)
    assert torch.equal(bottom_up.res5[0].shortcut.norm.weight, tv.layer4[0].downsample[1].weight)
    # same features as torchvision's trunk (FrozenBN in eval == BN in eval)
    tv.eval(), model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
        assert torch.allclose(bottom_up(x)["res5"], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("filename", ["model_final.pth", "model_final.pkl"])
def test_features_of_a_full_model_loaded_by_the_checkpointer(golden_dir, filename):
    """build_model + DetectionCheckpointer, then the model's own preprocessing and backbone."""
    cfg = get_cfg()
    cfg.merge_from_file(str(golden_dir / GOLDEN / "config.yaml"))
    cfg.MODEL.MASK_ON = False  # the mask head is det-heads-mask's; the backbone is what is checked here
    torch.manual_seed(1)
    model = build_model(cfg)
    DetectionCheckpointer(model).load(str(golden_dir / GOLDEN / filename))
    model.eval()
    inputs = torch.load(golden_dir / GOLDEN / "inputs.pt", weights_only=True)
    features = torch.load(golden_dir / GOLDEN / "features.pt", weights_only=True)
    with torch.no_grad():
        images = model.preprocess_image(inputs[:1])
        assert torch.equal(images.tensor, features["input"])
        out = model.backbone(images.tensor)
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    for name, value in out.items():
        assert ((value - features[name]).abs().max() / features[name].abs().max()).item() <= 1e-4, name
