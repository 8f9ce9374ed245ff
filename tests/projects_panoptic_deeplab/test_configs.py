"""Every YAML of detectron2's projects/Panoptic-DeepLab/configs (COCO and Cityscapes) merges into
a plain get_cfg() (det-panoptic-deeplab installed: nothing else to call), builds, infers and trains
one step shrunk, on targets made by the project's own target generator and mapper; disabled, the
YAML fails naming det-panoptic-deeplab."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from det.core import EventStorage, build_model, get_cfg

from .conftest import SHRINK, YAMLS


def test_the_project_has_its_four_yamls():
    assert [f"{p.parent.name}/{p.name}" for p in YAMLS] == [
        "COCO-PanopticSegmentation/panoptic_deeplab_R_52_os16_mg124_poly_200k_bs64_crop_640_640_coco_dsconv.yaml",
        "Cityscapes-PanopticSegmentation/Base-PanopticDeepLab-OS16.yaml",
        "Cityscapes-PanopticSegmentation/panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024.yaml",
        "Cityscapes-PanopticSegmentation/panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024_dsconv.yaml",
    ]


def _targets(generator, thing_class: int, stuff_class: int) -> dict:
    """A 64 x 64 panoptic map: stuff everywhere, two things, one crowd thing, unlabeled corner."""
    pan = np.full((64, 64), 1, dtype=np.int64)
    pan[8:24, 8:28] = 2
    pan[36:60, 30:50] = 3
    pan[0:6, 56:64] = 4
    pan[60:64, 0:4] = 0
    info = [{"id": 1, "category_id": stuff_class, "iscrowd": 0}, {"id": 2, "category_id": thing_class, "iscrowd": 0},
            {"id": 3, "category_id": thing_class, "iscrowd": 0}, {"id": 4, "category_id": thing_class, "iscrowd": 1}]
    return generator(pan, info)


@pytest.mark.parametrize("yaml_path", YAMLS, ids=lambda p: p.stem)
def test_yaml_merges_builds_infers_and_trains_one_step(yaml_path, cityscapes_panoptic_metadata):
    from det.data import MetadataCatalog
    from det.engine.train.solver import build_lr_scheduler
    from det.projects.deeplab import DeepLabStem, WarmupPolyLR
    from det.projects.panoptic_deeplab import PanopticDeepLabTargetGenerator, build_optimizer

    cfg = get_cfg()
    cfg.merge_from_file(str(yaml_path))
    coco = "COCO" in yaml_path.parent.name
    got = (cfg.MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY, cfg.INPUT.GAUSSIAN_SIGMA)
    assert got == ((640, 8) if coco else (-1, 10))
    dsconv = "dsconv" in yaml_path.name
    assert cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV is dsconv
    cfg.merge_from_list(SHRINK)
    torch.manual_seed(0)
    model = build_model(cfg)
    assert type(model).__name__ == "PanopticDeepLab"
    assert type(model.sem_seg_head).__name__ == "PanopticDeepLabSemSegHead"
    assert type(model.ins_embed_head).__name__ == "PanopticDeepLabInsEmbedHead"
    assert type(model.sem_seg_head.head).__name__ == ("DepthwiseSeparableConv2d" if dsconv else "Sequential")
    assert type(model.ins_embed_head.offset_head).__name__ == ("DepthwiseSeparableConv2d" if dsconv else "Sequential")
    assert isinstance(model.backbone.stem, DeepLabStem) is (not yaml_path.name.startswith("Base"))
    assert sorted(model.backbone.output_shape()) == ["res2", "res3", "res5"]

    meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0])
    things = sorted(meta.thing_dataset_id_to_contiguous_id.values())
    stuff_class = next(c for c in range(cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES) if c not in things)
    model.eval()
    with torch.no_grad():
        model.ins_embed_head.center_predictor.bias.fill_(1.0)  # centers everywhere: instances appear
        out = model([{"image": torch.rand(3, 64, 64) * 255, "height": 32, "width": 32}])[0]
    ids, segments_info = out["panoptic_seg"]
    assert segments_info is None and ids.shape == (32, 32) and ids.dtype == torch.int64
    assert out["sem_seg"].shape == (cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, 32, 32)
    if "instances" in out:
        inst = out["instances"]
        assert inst.pred_masks.shape[1:] == (32, 32) and set(inst.pred_classes.tolist()) <= set(things)

    model.train()
    generator = PanopticDeepLabTargetGenerator(ignore_label=255, thing_ids=things, sigma=cfg.INPUT.GAUSSIAN_SIGMA,
                                               ignore_stuff_in_offset=cfg.INPUT.IGNORE_STUFF_IN_OFFSET,
                                               small_instance_area=cfg.INPUT.SMALL_INSTANCE_AREA,
                                               small_instance_weight=cfg.INPUT.SMALL_INSTANCE_WEIGHT)
    batch = [{"image": torch.rand(3, 64, 64) * 255, **_targets(generator, things[0], stuff_class)} for _ in range(2)]
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.Adam)
    scheduler = build_lr_scheduler(cfg, optimizer)
    assert isinstance(scheduler, WarmupPolyLR)
    before = model.ins_embed_head.offset_predictor.weight.detach().clone()
    with EventStorage():
        losses = model(batch)
    assert sorted(losses) == ["loss_center", "loss_offset", "loss_sem_seg"]
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    optimizer.step()
    scheduler.step()
    assert not torch.equal(before, model.ins_embed_head.offset_predictor.weight)


def test_the_dataset_mapper_reads_augments_and_makes_targets(tmp_path, cityscapes_panoptic_metadata):
    from det.projects.panoptic_deeplab import PanopticDeeplabDatasetMapper

    cfg = get_cfg()
    cfg.merge_from_file(str(YAMLS[2]))
    cfg.merge_from_list(["INPUT.MIN_SIZE_TRAIN", (32,), "INPUT.MAX_SIZE_TRAIN", 1000, "INPUT.CROP.SIZE", (16, 32)])
    image = np.zeros((32, 48, 3), dtype=np.uint8)
    pan = np.zeros((32, 48, 3), dtype=np.uint8)
    pan[:, :, 0] = 7             # stuff segment id 7
    pan[4:12, 10:30, 0] = 44     # a car (train id 13): segment id 44 + 256 * 1
    pan[4:12, 10:30, 1] = 1
    Image.fromarray(image).save(tmp_path / "img.png")
    Image.fromarray(pan).save(tmp_path / "pan.png")
    mapper = PanopticDeeplabDatasetMapper(cfg)
    out = mapper({"file_name": str(tmp_path / "img.png"), "pan_seg_file_name": str(tmp_path / "pan.png"),
                  "height": 32, "width": 48, "segments_info": [{"id": 7, "category_id": 0, "iscrowd": 0},
                                                               {"id": 300, "category_id": 13, "iscrowd": 0}]})
    assert out["image"].shape == (3, 16, 32) and out["image"].dtype == torch.uint8
    assert out["sem_seg"].shape == (16, 32) and out["center"].shape == (16, 32) and out["offset"].shape == (2, 16, 32)
    assert out["center_weights"].shape == out["offset_weights"].shape == (1, 16, 32)
    assert set(out["sem_seg"].unique().tolist()) <= {0, 13}
    car = out["sem_seg"] == 13
    # stuff pixels are ignored by the offset loss (IGNORE_STUFF_IN_OFFSET), car pixels are not
    assert torch.equal(out["offset_weights"][0] > 0, car)
    assert (out["center_weights"] == 1).all()
    if car.any():
        assert out["center"].max() == pytest.approx(1.0, abs=1e-6) and len(out["center_points"]) == 1


def test_disabled_the_yaml_fails_naming_det_panoptic_deeplab(disable_plugins):
    from det.core.config import ConfigKeyError
    from det.core.registry import ComponentNotFoundError, get_component

    disable_plugins("panoptic-deeplab")
    cfg = get_cfg()
    with pytest.raises(ConfigKeyError) as info:
        cfg.merge_from_file(str(YAMLS[3]))
    assert str(info.value) == (
        "Non-existent config key: MODEL.SEM_SEG_HEAD.HEAD_CHANNELS. This key is added by "
        "det-panoptic-deeplab, which is installed "
        "but disabled (check DET_DISABLE_PLUGINS and det.core.plugins.disable()).")
    with pytest.raises(ComponentNotFoundError, match="It is provided by det-panoptic-deeplab, which is installed but"):
        get_component("META_ARCH", "PanopticDeepLab")


def test_without_dataset_metadata_inference_says_what_to_set():
    cfg = get_cfg()
    cfg.merge_from_file(str(YAMLS[2]))
    cfg.merge_from_list([*SHRINK, "DATASETS.TRAIN", ("no_such_panoptic_dataset",)])
    model = build_model(cfg).eval()
    with pytest.raises(ValueError, match=r"PanopticDeepLab needs the metadata of dataset 'no_such_panoptic_dataset' "
                                         r"\(DATASETS.TRAIN\[0\]\) to have 'thing_dataset_id_to_contiguous_id' and "
                                         r"'label_divisor'"), torch.no_grad():
        model([{"image": torch.zeros(3, 64, 64)}])
