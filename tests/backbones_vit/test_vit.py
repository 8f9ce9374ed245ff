"""ViT (window/global blocks, relative and absolute positions), SimpleFeaturePyramid and the
layer-wise learning-rate decay, as detectron2's ViTDet defines them."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from det.backbones import LastLevelMaxPool
from det.backbones.vit import SimpleFeaturePyramid, ViT, get_vit_lr_decay_rate
from det.core.layers import ShapeSpec


def small_vit(**kwargs) -> ViT:
    args = dict(img_size=64, patch_size=8, embed_dim=32, depth=4, num_heads=4, window_size=3,
                window_block_indexes=[0, 2], use_rel_pos=True, rel_pos_zero_init=False,
                norm_layer=partial(nn.LayerNorm, eps=1e-6), pretrain_img_size=32)
    args.update(kwargs)
    torch.manual_seed(0)
    return ViT(**args)


def test_window_and_global_blocks_size_their_rel_pos_tables():
    vit = small_vit(residual_block_indexes=[1])
    assert [blk.window_size for blk in vit.blocks] == [3, 0, 3, 0]
    # window blocks: 2 * 3 - 1 rows; global blocks: 2 * (64 / 8) - 1 rows; head_dim 8
    assert [tuple(blk.attn.rel_pos_h.shape) for blk in vit.blocks] == [(5, 8), (15, 8), (5, 8), (15, 8)]
    assert tuple(vit.pos_embed.shape) == (1, 1 + 4 * 4, 32)  # pre-training grid 32/8 + class token
    assert [hasattr(blk, "residual") for blk in vit.blocks] == [False, True, False, False]
    assert vit.output_shape() == {"last_feat": ShapeSpec(channels=32, stride=8)}


def test_forward_matches_the_formula_on_a_grid_that_needs_window_padding(formula_attention):
    vit = small_vit(residual_block_indexes=[1]).eval()
    # make the residual block do something (its last norm starts at zero)
    nn.init.normal_(vit.blocks[1].residual.norm3.weight)
    x = torch.rand(2, 3, 56, 40)  # 7 x 5 tokens: windows of 3 pad to 9 x 6
    with torch.no_grad():
        out = vit(x)["last_feat"]
        with formula_attention():
            expected = vit(x)["last_feat"]
    assert out.shape == (2, 32, 7, 5)
    assert torch.allclose(out, expected, atol=1e-5), (out - expected).abs().max()


def test_training_gradients_match_the_formula(formula_attention):
    vit = small_vit(drop_path_rate=0.0)
    x = torch.rand(1, 3, 32, 48)
    vit(x)["last_feat"].square().sum().backward()
    fused = {n: p.grad.clone() for n, p in vit.named_parameters()}
    vit.zero_grad()
    with formula_attention():
        vit(x)["last_feat"].square().sum().backward()
    for name, p in vit.named_parameters():
        assert torch.allclose(fused[name], p.grad, atol=1e-4, rtol=1e-4), name
    assert fused["blocks.1.attn.rel_pos_h"].abs().sum() > 0


def test_activation_checkpointing_keeps_names_and_gradients():
    plain, checkpointed = small_vit(), small_vit(use_act_checkpoint=True)
    assert list(plain.state_dict()) == list(checkpointed.state_dict())
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 32, 32)
    for model in (plain, checkpointed):
        model(x)["last_feat"].sum().backward()
    assert torch.allclose(plain.patch_embed.proj.weight.grad, checkpointed.patch_embed.proj.weight.grad, atol=1e-5)


def test_without_abs_pos_and_without_class_token():
    assert small_vit(use_abs_pos=False).pos_embed is None
    vit = small_vit(pretrain_use_cls_token=False)
    assert tuple(vit.pos_embed.shape) == (1, 16, 32)
    assert vit(torch.rand(1, 3, 24, 24))["last_feat"].shape == (1, 32, 3, 3)


def test_simple_feature_pyramid_levels_and_padding():
    sfp = SimpleFeaturePyramid(small_vit(patch_size=16), "last_feat", 16, (4.0, 2.0, 1.0, 0.5),
                               top_block=LastLevelMaxPool(), square_pad=64)
    # stride 16 net: scales 4, 2, 1, 0.5 give strides 4, 8, 16, 32, plus p6 max-pooled from p5
    assert {k: (s.channels, s.stride) for k, s in sfp.output_shape().items()} == {
        "p2": (16, 4), "p3": (16, 8), "p4": (16, 16), "p5": (16, 32), "p6": (16, 64)}
    assert [n for n, _ in sfp.named_children()] == ["simfp_2", "simfp_3", "simfp_4", "simfp_5", "net", "top_block"]
    assert [type(m).__name__ for m in sfp.simfp_2] == ["ConvTranspose2d", "LayerNorm", "GELU", "ConvTranspose2d",
                                                      "Conv2d", "Conv2d"]
    assert [type(m).__name__ for m in sfp.simfp_3] == ["ConvTranspose2d", "Conv2d", "Conv2d"]
    assert [type(m).__name__ for m in sfp.simfp_4] == ["Conv2d", "Conv2d"]
    assert [type(m).__name__ for m in sfp.simfp_5] == ["MaxPool2d", "Conv2d", "Conv2d"]
    # detectron2's key (with its spelling): only square_size reaches ImageList
    assert sfp.padding_constraints == {"size_divisiblity": 32, "square_size": 64}
    out = sfp(torch.rand(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p2": (1, 16, 16, 16), "p3": (1, 16, 8, 8), "p4": (1, 16, 4, 4), "p5": (1, 16, 2, 2), "p6": (1, 16, 1, 1)}


def test_simple_feature_pyramid_errors():
    vit = small_vit()
    with pytest.raises(ValueError, match=r"scale_factor=3.0 is not supported \(use 4.0, 2.0, 1.0, 0.5\)"):
        SimpleFeaturePyramid(vit, "last_feat", 16, (4.0, 3.0))
    with pytest.raises(ValueError, match=r"in_feature 'res5' is not an output of net \(it has \['last_feat'\]\)"):
        SimpleFeaturePyramid(vit, "res5", 16, (1.0,))
    with pytest.raises(TypeError, match="net must be a det Backbone, got Linear"):
        SimpleFeaturePyramid(nn.Linear(2, 2), "x", 16, (1.0,))
    # stride-8 net: levels p1..p4, so a top block reading p5 has nothing to read
    with pytest.raises(ValueError, match=r"top_block reads 'p5', which is neither an output of net"):
        SimpleFeaturePyramid(vit, "last_feat", 16, (4.0, 2.0, 1.0, 0.5), top_block=LastLevelMaxPool())


def test_norm_free_pyramid_convs_have_biases():
    sfp = SimpleFeaturePyramid(small_vit(), "last_feat", 16, (4.0, 2.0, 1.0), norm="")
    assert sfp.simfp_3[0].bias is not None and sfp.simfp_3[0].norm is None
    assert [type(m).__name__ for m in sfp.simfp_1] == ["ConvTranspose2d", "Identity", "GELU", "ConvTranspose2d",
                                                      "Conv2d", "Conv2d"]
    assert sfp(torch.rand(1, 3, 32, 32))["p1"].shape == (1, 16, 16, 16)


def test_get_vit_lr_decay_rate():
    rate = partial(get_vit_lr_decay_rate, lr_decay_rate=0.7, num_layers=12)
    assert rate("backbone.net.pos_embed") == pytest.approx(0.7**13)
    assert rate("backbone.net.patch_embed.proj.weight") == pytest.approx(0.7**13)
    assert rate("backbone.net.blocks.0.attn.qkv.weight") == pytest.approx(0.7**12)
    assert rate("backbone.net.blocks.11.mlp.fc2.bias") == pytest.approx(0.7)
    assert rate("backbone.net.blocks.5.residual.conv1.weight") == 1.0  # residual conv blocks: no decay
    assert rate("backbone.simfp_2.0.weight") == 1.0
    assert rate("roi_heads.box_predictor.cls_score.weight") == 1.0


def test_layer_wise_lr_decay_through_the_optimizer_params():
    from det.engine.train.solver import get_default_optimizer_params

    model = nn.Module()
    model.backbone = SimpleFeaturePyramid(small_vit(), "last_feat", 16, (1.0,))
    groups = get_default_optimizer_params(
        model, base_lr=1.0, lr_factor_func=partial(get_vit_lr_decay_rate, lr_decay_rate=0.5, num_layers=4))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    vit = model.backbone.net
    assert lr_of[id(vit.pos_embed)] == 0.5**5 and lr_of[id(vit.patch_embed.proj.weight)] == 0.5**5
    assert lr_of[id(vit.blocks[0].attn.qkv.weight)] == 0.5**4
    assert lr_of[id(vit.blocks[3].mlp.fc2.bias)] == 0.5
    assert lr_of[id(model.backbone.simfp_3[0].weight)] == 1.0
    with pytest.raises(ValueError, match="lr_factor_func requires base_lr"):
        get_default_optimizer_params(model, lr_factor_func=get_vit_lr_decay_rate)
