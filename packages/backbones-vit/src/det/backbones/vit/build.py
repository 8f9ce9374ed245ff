"""yacs builders (BACKBONE components) for ViT, MViT and Swin: ``MODEL.BACKBONE.NAME`` picks one,
``MODEL.VIT`` / ``MODEL.MVIT`` / ``MODEL.SWIN`` (see :mod:`det.backbones.vit.config`) configure it.

detectron2 registers none of these (its ViTDet and MViTv2 projects use LazyConfig only), so the
names are det's: ``build_vit_backbone``, ``build_vit_sfp_backbone`` (ViTDet: ViT +
SimpleFeaturePyramid), ``build_mvit_backbone``, ``build_mvit_fpn_backbone``,
``build_swin_backbone``, ``build_swin_fpn_backbone``. The modules they build have detectron2's
names, so a checkpoint of the LazyConfig model with the same structure loads into them.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from det.backbones.fpn import FPN, LastLevelMaxPool
from det.backbones.vit.mvit import MViT
from det.backbones.vit.swin import SwinTransformer
from det.backbones.vit.vit import SimpleFeaturePyramid, ViT
from det.core.layers import ShapeSpec
from det.core.modeling.backbone import Backbone

__all__ = [
    "build_mvit_backbone",
    "build_mvit_fpn_backbone",
    "build_swin_backbone",
    "build_swin_fpn_backbone",
    "build_vit_backbone",
    "build_vit_sfp_backbone",
]


def build_vit_backbone(cfg, input_shape: ShapeSpec) -> ViT:
    """:class:`ViT` from ``cfg.MODEL.VIT``; one output, ``MODEL.VIT.OUT_FEATURE`` (stride PATCH_SIZE)."""
    c = cfg.MODEL.VIT
    return ViT(
        img_size=c.IMG_SIZE,
        patch_size=c.PATCH_SIZE,
        in_chans=input_shape.channels,
        embed_dim=c.EMBED_DIM,
        depth=c.DEPTH,
        num_heads=c.NUM_HEADS,
        mlp_ratio=c.MLP_RATIO,
        qkv_bias=c.QKV_BIAS,
        drop_path_rate=c.DROP_PATH_RATE,
        norm_layer=partial(nn.LayerNorm, eps=c.LN_EPS),
        use_abs_pos=c.USE_ABS_POS,
        use_rel_pos=c.USE_REL_POS,
        rel_pos_zero_init=c.REL_POS_ZERO_INIT,
        window_size=c.WINDOW_SIZE,
        window_block_indexes=list(c.WINDOW_BLOCK_INDEXES),
        residual_block_indexes=list(c.RESIDUAL_BLOCK_INDEXES),
        use_act_checkpoint=c.USE_ACT_CHECKPOINT,
        pretrain_img_size=c.PRETRAIN_IMG_SIZE,
        pretrain_use_cls_token=c.PRETRAIN_USE_CLS_TOKEN,
        out_feature=c.OUT_FEATURE,
    )


def build_vit_sfp_backbone(cfg, input_shape: ShapeSpec) -> SimpleFeaturePyramid:
    """ViTDet's backbone: :func:`build_vit_backbone` under a :class:`SimpleFeaturePyramid`
    (``MODEL.VIT.SCALE_FACTORS``, ``SQUARE_PAD``; ``MODEL.FPN.OUT_CHANNELS`` and ``NORM``) with
    :class:`LastLevelMaxPool` on top: outputs p2..p6 with the default scale factors."""
    return SimpleFeaturePyramid(
        net=build_vit_backbone(cfg, input_shape),
        in_feature=cfg.MODEL.VIT.OUT_FEATURE,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        scale_factors=tuple(cfg.MODEL.VIT.SCALE_FACTORS),
        top_block=LastLevelMaxPool(),
        norm=cfg.MODEL.FPN.NORM,
        square_pad=cfg.MODEL.VIT.SQUARE_PAD,
    )


def build_mvit_backbone(cfg, input_shape: ShapeSpec) -> MViT:
    """:class:`MViT` from ``cfg.MODEL.MVIT``; outputs ``MODEL.MVIT.OUT_FEATURES``."""
    c = cfg.MODEL.MVIT
    return MViT(
        img_size=c.IMG_SIZE,
        patch_kernel=tuple(c.PATCH_KERNEL),
        patch_stride=tuple(c.PATCH_STRIDE),
        patch_padding=tuple(c.PATCH_PADDING),
        in_chans=input_shape.channels,
        embed_dim=c.EMBED_DIM,
        depth=c.DEPTH,
        num_heads=c.NUM_HEADS,
        last_block_indexes=tuple(c.LAST_BLOCK_INDEXES),
        qkv_pool_kernel=tuple(c.QKV_POOL_KERNEL),
        adaptive_kv_stride=c.ADAPTIVE_KV_STRIDE,
        adaptive_window_size=c.ADAPTIVE_WINDOW_SIZE,
        residual_pooling=c.RESIDUAL_POOLING,
        mlp_ratio=c.MLP_RATIO,
        qkv_bias=c.QKV_BIAS,
        drop_path_rate=c.DROP_PATH_RATE,
        norm_layer=partial(nn.LayerNorm, eps=c.LN_EPS),
        use_abs_pos=c.USE_ABS_POS,
        use_rel_pos=c.USE_REL_POS,
        rel_pos_zero_init=c.REL_POS_ZERO_INIT,
        use_act_checkpoint=c.USE_ACT_CHECKPOINT,
        pretrain_img_size=c.PRETRAIN_IMG_SIZE,
        pretrain_use_cls_token=c.PRETRAIN_USE_CLS_TOKEN,
        out_features=tuple(c.OUT_FEATURES),
    )


def build_swin_backbone(cfg, input_shape: ShapeSpec) -> SwinTransformer:
    """:class:`SwinTransformer` from ``cfg.MODEL.SWIN``; ``OUT_FEATURES`` name stages ``p0``..``p3``."""
    c = cfg.MODEL.SWIN
    out_features = list(c.OUT_FEATURES)
    bad = [f for f in out_features if not (f.startswith("p") and f[1:].isdigit() and int(f[1:]) < len(c.DEPTHS))]
    if bad or not out_features:
        raise ValueError(
            f"MODEL.SWIN.OUT_FEATURES {out_features} must name stages p0..p{len(c.DEPTHS) - 1} (got {bad or 'none'})"
        )
    return SwinTransformer(
        pretrain_img_size=c.PRETRAIN_IMG_SIZE,
        patch_size=c.PATCH_SIZE,
        in_chans=input_shape.channels,
        embed_dim=c.EMBED_DIM,
        depths=tuple(c.DEPTHS),
        num_heads=tuple(c.NUM_HEADS),
        window_size=c.WINDOW_SIZE,
        mlp_ratio=c.MLP_RATIO,
        qkv_bias=c.QKV_BIAS,
        qk_scale=c.QK_SCALE,
        drop_rate=c.DROP_RATE,
        attn_drop_rate=c.ATTN_DROP_RATE,
        drop_path_rate=c.DROP_PATH_RATE,
        ape=c.APE,
        patch_norm=c.PATCH_NORM,
        out_indices=tuple(int(f[1:]) for f in out_features),
        frozen_stages=c.FROZEN_STAGES,
        use_checkpoint=c.USE_CHECKPOINT,
    )


def _fpn_over(bottom_up: Backbone, cfg, square_pad: int) -> FPN:
    in_features = list(cfg.MODEL.FPN.IN_FEATURES) or list(bottom_up.output_shape())
    return FPN(
        bottom_up=bottom_up,
        in_features=in_features,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
        square_pad=square_pad,
    )


def build_mvit_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:class:`FPN` (``MODEL.FPN.*``, LastLevelMaxPool) over :func:`build_mvit_backbone`, as the
    MViTv2 configs build it; outputs p2..p6."""
    return _fpn_over(build_mvit_backbone(cfg, input_shape), cfg, cfg.MODEL.MVIT.SQUARE_PAD)


def build_swin_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:class:`FPN` (``MODEL.FPN.*``, LastLevelMaxPool) over :func:`build_swin_backbone`, as
    ViTDet's Swin configs build it; outputs p2..p6."""
    return _fpn_over(build_swin_backbone(cfg, input_shape), cfg, cfg.MODEL.SWIN.SQUARE_PAD)
