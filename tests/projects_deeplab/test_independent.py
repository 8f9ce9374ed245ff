"""DeepLab's distinctive computations against direct implementations written here from the
papers' definitions (plain tensor arithmetic, their own convolution bookkeeping, pooling and
bilinear resampling): ASPP with image pooling (det-core's ASPP), the DeepLabV3 / V3+ heads, the
hard-pixel-mining loss, the poly schedule and the dilated multi-grid backbone."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from det.core.layers import ASPP, ShapeSpec
from det.projects.deeplab import DeepLabCE, DeepLabV3Head, DeepLabV3PlusHead, WarmupPolyLR

# --- the reference implementation -------------------------------------------------------------


def bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Half-pixel-centre bilinear resize (align_corners=False), by explicit index arithmetic."""
    def axis(n_in: int, n_out: int):
        scale = n_in / n_out
        src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        return i0, i1, (src - i0).to(x.dtype)

    y0, y1, wy = axis(x.shape[-2], size[0])
    x0, x1, wx = axis(x.shape[-1], size[1])
    top = x[..., y0, :][..., x0] * (1 - wx) + x[..., y0, :][..., x1] * wx
    bottom = x[..., y1, :][..., x0] * (1 - wx) + x[..., y1, :][..., x1] * wx
    return top * (1 - wy[:, None]) + bottom * wy[:, None]


def conv(x: torch.Tensor, weight: torch.Tensor, bias=None, dilation: int = 1, groups: int = 1) -> torch.Tensor:
    """'Same' convolution (stride 1, odd kernel) by summing shifted inputs times the weights."""
    n, c, h, w = x.shape
    out_c, _, k, _ = weight.shape
    pad = dilation * (k // 2)
    xp = F.pad(x, (pad, pad, pad, pad))
    per_group = c // groups
    out = torch.zeros(n, out_c, h, w, dtype=x.dtype)
    outs_per_group = out_c // groups
    for g in range(groups):
        xs = xp[:, g * per_group:(g + 1) * per_group]
        ws = weight[g * outs_per_group:(g + 1) * outs_per_group]
        for i in range(k):
            for j in range(k):
                patch = xs[:, :, i * dilation:i * dilation + h, j * dilation:j * dilation + w]
                out[:, g * outs_per_group:(g + 1) * outs_per_group] += torch.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if bias is not None:
        out += bias[None, :, None, None]
    return out


def batch_norm_eval(x: torch.Tensor, norm) -> torch.Tensor:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return (x - norm.running_mean[None, :, None, None]) * scale[None, :, None, None] + norm.bias[None, :, None, None]


def conv_block(x: torch.Tensor, module, dilation: int = 1) -> torch.Tensor:
    """A det Conv2d (conv, optional BN, ReLU) computed from its parameters."""
    groups = module.groups
    y = conv(x, module.weight, module.bias, dilation=dilation, groups=groups)
    if module.norm is not None:
        y = batch_norm_eval(y, module.norm)
    return y.clamp(min=0)


def avg_pool_valid(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Mean over every kh x kw window (stride 1, no padding) from a summed-area table."""
    s = F.pad(x.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    total = s[..., kh:, kw:] - s[..., :-kh, kw:] - s[..., kh:, :-kw] + s[..., :-kh, :-kw]
    return total / (kh * kw)


def reference_aspp(x: torch.Tensor, aspp: ASPP, dilations, pool=None, separable: bool = False) -> torch.Tensor:
    """DeepLabV3's ASPP: [1x1, three dilated 3x3, image pooling -> 1x1 -> upsample] -> concat -> 1x1."""
    branches = [conv_block(x, aspp.convs[0])]
    for module, d in zip(aspp.convs[1:4], dilations):
        if separable:
            y = conv_block(x, module.depthwise, dilation=d)
            branches.append(conv_block(y, module.pointwise))
        else:
            branches.append(conv_block(x, module, dilation=d))
    pooled = x.mean(dim=(2, 3), keepdim=True) if pool is None else avg_pool_valid(x, *pool)
    pooled = conv_block(pooled, aspp.convs[4][1])
    branches.append(bilinear(pooled, x.shape[-2:]))
    return conv_block(torch.cat(branches, dim=1), aspp.project)


def randomize_norms(module: torch.nn.Module, generator: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator) * 0.1)


# --- ASPP (det.core.layers.ASPP) ----------------------------------------------------------------


@pytest.mark.parametrize(("pool", "separable", "size"), [
    (None, False, (9, 13)),        # image pooling over the whole map
    ((4, 6), False, (8, 12)),      # over the training crop's extent: a 5 x 7 map, upsampled
    ((4, 6), True, (4, 6)),        # depthwise-separable branches; pooled to 1 x 1
])
def test_aspp_with_image_pooling_matches_the_definition(pool, separable, size):
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    aspp = ASPP(6, 8, [1, 2, 3], norm="BN", activation=F.relu, pool_kernel_size=pool, dropout=0.1,
                use_depthwise_separable_conv=separable)
    with torch.no_grad():
        randomize_norms(aspp, g)
        for p in aspp.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3, generator=g)
    x = torch.randn(2, 6, *size, generator=g)
    with torch.no_grad():
        ours = aspp.eval()(x)
        theirs = reference_aspp(x, aspp, [1, 2, 3], pool, separable)
    assert ours.shape == (2, 8, *size)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_bilinear_reference_agrees_with_itself_on_a_known_case():
    # a 2-pixel ramp doubled: half-pixel centres give 0, 0.25, 0.75, 1
    out = bilinear(torch.tensor([[[[0.0, 1.0]]]]), (1, 4))
    assert out.flatten().tolist() == [0.0, 0.25, 0.75, 1.0]


