"""The yacs side: BACKBONE names declared by the plugin, MODEL.VIT / MVIT / SWIN keys, and a whole
Mask R-CNN on each backbone (one training step, one inference) from a config."""

from __future__ import annotations

import pytest
import torch

from det.backbones import FPN
from det.backbones.vit import MViT, SimpleFeaturePyramid, SwinTransformer, ViT
from det.core import EventStorage, build_backbone, build_model, get_cfg
from det.core.registry import list_components
from det.structures import BitMasks, Boxes, Instances

BUILDERS = ["build_mvit_backbone", "build_mvit_fpn_backbone", "build_swin_backbone", "build_swin_fpn_backbone",
            "build_vit_backbone", "build_vit_sfp_backbone"]

# ViTDet-B, MViTv2-T and Swin-T shrunk in depth and width, structure kept (window and global
# blocks, relative positions, the four pyramid scales; four MViT/Swin stages).
SHRINK = {
    "build_vit_sfp_backbone": ["MODEL.VIT.EMBED_DIM", "64", "MODEL.VIT.DEPTH", "3", "MODEL.VIT.NUM_HEADS", "2",
                               "MODEL.VIT.WINDOW_SIZE", "4", "MODEL.VIT.WINDOW_BLOCK_INDEXES", "[0, 1]",
                               "MODEL.VIT.IMG_SIZE", "128", "MODEL.VIT.SQUARE_PAD", "128", "MODEL.FPN.NORM", "LN"],
    "build_mvit_fpn_backbone": ["MODEL.MVIT.EMBED_DIM", "16", "MODEL.MVIT.DEPTH", "4",
                                "MODEL.MVIT.LAST_BLOCK_INDEXES", "[0, 1, 2, 3]", "MODEL.MVIT.IMG_SIZE", "128",
                                "MODEL.MVIT.ADAPTIVE_WINDOW_SIZE", "16"],
    "build_swin_fpn_backbone": ["MODEL.SWIN.EMBED_DIM", "16", "MODEL.SWIN.DEPTHS", "[2, 2, 2, 2]",
                                "MODEL.SWIN.NUM_HEADS", "[1, 2, 2, 4]", "MODEL.SWIN.WINDOW_SIZE", "4"],
}


def test_plugin_declares_the_builders():
    declared = {c.name: c.distribution for c in list_components("BACKBONE") if c.distribution == "det-backbones-vit"}
    assert sorted(declared) == BUILDERS


def test_config_keys_and_defaults():
    cfg = get_cfg()
    assert (cfg.MODEL.VIT.EMBED_DIM, cfg.MODEL.VIT.DEPTH, cfg.MODEL.VIT.WINDOW_SIZE) == (768, 12, 14)
    assert cfg.MODEL.VIT.WINDOW_BLOCK_INDEXES == [0, 1, 3, 4, 6, 7, 9, 10]
    assert (cfg.MODEL.MVIT.DEPTH, cfg.MODEL.MVIT.LAST_BLOCK_INDEXES) == (10, [0, 2, 7, 9])
    assert (cfg.MODEL.SWIN.EMBED_DIM, cfg.MODEL.SWIN.DEPTHS, cfg.MODEL.SWIN.QK_SCALE) == (96, [2, 2, 6, 2], None)
    cfg.merge_from_list(["MODEL.SWIN.QK_SCALE", "0.25"])  # None-valued keys accept a number
    assert cfg.MODEL.SWIN.QK_SCALE == 0.25


