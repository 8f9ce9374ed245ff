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

from det.backbones.fpn import FPN, LastLevelMaxPool, fpn_from_config
from det.backbones.vit.mvit import MViT
from det.backbones.vit.swin import SwinTransformer
from det.backbones.vit.vit import SimpleFeaturePyramid, ViT
from det.core.layers import ShapeSpec

__all__ = [
    "build_mvit_backbone",
    "build_mvit_fpn_backbone",
    "build_swin_backbone",
    "build_swin_fpn_backbone",
    "build_vit_backbone",
    "build_vit_sfp_backbone",
]


# Arguments whose config key is their own name upper-cased (``embed_dim`` <- ``EMBED_DIM``); the
# first group means the same in ``MODEL.VIT`` and ``MODEL.MVIT``.
_VIT_FAMILY = ("img_size embed_dim depth num_heads mlp_ratio qkv_bias drop_path_rate use_abs_pos use_rel_pos "
               "rel_pos_zero_init use_act_checkpoint pretrain_img_size pretrain_use_cls_token")


def _same_named(c, names: str, convert=lambda v: v) -> dict:
    """``{name: convert(c.NAME)}`` for each of the space-separated ``names``."""
    return {name: convert(c[name.upper()]) for name in names.split()}


def _vit_family(cls, c, input_shape: ShapeSpec, names: str, sequences: str):
    """``cls`` (:class:`ViT` or :class:`MViT`) from config node ``c``: the shared arguments, then its own
    same-named ``names`` and ``sequences`` (the latter as tuples)."""
    return cls(
        in_chans=input_shape.channels,
        norm_layer=partial(nn.LayerNorm, eps=c.LN_EPS),
        **_same_named(c, f"{_VIT_FAMILY} {names}"),
        **_same_named(c, sequences, tuple),
    )


def build_vit_backbone(cfg, input_shape: ShapeSpec) -> ViT:
    """:class:`ViT` from ``cfg.MODEL.VIT``; one output, ``MODEL.VIT.OUT_FEATURE`` (stride PATCH_SIZE)."""
    return _vit_family(ViT, cfg.MODEL.VIT, input_shape, "patch_size window_size out_feature",
                       "window_block_indexes residual_block_indexes")


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
    return _vit_family(MViT, cfg.MODEL.MVIT, input_shape, "adaptive_kv_stride adaptive_window_size residual_pooling",
                       "patch_kernel patch_stride patch_padding last_block_indexes qkv_pool_kernel out_features")


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
        in_chans=input_shape.channels,
        out_indices=tuple(int(f[1:]) for f in out_features),
        **_same_named(c, "pretrain_img_size patch_size embed_dim window_size mlp_ratio qkv_bias qk_scale drop_rate "
                         "attn_drop_rate drop_path_rate ape patch_norm frozen_stages use_checkpoint"),
        **_same_named(c, "depths num_heads", tuple),
    )


def build_mvit_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:class:`FPN` (``MODEL.FPN.*``, LastLevelMaxPool) over :func:`build_mvit_backbone`, as the
    MViTv2 configs build it; outputs p2..p6."""
    return fpn_from_config(build_mvit_backbone(cfg, input_shape), cfg, square_pad=cfg.MODEL.MVIT.SQUARE_PAD)


def build_swin_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:class:`FPN` (``MODEL.FPN.*``, LastLevelMaxPool) over :func:`build_swin_backbone`, as
    ViTDet's Swin configs build it; outputs p2..p6."""
    return fpn_from_config(build_swin_backbone(cfg, input_shape), cfg, square_pad=cfg.MODEL.SWIN.SQUARE_PAD)