# --- the heads ----------------------------------------------------------------------------------


def _randomized(head: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        randomize_norms(head, g)
        for name, p in head.named_parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3, generator=g)
            elif name.endswith("predictor.bias"):
                p.normal_(0, 0.1, generator=g)
    return head.eval()


def test_deeplab_v3_plus_head_matches_aspp_then_decoder():
    shapes = {"res2": ShapeSpec(channels=5, stride=4), "res3": ShapeSpec(channels=6, stride=8),
              "res5": ShapeSpec(channels=7, stride=16)}
    head = _randomized(DeepLabV3PlusHead(
        shapes, project_channels=[3, 4], aspp_dilations=[1, 2, 3], aspp_dropout=0.1, decoder_channels=[6, 5, 8],
        common_stride=4, norm="BN", train_size=(64, 96), num_classes=3, loss_type="cross_entropy"), 2)
    g = torch.Generator().manual_seed(3)
    feats = {"res2": torch.randn(1, 5, 16, 24, generator=g), "res3": torch.randn(1, 6, 8, 12, generator=g),
             "res5": torch.randn(1, 7, 4, 6, generator=g)}
    with torch.no_grad():
        ours, losses = head(feats)
        y = reference_aspp(feats["res5"], head.decoder["res5"]["project_conv"], [1, 2, 3], (4, 6))
        for name in ("res3", "res2"):  # coarse to fine: project, upsample, concat, two 3x3 convs
            stage = head.decoder[name]
            x = conv_block(feats[name], stage["project_conv"])
            y = torch.cat([x, bilinear(y, x.shape[-2:])], dim=1)
            y = conv_block(conv_block(y, stage["fuse_conv"][0]), stage["fuse_conv"][1])
        logits = conv(y, head.predictor.weight, head.predictor.bias)
        theirs = bilinear(logits, (64, 96))
    assert losses == {} and ours.shape == (1, 3, 64, 96)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_deeplab_v3_head_matches_aspp_then_predictor():
    head = _randomized(DeepLabV3Head(
        {"res5": ShapeSpec(channels=7, stride=16)}, in_features=["res5"], aspp_channels=8, aspp_dilations=[1, 2, 3],
        aspp_dropout=0.1, conv_dims=8, num_classes=4, common_stride=16, norm="BN", train_size=None), 4)
    x = torch.randn(2, 7, 3, 5, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours, _ = head({"res5": x})
        y = reference_aspp(x, head.aspp, [1, 2, 3])
        theirs = bilinear(conv(y, head.predictor.weight, head.predictor.bias), (48, 80))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_decoder_only_head_returns_the_decoder_features_and_bad_sizes_are_refused():
    shapes = {"res2": ShapeSpec(channels=5, stride=4), "res5": ShapeSpec(channels=7, stride=16)}
    kwargs = dict(project_channels=[3], aspp_dilations=[1, 2, 3], aspp_dropout=0.0, decoder_channels=[6, 8],
                  common_stride=4, norm="BN")
    head = DeepLabV3PlusHead(shapes, train_size=None, num_classes=None, **kwargs).eval()
    assert head.decoder_only and not hasattr(head, "predictor")
    out = head({"res2": torch.rand(1, 5, 8, 8), "res5": torch.rand(1, 7, 2, 2)})
    assert out.shape == (1, 6, 8, 8)
    with pytest.raises(ValueError, match=r"Crop size need to be divisible by encoder stride: INPUT.CROP.SIZE "
                                         r"\(50, 64\) is not a multiple of res5's stride 16"):
        DeepLabV3PlusHead(shapes, train_size=(50, 64), num_classes=3, **kwargs)
    with pytest.raises(ValueError, match=r"Expected 1 project_channels \(one per low-level feature of \['res2'\]\)"):
        DeepLabV3PlusHead(shapes, train_size=None, num_classes=3, **{**kwargs, "project_channels": [3, 4]})
    with pytest.raises(ValueError, match=r"Unexpected loss type: MODEL.SEM_SEG_HEAD.LOSS_TYPE='focal'"):
        DeepLabV3PlusHead(shapes, train_size=None, num_classes=3, loss_type="focal", **kwargs)


# --- hard pixel mining --------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [1.0, 0.2])
def test_deeplab_ce_averages_the_hardest_pixels(top_k):
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    labels = torch.randint(0, 4, (2, 5, 6), generator=g)
    labels[0, 0, :3] = 255
    weights = torch.rand(2, 5, 6, generator=g) * 3
    for w in (None, weights):
        # -log softmax of the true class, 0 for ignored pixels, times the weight
        log_z = logits.exp().sum(1).log()
        true = logits.gather(1, labels.clamp(max=3)[:, None])[:, 0]
        per_pixel = torch.where(labels == 255, torch.zeros(()), log_z - true) * (1 if w is None else w)
        values = sorted(per_pixel.flatten().tolist(), reverse=True)
        k = int(top_k * len(values))  # 60 pixels -> 12 of them at 0.2
        expected = sum(values[:k]) / k
        got = DeepLabCE(ignore_label=255, top_k_percent_pixels=top_k)(logits, labels, w)
        assert got.item() == pytest.approx(expected, rel=1e-5)


# --- the poly schedule --------------------------------------------------------------------------


def test_warmup_poly_lr_without_det_engine_says_which_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "det.engine.train.lr_scheduler", None)  # as if not installed
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    with pytest.raises(ImportError, match=r"pip install 'det-deeplab\[train\]'"):
        WarmupPolyLR(optimizer, max_iters=10)


