"""det.core.fast: BN folding, fused conv+ReLU, channels_last and bf16 keep det's outputs.

float32 fast mode must reproduce detectron2's golden Mask R-CNN outputs with the same tolerances
as the default model; bf16 fast mode is checked for agreement (not bit parity): most detections
keep their box, class and mask. bf16 needs oneDNN's bf16 kernels: those tests select themselves by
det.core.machine (the skip names this machine's level); on other machines bf16=True must be a clear
error. Components own their rewrites (``fuse_for_inference``, ``float32_layers``): core names none.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from det.checkpoint import DetectionCheckpointer
from det.core import build_model, get_cfg
from det.core.fast import FLOAT32_LAYERS, FUSE_METHOD, bf16_supported, fast_mode, fold_batchnorm
from det.core.layers import Conv2d, FrozenBatchNorm2d
from det.core.machine import inference_choices, machine_info

_INFO = machine_info()
needs_bf16_kernels = pytest.mark.skipif(
    not _INFO.bf16_kernels,
    reason=f"bf16 convolutions need oneDNN's bf16 kernels (AVX-512 BW/VL/DQ, AVX-NE-CONVERT or AMX); "
    f"this machine: {_INFO.describe()}",
)


def _conv_bn(norm_cls=FrozenBatchNorm2d, activation=None):
    torch.manual_seed(0)
    norm = norm_cls(8)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(8) + 0.5)
        norm.bias.copy_(torch.randn(8))
        norm.running_mean.copy_(torch.randn(8))
        norm.running_var.copy_(torch.rand(8) + 0.1)
    return Conv2d(4, 8, 3, padding=1, bias=False, norm=norm, activation=activation).eval()


class _Net(nn.Module):
    float32_layers = ("predictor",)  # det.core.fast: the final layer stays float32 under bf16

    def __init__(self):
        super().__init__()
        self.body = _conv_bn(activation=nn.ReLU())
        self.predictor = Conv2d(8, 2, 1)

    def forward(self, x):
        return self.predictor(self.body(x))


def test_fold_batchnorm_matches_conv_then_norm():
    conv = _conv_bn()
    x = torch.randn(2, 4, 9, 11)
    expected = conv(x)
    fold_batchnorm(conv, conv.norm)
    conv.norm = None
    assert conv.bias is not None and conv.bias.shape == (8,)
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_fold_batchnorm_refuses_training_batchnorm():
    conv = _conv_bn(nn.BatchNorm2d).train()
    with pytest.raises(ValueError, match="training mode"):
        fold_batchnorm(conv, conv.norm)


def test_fast_mode_fp32_small_net_equal_and_fused():
    net = _Net().eval()
    x = torch.randn(2, 4, 16, 16)
    expected = net(x)
    fast_mode(net, bf16=False)
    channels_last = inference_choices().channels_last  # NHWC where oneDNN computes in it
    assert net.det_fast_mode == {"bf16": False, "channels_last": channels_last, "fold_bn": True, "fuse_relu": True}
    # the ReLU stays recorded as the conv's activation; the converted forward applies it as a post-op
    assert net.body.norm is None and isinstance(net.body.activation, nn.ReLU) and net.body._fast_relu is True
    assert net.predictor._fast_relu is False
    out = net(x)
    assert out.dtype == torch.float32 and out.shape == (2, 2, 16, 16)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    # the ReLU really is applied inside the convolution
    assert (net.body(x) >= 0).all()
    # empty batches still pass (the fused oneDNN op is skipped for them)
    assert net(torch.zeros(0, 4, 16, 16)).shape == (0, 2, 16, 16)


@needs_bf16_kernels
def test_fast_mode_bf16_keeps_float32_layers_in_fp32():
    net = _Net().eval()
    x = torch.randn(2, 4, 16, 16)
    expected = net(x)
    fast_mode(net, bf16=True)
    assert net.body.weight.dtype == torch.bfloat16
    assert net.predictor.weight.dtype == torch.float32  # listed in _Net.float32_layers
    # converted in place: no float32 copy of the weight is kept next to the bf16 one
    assert [n for n, _ in net.named_parameters()] == [
        "body.weight",
        "body.bias",
        "predictor.weight",
        "predictor.bias",
    ]
    out = net(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0.05, atol=0.1)


def test_fast_mode_errors():
    with pytest.raises(TypeError, match=r"nn\.Module"):
        fast_mode("model")
    with pytest.raises(ValueError, match=r"model\.eval"):
        fast_mode(_Net().train())
    net = fast_mode(_Net().eval(), bf16=False)
    with pytest.raises(ValueError, match="already converted"):
        fast_mode(net)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        net.body(torch.zeros(1, 3, 8, 8))


def test_bf16_default_follows_the_machine():
    assert bf16_supported() is _INFO.bf16 is inference_choices().fast_bf16
    net = fast_mode(_Net().eval())
    assert net.det_fast_mode["bf16"] is _INFO.bf16
    assert net.det_fast_mode["channels_last"] is inference_choices().channels_last


_BF16_CHILD = """
import json, torch
from det.core.fast import fast_mode
from det.core.layers import Conv2d
from det.core.machine import machine_info
net = torch.nn.Sequential(Conv2d(3, 4, 3)).eval()
try:
    fast_mode(net, bf16=True)
    error = None
