"""TridentNet's distinctive computation: branches that share one weight, each at its own dilation.

Checked against independent implementations written here: a convolution as a sum over kernel taps
of shifted, zero-padded inputs (no torch convolution at all), plain `nn.Conv2d`s holding the same
weight, and det-backbones' plain `BottleneckBlock` loaded with a trident block's state_dict.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from det.backbones.resnet import BottleneckBlock
from det.core.layers import FrozenBatchNorm2d
from det.projects.tridentnet import TridentBottleneckBlock, TridentConv


def tap_sum_conv(x: torch.Tensor, weight: torch.Tensor, *, stride: int, padding: int, dilation: int,
                 groups: int = 1) -> torch.Tensor:
    """out[n, o, i, j] = sum_{c, ky, kx} w[o, c, ky, kx] * xpad[n, c, i*s + ky*d, j*s + kx*d], per group."""
    n, c, h, w = x.shape
    out_c, c_per_group, kh, kw = weight.shape
    xpad = torch.zeros(n, c, h + 2 * padding, w + 2 * padding, dtype=x.dtype)
    xpad[:, :, padding:padding + h, padding:padding + w] = x
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = torch.zeros(n, out_c, oh, ow, dtype=x.dtype)
    o_per_group = out_c // groups
    for g in range(groups):
        xs = xpad[:, g * c_per_group:(g + 1) * c_per_group]
        ws = weight[g * o_per_group:(g + 1) * o_per_group]
        for ky in range(kh):
            for kx in range(kw):
                patch = xs[:, :, ky * dilation: ky * dilation + stride * (oh - 1) + 1: stride,
                           kx * dilation: kx * dilation + stride * (ow - 1) + 1: stride]
                out[:, g * o_per_group:(g + 1) * o_per_group] += torch.einsum("nchw,oc->nohw", patch, ws[:, :, ky, kx])
    return out


@pytest.mark.parametrize(("stride", "groups"), [(1, 1), (2, 2)])
def test_one_weight_three_dilations_equals_three_plain_convolutions(stride, groups):
    torch.manual_seed(0)
    conv = TridentConv(4, 6, 3, stride=stride, paddings=(1, 2, 3), dilations=(1, 2, 3), groups=groups,
                       num_branch=3).double()
    xs = [torch.randn(2, 4, 11, 13, dtype=torch.float64) for _ in range(3)]
    outs = conv(xs)
    assert len(outs) == 3
    for d, x, y in zip((1, 2, 3), xs, outs):
        expected = tap_sum_conv(x, conv.weight.detach(), stride=stride, padding=d, dilation=d, groups=groups)
        torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)
        plain = nn.Conv2d(4, 6, 3, stride=stride, padding=d, dilation=d, groups=groups, bias=False).double()
        plain.weight.data.copy_(conv.weight.data)
        torch.testing.assert_close(y, plain(x), rtol=0, atol=1e-12)
    # "same" padding at every dilation: the branches keep one resolution
    assert {tuple(y.shape) for y in outs} == {(2, 6, (11 - 1) // stride + 1, (13 - 1) // stride + 1)}


def test_the_shared_weight_gets_the_sum_of_the_branches_gradients():
    torch.manual_seed(1)
    conv = TridentConv(3, 5, 3, paddings=(1, 2, 3), dilations=(1, 2, 3), num_branch=3, bias=True)
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]
    x = torch.randn(1, 3, 9, 9)
    upstream = [torch.randn(1, 5, 9, 9) for _ in range(3)]
    sum((y * u).sum() for y, u in zip(conv([x, x, x]), upstream)).backward()

    plains = []
    for d in (1, 2, 3):
        plain = nn.Conv2d(3, 5, 3, padding=d, dilation=d)
        plain.load_state_dict(conv.state_dict())
        plains.append(plain)
    sum((plain(x) * u).sum() for plain, u in zip(plains, upstream)).backward()
    torch.testing.assert_close(conv.weight.grad, sum(p.weight.grad for p in plains))
    torch.testing.assert_close(conv.bias.grad, sum(p.bias.grad for p in plains))


def test_inference_with_a_test_branch_runs_that_branch_alone():
    torch.manual_seed(2)
    conv = TridentConv(3, 4, 3, paddings=(1, 2, 3), dilations=(1, 2, 3), num_branch=3, test_branch_idx=2)
    x = torch.randn(1, 3, 10, 10)
    assert len(conv([x, x, x])) == 3  # training: every branch
    conv.eval()
    (y,) = conv([x])
    torch.testing.assert_close(y, tap_sum_conv(x, conv.weight.detach(), stride=1, padding=3, dilation=3),
                               rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"inference with test_branch_idx=2 takes a list of 1 tensors"):
        conv([x, x, x])
    conv.test_branch_idx = -1  # every branch at inference too
    assert len(conv([x, x, x])) == 3


def test_norm_and_activation_follow_every_branch():
    torch.manual_seed(3)
    norm = FrozenBatchNorm2d(4)
    norm.weight.uniform_(0.5, 2.0)
    norm.bias.uniform_(-1, 1)
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2.0)
    conv = TridentConv(2, 4, 3, paddings=(1, 2), dilations=(1, 2), num_branch=2, norm=norm, activation=F.relu)
    x = torch.randn(1, 2, 8, 8)
    for d, y in zip((1, 2), conv([x, x])):
        z = tap_sum_conv(x, conv.weight.detach(), stride=1, padding=d, dilation=d)
        scale = norm.weight / (norm.running_var + norm.eps).sqrt()
        expected = F.relu(z * scale[:, None, None] + (norm.bias - norm.running_mean * scale)[:, None, None])
        torch.testing.assert_close(y, expected, rtol=0, atol=1e-5)
    assert sorted(conv.state_dict()) == ["norm.bias", "norm.running_mean", "norm.running_var", "norm.weight", "weight"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dilations": (1, 2)}, r"dilations needs one value per branch \(num_branch=3\), got \(1, 2\)"),
    ({"paddings": [1, 2, 3, 4]}, r"paddings needs one value per branch \(num_branch=3\)"),
    ({"test_branch_idx": 3}, r"test_branch_idx must be -1 \(every branch\) or a branch index in \[0, 3\), got 3"),
    ({"groups": 3}, r"groups=3 must divide in_channels=4 and out_channels=4"),
])
def test_bad_arguments_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TridentConv(4, 4, 3, **{"num_branch": 3, **kwargs})


def test_training_wants_one_input_per_branch():
    conv = TridentConv(2, 2, 3, paddings=(1, 2, 3), dilations=(1, 2, 3), num_branch=3)
    with pytest.raises(ValueError, match=r"TridentConv in training takes a list of 3 tensors \(one per branch\), got a list of 1"):
        conv([torch.zeros(1, 2, 5, 5)])
    with pytest.raises(ValueError, match="got Tensor"):
        conv(torch.zeros(1, 2, 5, 5))


@pytest.mark.parametrize("stride_in_1x1", [True, False])
def test_trident_block_is_three_plain_bottleneck_blocks_with_one_set_of_weights(stride_in_1x1):
    torch.manual_seed(4)
    kwargs = {"bottleneck_channels": 4, "stride": 2, "norm": "FrozenBN", "stride_in_1x1": stride_in_1x1}
    trident = TridentBottleneckBlock(8, 16, num_branch=3, dilations=(1, 2, 3), concat_output=True, **kwargs)
    for module in trident.modules():  # non-trivial frozen statistics, so the norms matter
        if isinstance(module, FrozenBatchNorm2d):
            module.weight.uniform_(0.5, 1.5)
            module.running_mean.uniform_(-0.2, 0.2)
    x = torch.randn(2, 8, 12, 12)
    out = trident(x)
    assert out.shape == (6, 16, 6, 6)  # branch-major: (branch 0: both images, branch 1, branch 2)
    for b, d in enumerate((1, 2, 3)):
        plain = BottleneckBlock(8, 16, dilation=d, **kwargs)
        plain.load_state_dict(trident.state_dict(), strict=True)  # the very same parameter names
        torch.testing.assert_close(out[2 * b: 2 * b + 2], plain(x), rtol=0, atol=1e-5)


def test_trident_block_passes_lists_between_blocks_and_runs_one_branch_at_fast_inference():
    torch.manual_seed(5)
    first = TridentBottleneckBlock(8, 8, bottleneck_channels=4, norm="", test_branch_idx=1)
    last = TridentBottleneckBlock(8, 8, bottleneck_channels=4, norm="", test_branch_idx=1, concat_output=True)
    x = torch.randn(1, 8, 7, 7)
    middle = first(x)
    assert isinstance(middle, list) and len(middle) == 3
    assert last(middle).shape == (3, 8, 7, 7)
    first.eval(), last.eval()
    fast = last(first(x))
    assert fast.shape == (1, 8, 7, 7)
    plain = [BottleneckBlock(8, 8, bottleneck_channels=4, norm="", dilation=2).eval() for _ in range(2)]
    plain[0].load_state_dict(first.state_dict())
    plain[1].load_state_dict(last.state_dict())
    torch.testing.assert_close(fast, plain[1](plain[0](x)), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"num_branch=3 but 2 dilations \[1, 2\]"):
        TridentBottleneckBlock(8, 8, bottleneck_channels=4, dilations=(1, 2))