@pytest.mark.parametrize(("name", "types"), [
    ("build_vit_backbone", (ViT, None)), ("build_vit_sfp_backbone", (SimpleFeaturePyramid, ViT)),
    ("build_mvit_backbone", (MViT, None)), ("build_mvit_fpn_backbone", (FPN, MViT)),
    ("build_swin_backbone", (SwinTransformer, None)), ("build_swin_fpn_backbone", (FPN, SwinTransformer)),
])
def test_builders_by_name(name, types):
    cfg = get_cfg()
    shrink = SHRINK[name] if name in SHRINK else SHRINK[_wrapped(name)]
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", name, *shrink])
    backbone = build_backbone(cfg)
    outer, inner = types
    assert type(backbone) is outer
    if inner is not None:
        assert type(backbone.net if outer is SimpleFeaturePyramid else backbone.bottom_up) is inner
        assert list(backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]
    out = backbone(torch.rand(1, 3, 128, 128))
    assert {k: (v.shape[1], 128 // v.shape[-1]) for k, v in out.items()} == {
        k: (s.channels, s.stride) for k, s in backbone.output_shape().items()}


def _wrapped(name: str) -> str:
    return {"build_vit_backbone": "build_vit_sfp_backbone", "build_mvit_backbone": "build_mvit_fpn_backbone",
            "build_swin_backbone": "build_swin_fpn_backbone"}[name]


def test_swin_out_features_must_name_stages():
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "build_swin_backbone", "MODEL.SWIN.OUT_FEATURES", "['p1', 'res5']"])
    with pytest.raises(ValueError, match=r"MODEL.SWIN.OUT_FEATURES \['p1', 'res5'\] must name stages p0..p3"):
        build_backbone(cfg)


def mask_rcnn_cfg(backbone: str):
    cfg = get_cfg()
    cfg.merge_from_list([
        "MODEL.DEVICE", "cpu", "MODEL.MASK_ON", "True", "MODEL.BACKBONE.NAME", backbone, *SHRINK[backbone],
        "MODEL.FPN.OUT_CHANNELS", "32",
        "MODEL.ANCHOR_GENERATOR.SIZES", "[[16], [32], [64], [128], [256]]",
        "MODEL.RPN.IN_FEATURES", "['p2', 'p3', 'p4', 'p5', 'p6']",
        "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64", "MODEL.RPN.POST_NMS_TOPK_TEST", "32",
        "MODEL.ROI_HEADS.NAME", "StandardROIHeads", "MODEL.ROI_HEADS.IN_FEATURES", "['p2', 'p3', 'p4', 'p5']",
        "MODEL.ROI_HEADS.NUM_CLASSES", "3",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
        "MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead", "MODEL.ROI_BOX_HEAD.NUM_FC", "1",
        "MODEL.ROI_BOX_HEAD.FC_DIM", "32", "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "7",
        "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead", "MODEL.ROI_MASK_HEAD.NUM_CONV", "1",
        "MODEL.ROI_MASK_HEAD.CONV_DIM", "16", "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", "7",
    ])
    return cfg


@pytest.mark.parametrize("backbone", sorted(SHRINK))
def test_mask_rcnn_trains_and_predicts(backbone):
    torch.manual_seed(0)
    model = build_model(mask_rcnn_cfg(backbone))
    image = torch.randint(0, 255, (3, 96, 120), dtype=torch.uint8)
    gt = Instances((96, 120))
    gt.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 70.0], [50.0, 30.0, 110.0, 90.0]]))
    gt.gt_classes = torch.tensor([0, 2])
    masks = torch.zeros(2, 96, 120, dtype=torch.bool)
    masks[0, 12:70, 10:60] = True
    masks[1, 30:90, 50:110] = True
    gt.gt_masks = BitMasks(masks)
    model.train()
    with EventStorage(0):
        losses = model([{"image": image, "instances": gt}])
    assert sorted(losses) == ["loss_box_reg", "loss_cls", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"]
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    first_block = model.backbone.bottom_up if isinstance(model.backbone, FPN) else model.backbone.net
    assert first_block.patch_embed.proj.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        (result,) = model([{"image": image, "height": 48, "width": 60}])
    instances = result["instances"]
    assert instances.image_size == (48, 60)
    assert instances.pred_masks.shape[1:] == (48, 60)
