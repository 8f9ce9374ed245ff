"""ASPP, DepthwiseSeparableConv2d and CycleBatchNormList: detectron2's layers, same state-dict keys."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from det.core.layers import ASPP, CycleBatchNormList, DepthwiseSeparableConv2d


def test_depthwise_separable_conv_is_a_grouped_conv_then_a_pointwise_conv():
    torch.manual_seed(0)
    block = DepthwiseSeparableConv2d(4, 6, kernel_size=3, padding=2, dilation=2, activation2=F.relu)
    assert sorted(block.state_dict()) == ["depthwise.bias", "depthwise.weight", "pointwise.bias", "pointwise.weight"]
    assert block.depthwise.weight.shape == (4, 1, 3, 3) and block.pointwise.weight.shape == (6, 4, 1, 1)
    x = torch.randn(2, 4, 9, 11)
    d = F.conv2d(x, block.depthwise.weight, block.depthwise.bias, padding=2, dilation=2, groups=4)
    expected = F.relu(F.conv2d(d, block.pointwise.weight, block.pointwise.bias))
    torch.testing.assert_close(block(x), expected)


def test_depthwise_separable_conv_with_norms_has_no_conv_bias():
    block = DepthwiseSeparableConv2d(4, 6, norm1="BN", norm2="BN")
    assert sorted(k for k in block.state_dict() if "num_batches" not in k) == [
        "depthwise.norm.bias", "depthwise.norm.running_mean", "depthwise.norm.running_var",
        "depthwise.norm.weight", "depthwise.weight",
        "pointwise.norm.bias", "pointwise.norm.running_mean", "pointwise.norm.running_var",
        "pointwise.norm.weight", "pointwise.weight",
    ]  # fmt: skip


def test_aspp_concatenates_five_branches_and_projects():
    torch.manual_seed(0)
    aspp = ASPP(3, 4, [1, 2, 3], norm="", activation=F.relu).eval()
    keys = sorted(aspp.state_dict())
    assert keys == [
        "convs.0.bias", "convs.0.weight", "convs.1.bias", "convs.1.weight", "convs.2.bias",
        "convs.2.weight", "convs.3.bias", "convs.3.weight", "convs.4.1.bias", "convs.4.1.weight",
        "project.bias", "project.weight",
    ]  # fmt: skip
    x = torch.randn(2, 3, 7, 5)
    convs = aspp.convs
    branches = [F.relu(F.conv2d(x, convs[0].weight, convs[0].bias))]
    for i, dilation in enumerate([1, 2, 3], start=1):
        branches.append(F.relu(F.conv2d(x, convs[i].weight, convs[i].bias, padding=dilation, dilation=dilation)))
    pooled = F.relu(F.conv2d(x.mean(dim=(2, 3), keepdim=True), convs[4][1].weight, convs[4][1].bias))
    branches.append(pooled.expand(-1, -1, 7, 5))
    expected = F.relu(F.conv2d(torch.cat(branches, 1), aspp.project.weight, aspp.project.bias))
    torch.testing.assert_close(aspp(x), expected)


def test_aspp_variants_and_errors():
    separable = ASPP(8, 4, [6, 12, 18], norm="BN", activation=F.relu, use_depthwise_separable_conv=True)
    keys = set(separable.state_dict())
    assert {"convs.1.depthwise.weight", "convs.3.pointwise.norm.running_var", "convs.0.norm.weight"} <= keys
    assert "convs.0.bias" not in keys and "convs.4.1.bias" in keys  # the pooled branch has no norm
    pooled = ASPP(8, 4, [1, 2, 3], norm="", activation=F.relu, pool_kernel_size=(4, 4), dropout=0.5).eval()
    assert pooled(torch.randn(1, 8, 8, 12)).shape == (1, 4, 8, 12)
    with pytest.raises(ValueError, match=r"multiple of pool_kernel_size \(4, 4\)"):
        pooled(torch.randn(1, 8, 6, 8))
    with pytest.raises(ValueError, match="ASPP expects 3 dilations, got 2"):
        ASPP(8, 4, [1, 2], norm="", activation=None)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        pooled(torch.randn(8, 8, 12))


def test_cycle_batch_norm_list_keeps_one_set_of_statistics_per_domain():
    norm = CycleBatchNormList(length=2, num_features=3)
    assert sorted(norm.state_dict())[-2:] == ["bias", "weight"] and not norm[0].affine
    domain_a, domain_b = torch.full((2, 3, 4, 4), 10.0), torch.full((2, 3, 4, 4), -4.0)
    for _ in range(3):
        norm(domain_a)
        norm(domain_b)
    # three updates from 0 with momentum m reach value * (1 - (1 - m) ** 3), each domain its own
    reached = 1 - (1 - norm[0].momentum) ** 3
    torch.testing.assert_close(norm[0].running_mean, torch.full((3,), 10.0 * reached))
    torch.testing.assert_close(norm[1].running_mean, torch.full((3,), -4.0 * reached))
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.bias.fill_(1.0)
    norm.eval()
    x = torch.randn(1, 3, 2, 2)
    out_a = norm(x)
    expected = (x - norm[0].running_mean.reshape(1, 3, 1, 1)) / torch.sqrt(
        norm[0].running_var.reshape(1, 3, 1, 1) + norm[0].eps) * 2 + 1
    torch.testing.assert_close(out_a, expected)
    plain = CycleBatchNormList(length=3, num_features=3, affine=False)
    assert list(plain.parameters()) == [] and "affine=False" in repr(plain)
    with pytest.raises(ValueError, match="length must be a positive int"):
        CycleBatchNormList(length=0, num_features=3)