@pytest.mark.parametrize(("method", "constant_ending"), [("linear", 0.0), ("constant", 0.3)])
def test_warmup_poly_lr_follows_the_formula(method, constant_ending):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.5)
    sched = WarmupPolyLR(optimizer, max_iters=10, warmup_factor=0.1, warmup_iters=3, warmup_method=method,
                         power=0.9, constant_ending=constant_ending)
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    expected = []
    for it in range(10):
        warm = 1.0 if it >= 3 else (0.1 if method == "constant" else 0.1 + (1 - 0.1) * it / 3)
        poly = (1 - it / 10) ** 0.9
        if constant_ending and warm == 1.0 and poly < constant_ending:
            expected.append(0.5 * constant_ending)
        else:
            expected.append(0.5 * warm * poly)
    assert seen == pytest.approx(expected, rel=1e-12)
    if constant_ending:
        # at iterations 8 and 9 the poly factor (0.2^0.9, 0.1^0.9) is below 0.3; at 7, 0.3^0.9 is not
        assert seen[-3:] == pytest.approx([0.5 * 0.3**0.9, 0.15, 0.15])


# --- the DeepLab backbone -----------------------------------------------------------------------


@pytest.mark.parametrize(("res4", "res5", "strides", "dilations"), [
    (1, 2, {"res2": 4, "res3": 8, "res4": 16, "res5": 16}, [2, 4, 8]),    # output stride 16
    (2, 4, {"res2": 4, "res3": 8, "res4": 8, "res5": 8}, [4, 8, 16]),     # output stride 8
    (1, 1, {"res2": 4, "res3": 8, "res4": 16, "res5": 32}, [1, 2, 4]),
])
def test_deeplab_resnet_strides_and_multi_grid(res4, res5, strides, dilations):
    from det.core import build_backbone, get_cfg

    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "build_resnet_deeplab_backbone", "MODEL.RESNETS.NORM", "BN",
                         "MODEL.RESNETS.OUT_FEATURES", ["res2", "res3", "res4", "res5"],
                         "MODEL.RESNETS.STEM_OUT_CHANNELS", 16, "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
                         "MODEL.RESNETS.RES2_OUT_CHANNELS", 16, "MODEL.RESNETS.RES4_DILATION", res4,
                         "MODEL.RESNETS.RES5_DILATION", res5])
    backbone = build_backbone(cfg).eval()
    assert {k: v.stride for k, v in backbone.output_shape().items()} == strides
    assert [block.conv2.dilation[0] for block in backbone.res5] == dilations
    assert [m.kernel_size for m in (backbone.stem.conv1, backbone.stem.conv2, backbone.stem.conv3)] == [(3, 3)] * 3
    out = backbone(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {k: (64 // s, 64 // s) for k, s in strides.items()}


def test_deeplab_resnet_refuses_bad_dilations_clearly():
    from det.core import build_backbone, get_cfg

    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "build_resnet_deeplab_backbone", "MODEL.RESNETS.RES4_DILATION", 2])
    with pytest.raises(ValueError, match=r"MODEL.RESNETS.RES4_DILATION=2 needs RES5_DILATION=4"):
        build_backbone(cfg)
    cfg.MODEL.RESNETS.RES4_DILATION = 1
    cfg.MODEL.RESNETS.STEM_TYPE = "wide"
    with pytest.raises(ValueError, match=r"Unknown stem type: MODEL.RESNETS.STEM_TYPE='wide'"):
        build_backbone(cfg)
