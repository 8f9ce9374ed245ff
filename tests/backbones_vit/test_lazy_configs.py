"""Every ViTDet and MViTv2 LazyConfig of detectron2's projects (ViTDet's also name Swin) loads
through det's LazyConfig and the ``detectron2`` names, instantiates, and runs one inference and
one training step (with the config's own optimizer) on a small image.

The models are shrunk by overrides of depth and width, their structure kept: ViT keeps window and
global blocks (depth = up to its first global block), MViT four stages with pooling, Swin four
stages of shifted windows, the heads their conv/fc layout (cascade, LN/SyncBN norms, LVIS's
sigmoid and federated losses). Inputs are padded to 64 px squares instead of 1024.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

PROJECTS = Path(__file__).resolve().parents[2].parent / "shared" / "detectron2-projects" / "projects"
CONFIGS = sorted(str(p.relative_to(PROJECTS)) for folder in ("ViTDet/configs/COCO", "ViTDet/configs/LVIS",
                                                             "MViTv2/configs")
                 for p in (PROJECTS / folder).glob("*.py"))
SIZE = 64
NUM_CLASSES = 3


def test_every_project_config_is_covered():
    assert len(CONFIGS) == 29  # 11 ViTDet COCO, 11 ViTDet LVIS, 7 MViTv2
    assert sum("swin" in c for c in CONFIGS) == 4


def shrink(cfg) -> str:
    """Make ``cfg.model`` small in place, keeping its structure; returns the backbone family."""
    from detectron2.layers import ShapeSpec

    model = cfg.model
    backbone = model.backbone
    if "net" in backbone:  # ViTDet: SimpleFeaturePyramid(net=ViT)
        net = backbone.net
        first_global = min(i for i in range(net.depth) if i not in net.window_block_indexes)
        net.update(embed_dim=32, num_heads=2, depth=first_global + 1, img_size=SIZE)
        family = "vit"
    elif "depths" in backbone.bottom_up:  # Swin under FPN
        heads = list(backbone.bottom_up.num_heads)
        backbone.bottom_up.update(embed_dim=8 * heads[0], depths=[2, 2, 2, 2])
        family = "swin"
    else:  # MViT under FPN
        backbone.bottom_up.update(embed_dim=16, depth=4, last_block_indexes=(0, 1, 2, 3), num_heads=1)
        family = "mvit"
    if backbone.get("square_pad"):
        backbone.square_pad = SIZE

    rpn = model.proposal_generator
    rpn.update(pre_nms_topk=(100, 50), post_nms_topk=(32, 16), batch_size_per_image=32)
    heads = model.roi_heads
    heads.update(num_classes=NUM_CLASSES, batch_size_per_image=16)
    box_heads = heads.box_heads if "box_heads" in heads else [heads.box_head]
    predictors = heads.box_predictors if "box_predictors" in heads else [heads.box_predictor]
    for head in box_heads:
        head.conv_dims = [16] * len(head.conv_dims)
        head.fc_dims = [32] * len(head.fc_dims)
    for predictor in predictors:
        predictor.input_shape = ShapeSpec(channels=32)
        if predictor.get("use_fed_loss"):
            # LVIS's class frequencies come from the lvis_v1_train json, absent here; the 50
            # classes the federated loss samples (of 1203) shrink with the classes
            predictor.get_fed_loss_cls_weights = lambda: torch.ones(NUM_CLASSES)
            predictor.fed_loss_num_classes = NUM_CLASSES
    heads.mask_head.conv_dims = [16] * len(heads.mask_head.conv_dims)
    return family


def sample():
    from det.structures import BitMasks, Boxes, Instances

    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 255, (3, 48, 60), dtype=torch.uint8, generator=g)
    gt = Instances((48, 60))
    gt.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 30.0, 40.0], [25.0, 10.0, 58.0, 46.0]]))
    gt.gt_classes = torch.tensor([0, 2])
    masks = torch.zeros(2, 48, 60, dtype=torch.bool)
    masks[0, 6:40, 4:30] = True
    masks[1, 10:46, 25:58] = True
    gt.gt_masks = BitMasks(masks)
    return image, gt


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_config_instantiates_infers_and_trains(config, configs_dir, monkeypatch):
    from detectron2.config import LazyConfig, instantiate

    from det.backbones.vit import MViT, SwinTransformer, ViT
    from det.core import EventStorage

    monkeypatch.setenv("DET_MODEL_ZOO_CONFIGS", str(configs_dir))  # model_zoo.get_config("common/...")
    cfg = LazyConfig.load(str(PROJECTS / config))
    family = shrink(cfg)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    bottom = model.backbone.net if family == "vit" else model.backbone.bottom_up
    assert type(bottom) is {"vit": ViT, "mvit": MViT, "swin": SwinTransformer}[family]
    assert list(model.backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]
    if family == "vit":
        assert {blk.window_size for blk in bottom.blocks} == {14, 0}  # window and global blocks kept

    image, gt = sample()
    model.eval()
    with torch.no_grad():
        (result,) = model([{"image": image, "height": 48, "width": 60}])
    assert result["instances"].image_size == (48, 60)
    assert result["instances"].pred_classes.max().item() < NUM_CLASSES if len(result["instances"]) else True

    cfg.optimizer.params.model = model  # as detectron2's lazyconfig_train_net does
    optimizer = instantiate(cfg.optimizer)
    model.train()
    with EventStorage(0):
        losses = model([{"image": image, "instances": gt}])
    assert {"loss_rpn_cls", "loss_rpn_loc", "loss_mask"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    before = bottom.patch_embed.proj.weight.detach().clone()
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert not torch.equal(before, bottom.patch_embed.proj.weight)
