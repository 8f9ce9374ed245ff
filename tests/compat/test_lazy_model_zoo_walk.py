"""Every LazyConfig (``.py``) file of detectron2's model zoo outside ``common/`` loads through det's
LazyConfig and the ``detectron2`` names, instantiates its model, and runs one inference and one
training step (with the config's own optimizer) on a small image — as
``tests/backbones/test_model_zoo_configs.py`` walks the YAMLs.

Models are shrunk by overrides, their structure kept: fewer proposals and sampled ROIs, and
RegNets with four narrow stages of the same block, stem and SE layout; the images are 48x60 instead
of 800-1333 px. The two ``Misc/`` files: the mmdetection one gives det's clear message (mmdetection
is not installed here: it is det-mmdet-wrapper's ``[mmdet]`` extra), the torchvision classifier
trains (and without torchvision, its import fails with a message naming the file and line).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

CONFIGS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "detectron2-configs"
CONFIGS = sorted(str(p.relative_to(CONFIGS_DIR)) for p in CONFIGS_DIR.rglob("*.py")
                 if p.relative_to(CONFIGS_DIR).parts[0] != "common")
MMDET = "Misc/mmdet_mask_rcnn_R_50_FPN_1x.py"
TORCHVISION = "Misc/torchvision_imagenet_R_50.py"
DETECTORS = [c for c in CONFIGS if c not in (MMDET, TORCHVISION)]
H, W = 48, 60


def test_every_config_is_walked():
    assert len(CONFIGS) == 23  # 38 files minus common/'s 15
    assert sum(c.startswith("new_baselines/") for c in CONFIGS) == 13
    assert {MMDET, TORCHVISION} <= set(CONFIGS)


def shrink(cfg) -> None:
    """Fewer proposals, sampled anchors/ROIs and detections; RegNets of four narrow stages."""
    model = cfg.model
    if "proposal_generator" in model:
        model.proposal_generator.update(pre_nms_topk=(200, 100), post_nms_topk=(50, 20), batch_size_per_image=64)
    if "roi_heads" in model:
        model.roi_heads.batch_size_per_image = 32
    if "test_topk_candidates" in model:  # RetinaNet, FCOS
        model.test_topk_candidates = 100
    bottom_up = model.backbone.get("bottom_up")
    if bottom_up is not None and "w_a" in bottom_up:
        # widths 8/16/32/64 in depths 1/1/3/3: four stages, the configs' block, stem and SE kept
        bottom_up.update(stem_width=8, depth=8, w_a=8, w_0=8, w_m=2, group_width=8)


def sample(classes: tuple[int, int] = (0, 2), num_sem_seg_classes: int = 54):
    from det.structures import BitMasks, Boxes, Instances, Keypoints

    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 255, (3, H, W), dtype=torch.uint8, generator=g)
    gt = Instances((H, W))
    gt.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 30.0, 40.0], [25.0, 10.0, 58.0, 46.0]]))
    gt.gt_classes = torch.tensor(classes)
    masks = torch.zeros(2, H, W, dtype=torch.bool)
    masks[0, 6:40, 4:30] = True
    masks[1, 10:46, 25:58] = True
    gt.gt_masks = BitMasks(masks)
    xy = torch.rand(2, 17, 2, generator=g) * torch.tensor([[[22.0, 30.0]], [[30.0, 32.0]]])
    xy += torch.tensor([[[5.0, 7.0]], [[26.0, 11.0]]])
    gt.gt_keypoints = Keypoints(torch.cat([xy, torch.full((2, 17, 1), 2.0)], dim=2))
    sem_seg = torch.randint(0, num_sem_seg_classes, (H, W), generator=g)
    return {"image": image, "instances": gt, "sem_seg": sem_seg}


def expected_losses(config: str) -> set[str]:
    if config.startswith("COCO-Detection/fcos"):
        return {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"}
    if config.startswith("COCO-Detection/retinanet"):
        return {"loss_cls", "loss_box_reg"}
    rcnn = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
    if config.startswith("COCO-Keypoints/"):
        return rcnn | {"loss_keypoint"}
    if config.startswith("COCO-PanopticSegmentation/"):
        return rcnn | {"loss_mask", "loss_sem_seg"}
    return rcnn | {"loss_mask"}


@pytest.mark.slow
@pytest.mark.parametrize("config", DETECTORS)
def test_config_instantiates_infers_and_trains(config):
    from detectron2.config import LazyConfig, instantiate

    from det.core import EventStorage

    cfg = LazyConfig.load(str(CONFIGS_DIR / config))
    shrink(cfg)
    torch.manual_seed(0)
    model = instantiate(cfg.model)

    if "regnet" in config:
        from det.backbones.regnet import RegNet

        bottom_up = model.backbone.bottom_up
        assert type(bottom_up) is RegNet
        assert [bottom_up.output_shape()[f"s{i}"].channels for i in range(1, 5)] == [8, 16, 32, 64]
        assert (bottom_up.s1.b1.f.se is not None) == ("regnety" in config)
    if config.startswith("new_baselines/"):  # SyncBN in the backbone and FPN, NaiveSyncBN in the heads
        norms = {type(m).__name__ for m in model.modules()}
        assert {"SyncBatchNorm", "NaiveSyncBatchNorm"} <= norms, norms

    inputs = sample(classes=(0, 0) if config.startswith("COCO-Keypoints/") else (0, 2))  # keypoints: person only
    model.eval()
    with torch.no_grad():
        (result,) = model([{"image": inputs["image"], "height": H, "width": W}])
    assert result["instances"].image_size == (H, W)
    if config.startswith("COCO-PanopticSegmentation/"):
        assert result["sem_seg"].shape == (54, H, W)
        assert result["panoptic_seg"][0].shape == (H, W)

    cfg.optimizer.params.model = model  # as detectron2's lazyconfig_train_net does
    optimizer = instantiate(cfg.optimizer)
    schedule = cfg.lr_multiplier.scheduler
    lr_multiplier = instantiate(cfg.lr_multiplier)
    assert lr_multiplier(0.0) == pytest.approx(cfg.lr_multiplier.warmup_factor * schedule["values"][0])
    assert lr_multiplier(1.0 - 1e-9) == pytest.approx(schedule["values"][-1])
    model.train()
    with EventStorage(0):
        losses = model([inputs])
    assert set(losses) == expected_losses(config)
    total = sum(losses.values())
    assert torch.isfinite(total), losses
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert sum(not torch.equal(b, p) for b, p in zip(before, trainable)) > len(trainable) // 2


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.startswith("new_baselines/")][:1])
def test_lsj_augmentations_of_the_configs(config):
    """The configs' ResizeScale + FixedSizeCrop: a 1024x1024 output whatever the scale, the image
    padded with 128 and the segmentation with 255 (detectron2's defaults) when scaled below it."""
    from detectron2.config import LazyConfig, instantiate

    from det.data import transforms as T

    cfg = LazyConfig.load(str(CONFIGS_DIR / config))
    augmentations = instantiate(cfg.dataloader.train.mapper.augmentations)
    assert [type(a).__name__ for a in augmentations] == ["ResizeScale", "FixedSizeCrop", "RandomFlip"]
    image = np.full((300, 400, 3), 7, dtype=np.uint8)
    seg = np.zeros((300, 400), dtype=np.uint8)
    padded = cropped = 0
    for seed in range(8):
        np.random.seed(seed)
        aug_input = T.AugInput(image.copy(), sem_seg=seg.copy())
        transforms = T.AugmentationList(augmentations)(aug_input)
        assert aug_input.image.shape == (1024, 1024, 3) and aug_input.sem_seg.shape == (1024, 1024)
        scale = next(t for t in transforms if type(t).__name__ == "ResizeTransform")
        if scale.new_h < 1024:  # padded at the bottom (and right, before a flip) up to the crop size
            padded += 1
            assert (aug_input.image[scale.new_h:] == 128).all() and (aug_input.sem_seg[scale.new_h:] == 255).all()
            assert (aug_input.image[: scale.new_h] == 7).any(axis=2).sum(axis=1).tolist() == [min(scale.new_w, 1024)] * scale.new_h
        else:
            cropped += 1
            assert (aug_input.sem_seg == 0).all()
    assert padded and cropped  # both branches seen


def test_mmdet_config_says_what_to_install():
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(str(CONFIGS_DIR / MMDET))
    assert cfg.model.detector.type == "MaskRCNN"
    with pytest.raises(ImportError) as info:
        instantiate(cfg.model)
    assert str(info.value).startswith("MMDetDetector builds mmdetection models from config dicts, which needs "
                                      "mmdetection 2.x and mmcv-full 1.x; importing mmdet.models failed")
    assert "pip install 'det-mmdet-wrapper[mmdet]'" in str(info.value)


def test_mmdet_config_with_det_train_is_one_line(tmp_path, capsys):
    from det.core.cli import main as det_main

    status = det_main(["train", "--config-file", str(CONFIGS_DIR / MMDET), f"train.output_dir={tmp_path}"])
    stderr = capsys.readouterr().err
    assert status == 2, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("det train: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr
    assert errors[0].startswith("det train: error: cannot build cfg.model: MMDetDetector builds mmdetection models")
    assert "pip install 'det-mmdet-wrapper[mmdet]'" in errors[0] and "config key 'model'" in errors[0]


@pytest.mark.slow
def test_torchvision_classifier_config_trains(monkeypatch):
    """Loaded from its path as a user would (no $DET_MODEL_ZOO_CONFIGS: its get_config("common/train.py")
    is found in the configs tree the file sits in)."""
    from detectron2.config import LazyConfig, instantiate
    from torchvision.models.resnet import ResNet

    monkeypatch.delenv("DET_MODEL_ZOO_CONFIGS", raising=False)
    cfg = LazyConfig.load(str(CONFIGS_DIR / TORCHVISION))
    assert cfg.train.max_iter == 100 * 1281167 // 256 and cfg.train.init_checkpoint is None
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    assert type(model.model) is ResNet
    images, labels = torch.rand(2, 3, 64, 64), torch.tensor([3, 7])
    model.eval()
    with torch.no_grad():
        assert model((images, labels)).shape == (2, 1000)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    model.train()
    loss = model((images, labels))
    assert loss.shape == () and torch.isfinite(loss)
    before = model.model.fc.weight.detach().clone()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, model.model.fc.weight)


def test_torchvision_classifier_config_without_torchvision(monkeypatch):
    from detectron2.config import LazyConfig

    class NoTorchvision:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "torchvision":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    for name in [m for m in sys.modules if m.partition(".")[0] == "torchvision"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NoTorchvision(), *sys.meta_path])
    with pytest.raises(ImportError) as info:
        LazyConfig.load(str(CONFIGS_DIR / TORCHVISION))
    assert str(info.value) == f"Config file {CONFIGS_DIR / TORCHVISION}, line 17: No module named 'torchvision'"