except ValueError as e:
    error = str(e)
print(json.dumps({"bf16_kernels": machine_info().bf16_kernels, "error": error}))
"""


def test_bf16_without_kernels_is_a_clear_error_not_a_onednn_crash():
    """On an AVX2-only CPU (here emulated on any x86 by capping oneDNN and ATen at AVX2) oneDNN has
    no bf16 convolution: fast_mode says so and names the way out, before converting anything."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    out = subprocess.run([sys.executable, "-c", _BF16_CHILD], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["bf16_kernels"] is False
    assert result["error"].startswith("fast_mode(bf16=True): this CPU has no bfloat16 convolution kernels (")
    assert "fast_mode(model, bf16=False)" in result["error"]
    if not _INFO.bf16_kernels:  # and in this process, the model is left as it was
        net = _Net().eval()
        with pytest.raises(ValueError, match="no bfloat16 convolution kernels"):
            fast_mode(net, bf16=True)
        assert getattr(net, "det_fast_mode", None) is None and net.body.norm is not None


class _FusingBlock(nn.Module):
    """A plugin-style component: its forward applies a ReLU after conv unless it moved it into conv."""

    float32_layers = ("head",)

    def __init__(self):
        super().__init__()
        self.conv = _conv_bn()
        self.head = Conv2d(8, 2, 1)
        self.fused = 0

    def forward(self, x):
        y = self.conv(x)
        return self.head(y if self.conv.activation is not None else F.relu_(y))

    def fuse_for_inference(self):
        self.fused += 1
        self.conv.activation = F.relu_


def test_components_fuse_themselves_and_name_their_float32_layers():
    block = _FusingBlock().eval()
    x = torch.randn(2, 4, 12, 12)
    expected = block(x)
    fast_mode(block, bf16=False)
    assert block.fused == 1 and block.conv._fast_relu is True and block.head._fast_relu is False
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-4)
    assert (FUSE_METHOD, FLOAT32_LAYERS) == ("fuse_for_inference", "float32_layers")

    untouched = fast_mode(_FusingBlock().eval(), bf16=False, fuse_relu=False)
    assert untouched.fused == 0 and untouched.conv._fast_relu is False


def test_float32_layers_must_name_submodules():
    block = _FusingBlock().eval()
    block.float32_layers = ("head", "cls_logits")
    with pytest.raises(ValueError, match=r"_FusingBlock\.float32_layers names 'cls_logits', which is not a submodule"):
        fast_mode(block, bf16=False)


@pytest.mark.parametrize("kind", ["stem", "basic", "bottleneck", "deform"])
def test_resnet_blocks_fuse_their_relus_without_changing_outputs(kind):
    from det.backbones.resnet import BasicBlock, BasicStem, BottleneckBlock, DeformBottleneckBlock

    torch.manual_seed(0)
    block, fused_convs, x = {
        "stem": (BasicStem(3, 8, norm="FrozenBN"), ["conv1"], torch.randn(1, 3, 20, 24)),
        "basic": (BasicBlock(8, 16, stride=2, norm="FrozenBN"), ["conv1"], torch.randn(1, 8, 10, 12)),
        "bottleneck": (
            BottleneckBlock(8, 16, bottleneck_channels=4, norm="FrozenBN"), ["conv1", "conv2"], torch.randn(1, 8, 10, 12)
        ),
        "deform": (
            DeformBottleneckBlock(8, 8, bottleneck_channels=4, norm="FrozenBN"), ["conv1"], torch.randn(1, 8, 10, 12)
        ),
    }[kind]
    block.eval()
    with torch.no_grad():
        expected = block(x)
        block.fuse_for_inference()
        # the same ops in the same order: bit for bit, before any conversion
        assert torch.equal(block(x), expected)
    for name in fused_convs:
        assert getattr(block, name).activation is F.relu_
    fast_mode(block, bf16=False)
    assert all(getattr(block, name)._fast_relu for name in fused_convs)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-4)


def test_core_names_no_backbone_or_head_internals():
    """Fast mode asks components (fuse_for_inference, float32_layers) instead of matching them by
    class or attribute name."""
    import det.core.fast

    source = Path(det.core.fast.__file__).read_text()
    names = ["BasicStem", "BasicBlock", "BottleneckBlock", "cls_score", "bbox_pred", "objectness_logits",
             "anchor_deltas", "score_lowres", "res2", "bottom_up"]
    assert [n for n in names if re.search(rf"\b{n}\b", source)] == []


@pytest.fixture(scope="module")
def mask_case(golden_case):
    return golden_case("mask_rcnn_R_50_FPN")


