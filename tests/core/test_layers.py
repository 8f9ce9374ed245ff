"""det.core.layers: wrappers, norms, blocks, weight init."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from det.core.layers import (
    CNNBlockBase,
    Conv2d,
    ConvTranspose2d,
    FrozenBatchNorm2d,
    LayerNorm,
    NaiveSyncBatchNorm,
    ShapeSpec,
    c2_msra_fill,
    c2_xavier_fill,
    cat,
    get_norm,
    move_device_like,
    nonzero_tuple,
    shapes_to_tensor,
)


def test_import_is_cheap_no_torchvision():
    code = "import sys, det.core.layers; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_shape_spec_defaults_and_fields():
    s = ShapeSpec(channels=256, stride=4)
    assert (s.channels, s.height, s.width, s.stride) == (256, None, None, 4)
    assert tuple(s) == (256, None, None, 4)
    assert ShapeSpec(3, 5, 7, 2) == ShapeSpec(channels=3, height=5, width=7, stride=2)
    # a dataclass like detectron2's (LazyConfig files hold ShapeSpecs): fields can be set
    s.channels = 3
    assert s == ShapeSpec(channels=3, stride=4)


def test_cat_single_is_identity_and_multi_concats():
    a = torch.arange(3)
    assert cat([a]) is a
    assert cat([a, a + 3]).tolist() == [0, 1, 2, 3, 4, 5]
    assert cat((a[None], a[None]), dim=1).shape == (1, 6)
    with pytest.raises(TypeError, match="list or tuple"):
        cat(a)


def test_nonzero_tuple():
    x = torch.tensor([[0, 1], [1, 0]])
    rows, cols = nonzero_tuple(x)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_shapes_to_tensor_and_move_device_like():
    t = shapes_to_tensor([3, 4])
    assert t.tolist() == [3, 4] and t.dtype == torch.int64
    src = torch.ones(2)
    assert move_device_like(src, torch.zeros(1)).device == src.device


def test_conv2d_norm_then_activation():
    torch.manual_seed(0)
    norm = nn.BatchNorm2d(4).eval()
    norm.running_mean.fill_(0.5)
    norm.running_var.fill_(4.0)
    conv = Conv2d(2, 4, kernel_size=3, padding=1, bias=False, norm=norm, activation=F.relu)
    x = torch.randn(2, 2, 5, 5)
    conv.eval()
    expected = F.relu((F.conv2d(x, conv.weight, None, padding=1) - 0.5) / math.sqrt(4.0 + 1e-5))
    torch.testing.assert_close(conv(x), expected)
    # detectron2 parameter names: checkpoints load unchanged
    assert set(conv.state_dict()) == {
        "weight",
        "norm.weight",
        "norm.bias",
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
    }


def test_conv2d_empty_input_gives_empty_output_with_right_shape():
    conv = Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    out = conv(torch.zeros(0, 3, 10, 10))
    assert out.shape == (0, 8, 5, 5)
    conv_bn = Conv2d(3, 8, kernel_size=1, norm=FrozenBatchNorm2d(8), activation=F.relu)
    assert conv_bn(torch.zeros(0, 3, 4, 6)).shape == (0, 8, 4, 6)
    # gradients flow through an empty batch (loss terms on empty batches are still summed)
    x = torch.zeros(0, 3, 4, 4, requires_grad=True)
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() == 0


def test_conv2d_empty_input_with_syncbn_in_training_is_refused():
    conv = Conv2d(3, 8, kernel_size=1, norm=nn.SyncBatchNorm(8))
    with pytest.raises(ValueError, match="SyncBatchNorm does not support empty inputs"):
        conv(torch.zeros(0, 3, 4, 4))


def test_conv2d_bad_input_is_clear_error():
    conv = Conv2d(3, 8, kernel_size=1)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(1, 4, 5, 5\)"):
        conv(torch.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match="got \\(3, 5\\)"):
        conv(torch.zeros(3, 5))
    with pytest.raises(TypeError, match="expects a tensor"):
        conv([1, 2, 3])


def test_conv_transpose2d_is_torch():
    deconv = ConvTranspose2d(4, 2, kernel_size=2, stride=2)
    assert isinstance(deconv, nn.ConvTranspose2d)
    assert deconv(torch.zeros(1, 4, 7, 7)).shape == (1, 2, 14, 14)
    assert deconv(torch.zeros(0, 4, 7, 7)).shape == (0, 2, 14, 14)


def _trained_bn(c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c)
    bn.weight.data = torch.rand(c, generator=g) + 0.5
    bn.bias.data = torch.randn(c, generator=g)
    bn.running_mean = torch.randn(c, generator=g)
    bn.running_var = torch.rand(c, generator=g) + 0.1
    return bn.eval()


def test_frozen_bn_equals_eval_bn_and_identity_when_fresh():
    bn = _trained_bn()
    frozen = FrozenBatchNorm2d(5)
    x = torch.randn(2, 5, 3, 4)
    torch.testing.assert_close(frozen(x), x)  # fresh layer is exactly the identity
    frozen.load_state_dict({k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"})
    torch.testing.assert_close(frozen(x), bn(x))
    # the differentiable path gives the same numbers
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(frozen(xg), bn(x))
    frozen(xg).sum().backward()
    torch.testing.assert_close(
        xg.grad, (bn.weight / torch.sqrt(bn.running_var + 1e-5))[None, :, None, None].expand_as(x).detach()
    )
    assert sorted(dict(frozen.named_buffers())) == ["bias", "running_mean", "running_var", "weight"]
    assert list(frozen.parameters()) == []
    assert repr(frozen) == "FrozenBatchNorm2d(num_features=5, eps=1e-05)"


def test_frozen_bn_old_checkpoint_without_statistics_loads_as_identity_stats():
    frozen = FrozenBatchNorm2d(3)
    frozen.running_mean.fill_(7.0)
    state = {"weight": torch.tensor([1.0, 2.0, 3.0]), "bias": torch.tensor([0.0, 1.0, 0.0])}
    # version-less metadata = a Caffe2-era checkpoint: statistics are folded into weight/bias
    frozen._load_from_state_dict(state, "", {}, True, missing := [], unexpected := [], errors := [])
    assert missing == [] and unexpected == [] and errors == []
    assert frozen.running_mean.tolist() == [0.0, 0.0, 0.0]
    assert frozen.running_var.tolist() == [1.0, 1.0, 1.0]
    # a current-version state dict without statistics is reported missing as usual
    sd = FrozenBatchNorm2d(3).state_dict()
    del sd["running_mean"], sd["running_var"]
    res = FrozenBatchNorm2d(3).load_state_dict(sd, strict=False)
    assert sorted(res.missing_keys) == ["running_mean", "running_var"]
    assert FrozenBatchNorm2d(3).state_dict()._metadata[""]["version"] == 3


def test_convert_frozen_batchnorm_nested_and_top_level():
    model = nn.Sequential(nn.Conv2d(3, 5, 1), _trained_bn(), nn.Sequential(nn.BatchNorm2d(5)))
    x = torch.randn(1, 3, 4, 4)
    model.eval()
    expected = model(x)
    out = FrozenBatchNorm2d.convert_frozen_batchnorm(model)
    assert out is model
    assert isinstance(model[1], FrozenBatchNorm2d) and isinstance(model[2][0], FrozenBatchNorm2d)
    torch.testing.assert_close(model(x), expected)
    top = FrozenBatchNorm2d.convert_frozen_batchnorm(nn.BatchNorm2d(4, eps=1e-3))
    assert isinstance(top, FrozenBatchNorm2d) and top.eps == 1e-3


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("BN", nn.BatchNorm2d),
        ("SyncBN", nn.SyncBatchNorm),
        ("FrozenBN", FrozenBatchNorm2d),
        ("GN", nn.GroupNorm),
        ("nnSyncBN", nn.SyncBatchNorm),
        ("naiveSyncBN", NaiveSyncBatchNorm),
        ("naiveSyncBN_N", NaiveSyncBatchNorm),
        ("LN", LayerNorm),
    ],
)
def test_get_norm_types(name, cls):
    norm = get_norm(name, 64)
    assert type(norm) is cls
    if name == "GN":
        assert norm.num_groups == 32 and norm.num_channels == 64
    if name == "naiveSyncBN_N":
        assert norm._stats_mode == "N"


def test_get_norm_none_empty_callable_and_errors():
    assert get_norm(None, 8) is None
    assert get_norm("", 8) is None
    assert isinstance(get_norm(lambda c: nn.GroupNorm(2, c), 8), nn.GroupNorm)
    with pytest.raises(ValueError, match=r"Unknown norm 'BatchNorm'.*'FrozenBN'"):
        get_norm("BatchNorm", 8)
    with pytest.raises(TypeError, match="got int"):
        get_norm(3, 8)


def test_layer_norm_channels_first():
    ln = LayerNorm(4)
    ln.weight.data = torch.tensor([1.0, 2.0, 3.0, 4.0])
    x = torch.randn(2, 4, 3, 3)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (4,), ln.weight, ln.bias, eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref)


def test_naive_sync_bn_single_process_is_batchnorm():
    torch.manual_seed(0)
    a, b = NaiveSyncBatchNorm(3), nn.BatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(a(x), b(x))
    torch.testing.assert_close(a.running_mean, b.running_mean)
    with pytest.raises(ValueError, match="stats_mode"):
        NaiveSyncBatchNorm(3, stats_mode="M")


class _Block(CNNBlockBase):
    def __init__(self):
        super().__init__(3, 8, stride=2)
        self.conv = Conv2d(3, 8, 3, stride=2, padding=1, bias=False, norm=nn.BatchNorm2d(8))


def test_cnn_block_base_freeze():
    block = _Block()
    assert (block.in_channels, block.out_channels, block.stride) == (3, 8, 2)
    assert block.freeze() is block
    assert all(not p.requires_grad for p in block.parameters())
    assert isinstance(block.conv.norm, FrozenBatchNorm2d)
    assert "conv.norm.running_var" in block.state_dict()


def test_c2_fills():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 256, 3)
    c2_msra_fill(conv)
    assert conv.bias.abs().sum() == 0
    # MSRA: normal with std sqrt(2 / fan_out), fan_out = 256 * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (256 * 9)), rel=0.02)
    lin = nn.Linear(1000, 300)
    c2_xavier_fill(lin)
    assert lin.bias.abs().sum() == 0
    # Caffe2 Xavier: uniform(-b, b), b = sqrt(3 / fan_in)
    bound = math.sqrt(3 / 1000)
    assert lin.weight.abs().max().item() <= bound
    assert lin.weight.abs().max().item() > 0.99 * bound
    conv_nb = nn.Conv2d(3, 3, 1, bias=False)
    c2_msra_fill(conv_nb)
    with pytest.raises(TypeError, match="weight"):
        c2_msra_fill(nn.ReLU())


def test_contract_names_are_exported():
    import det.core.layers as layers
    from det.core.layers import weight_init

    contract = [
        "Conv2d",
        "ConvTranspose2d",
        "cat",
        "nonzero_tuple",
        "shapes_to_tensor",
        "move_device_like",
        "ShapeSpec",
        "FrozenBatchNorm2d",
        "get_norm",
        "NaiveSyncBatchNorm",
        "CNNBlockBase",
        "DeformConv",
        "ModulatedDeformConv",
        "ROIAlign",
        "ROIAlignRotated",
        "nms",
        "batched_nms",
        "nms_rotated",
        "batched_nms_rotated",
        "box_iou_rotated",
        "paste_masks",
        "smooth_l1_loss",
        "giou_loss",
        "diou_loss",
        "ciou_loss",
        "sigmoid_focal_loss",
        "sigmoid_focal_loss_jit",
        "sigmoid_focal_loss_star",
        "sigmoid_focal_loss_star_jit",
        "c2_xavier_fill",
        "c2_msra_fill",
    ]
    missing = [name for name in contract if not hasattr(layers, name)]
    assert missing == []
    assert sorted(layers.__all__) == sorted(set(layers.__all__))
    assert all(hasattr(layers, name) for name in layers.__all__)
    assert weight_init.c2_msra_fill is c2_msra_fill
    assert FrozenBatchNorm2d.convert_frozen_batchnorm.__self__ is FrozenBatchNorm2d


def test_linear_inference_on_onednn_equals_f_linear_and_training_is_f_linear_exactly():
    from torch.nn import functional as F

    from det.core.layers import Linear

    torch.manual_seed(0)
    fc = Linear(300, 40)
    x = torch.randn(50, 300)
    assert isinstance(fc, torch.nn.Linear) and list(fc.state_dict()) == ["weight", "bias"]
    reference = F.linear(x, fc.weight, fc.bias)
    with torch.no_grad():
        inferred = fc(x)
    torch.testing.assert_close(inferred, reference, rtol=1e-5, atol=1e-5)
    trained = fc(x)  # weight requires grad: F.linear, bit for bit
    assert torch.equal(trained, reference) and trained.requires_grad
    with torch.no_grad():
        assert fc(torch.zeros(0, 300)).shape == (0, 40)
        assert fc(x.double().float()[None]).shape == (1, 50, 40)  # 3-d input: F.linear


@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_with_frozen_bn_normalizes_its_own_output_in_place_bit_for_bit(channels_last):
    from det.core.layers import Conv2d, FrozenBatchNorm2d

    torch.manual_seed(0)
    bn = FrozenBatchNorm2d(6)
    bn.weight.uniform_(0.5, 1.5), bn.bias.normal_(), bn.running_mean.normal_(), bn.running_var.uniform_(0.2, 2)
    conv = Conv2d(3, 6, 3, padding=1, bias=False, norm=bn)
    x = torch.randn(2, 3, 9, 11)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = F.batch_norm(
        F.conv2d(x, conv.weight, None, padding=1), bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps
    )
    with torch.no_grad():
        assert torch.equal(conv(x), expected)
    trained = conv(x)  # gradients: the out-of-place op
    assert trained.requires_grad and torch.equal(trained.detach(), expected)

    mine = torch.randn(2, 6, 4, 4)
    kept = mine.clone()
    with torch.no_grad():
        bn(mine)  # called directly, the layer never writes into its input
    assert torch.equal(mine, kept)
    assert bn.normalize_in_place_(torch.zeros(1, 6, 2, 2, dtype=torch.float64)) is None


def test_new_empty_tensor_op_keeps_the_autograd_graph():
    """detectron2's private ``_NewEmptyTensorOp`` (TridentNet's TridentConv imports it)."""
    from det.core.layers.wrappers import _NewEmptyTensorOp

    x = torch.zeros(0, 3, 5, 5, requires_grad=True)
    y = _NewEmptyTensorOp.apply(x, [0, 8, 2, 2])
    assert y.shape == (0, 8, 2, 2) and y.requires_grad
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == (0, 3, 5, 5)