def _golden_model(case):
    cfg = get_cfg()
    cfg.merge_from_file(str(case.config_file))
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(case.pth))
    return model


@pytest.mark.slow
def test_fast_mode_fp32_reproduces_golden_mask_rcnn(mask_case, assert_matches_golden):
    model = fast_mode(_golden_model(mask_case), bf16=False)
    # ResNet blocks lost their separate ReLUs: the 1x1 and 3x3 convs carry them
    block = model.backbone.bottom_up.res2[0]
    assert block.conv1._fast_relu and block.conv2._fast_relu and not block.conv3._fast_relu
    assert block.conv1.norm is None and block.conv3.activation is None
    with torch.no_grad():
        outputs = model(mask_case.inputs)
    for ours, theirs in zip(outputs, mask_case.outputs):
        inst, theirs = ours["instances"], theirs["instances"]
        assert len(inst) == 100 and inst.pred_masks.dtype == torch.bool
        pairs = assert_matches_golden(inst, theirs, box_tol=0.05, score_tol=2e-3, mask_iou=0.99)
        assert len(pairs) >= 98


@pytest.mark.slow
@needs_bf16_kernels
def test_fast_mode_bf16_agrees_with_golden_mask_rcnn(mask_case):
    from det.structures import Boxes, pairwise_iou

    model = fast_mode(_golden_model(mask_case), bf16=True)
    assert model.backbone.bottom_up.stem.conv1.weight.dtype == torch.bfloat16
    assert model.roi_heads.box_predictor.cls_score.weight.dtype == torch.float32
    with torch.no_grad():
        outputs = model(mask_case.inputs)
    for ours, theirs in zip(outputs, mask_case.outputs):
        inst, theirs = ours["instances"], theirs["instances"]
        assert len(inst) == 100
        assert inst.pred_boxes.tensor.dtype == torch.float32 and inst.scores.dtype == torch.float32
        iou = pairwise_iou(Boxes(theirs["pred_boxes"]), inst.pred_boxes)
        same_class = theirs["pred_classes"][:, None] == inst.pred_classes[None, :]
        best = (iou * same_class).amax(dim=1)
        # The golden weights are random (features ~1e3, calibrated predictors), so bf16 rounding
        # through 50 layers moves boxes noticeably: measured 0.90/0.93 of the golden boxes keep a
        # same-class match with IoU > 0.5 and 0.99/1.0 with IoU > 0.3.
        assert (best > 0.5).float().mean() >= 0.85, best
        assert (best > 0.3).float().mean() >= 0.95, best


@needs_bf16_kernels
def test_fast_mode_bf16_pools_in_bf16_and_group_norm_heads_take_it(configs_dir):
    """ROI poolers hand bf16 regions to the heads; a head whose convolutions keep float32 (GN cannot
    be folded) converts them. Mask R-CNN with GN in the backbone and every head runs end to end."""
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "Misc" / "mask_rcnn_R_50_FPN_3x_gn.yaml"))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
                         "MODEL.RPN.POST_NMS_TOPK_TEST", 50, "TEST.DETECTIONS_PER_IMAGE", 5])
    torch.manual_seed(0)
    model = fast_mode(build_model(cfg).eval(), bf16=True)
    assert model.roi_heads.box_head.conv1.weight.dtype == torch.float32  # GN: plain float32 path
    pooled = []
    model.roi_heads.box_pooler.register_forward_hook(lambda m, i, o: pooled.append(o.dtype))
    with torch.no_grad():
        (out,) = model([{"image": torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8)}])
    inst = out["instances"]
    assert pooled == [torch.bfloat16] and len(inst) == 5
    assert inst.scores.dtype == torch.float32 and inst.pred_masks.shape == (5, 96, 128)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="reads /proc/self/maps")
def test_fast_mode_releases_the_memory_mapped_checkpoint(configs_dir, tmp_path):
    """DefaultPredictor's weights are views of the checkpoint file's mapping; once fast mode has
    converted them, nothing may keep the mapping (and its resident pages) alive."""
    import gc

    import numpy as np

    from det.core import DefaultPredictor

    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS, cfg.MODEL.FPN.OUT_CHANNELS = 18, 64, 32
    weights = tmp_path / "model_final.pth"
    DetectionCheckpointer(build_model(cfg), save_dir=str(tmp_path)).save("model_final")
    cfg.MODEL.WEIGHTS = str(weights)

    def mapped() -> bool:
        with open("/proc/self/maps") as f:
            return str(weights) in f.read()

    predictor = DefaultPredictor(cfg)
    assert mapped()  # the weights are the file's pages
    for bf16 in (False,) + ((True,) if bf16_supported() else ()):
        predictor = DefaultPredictor(cfg)
        fast_mode(predictor.model, bf16=bf16)
        gc.collect()
        assert not mapped(), f"bf16={bf16}"
        image = np.zeros((64, 80, 3), dtype=np.uint8)
        assert "instances" in predictor(image)
