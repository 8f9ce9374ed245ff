"""Every YAML of detectron2's projects/DeepLab/configs merges into a plain get_cfg() (det-deeplab
is installed: nothing else to call), builds, infers and trains one step shrunk; disabled, the same
YAML fails naming det-deeplab."""

from __future__ import annotations

import pytest
import torch

from det.core import EventStorage, build_model, get_cfg

from .conftest import SHRINK, YAMLS


def test_the_project_has_its_three_yamls():
    assert [p.name for p in YAMLS] == [
        "Base-DeepLabV3-OS16-Semantic.yaml",
        "deeplab_v3_R_103_os16_mg124_poly_90k_bs16.yaml",
        "deeplab_v3_plus_R_103_os16_mg124_poly_90k_bs16.yaml",
    ]


@pytest.mark.parametrize("yaml_path", YAMLS, ids=lambda p: p.stem)
def test_yaml_merges_builds_infers_and_trains_one_step(yaml_path):
    from det.engine.train.solver import build_lr_scheduler, build_optimizer
    from det.projects.deeplab import DeepLabStem, WarmupPolyLR

    cfg = get_cfg()
    cfg.merge_from_file(str(yaml_path))
    assert cfg.SOLVER.LR_SCHEDULER_NAME == "WarmupPolyLR"
    assert cfg.MODEL.SEM_SEG_HEAD.LOSS_TYPE == "hard_pixel_mining"
    assert cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA == 1.0
    cfg.merge_from_list(SHRINK)
    torch.manual_seed(0)
    model = build_model(cfg)
    head = type(model.sem_seg_head).__name__
    assert type(model).__name__ == "SemanticSegmentor"
    if yaml_path.name.startswith("Base"):
        # the base keeps det-core's ResNet (BasicStem, build_resnet_backbone) and DeepLabV3Head
        assert (head, type(model.backbone.stem).__name__) == ("DeepLabV3Head", "BasicStem")
    else:
        assert isinstance(model.backbone.stem, DeepLabStem)
        assert isinstance(model.backbone.stem.conv1.norm, torch.nn.SyncBatchNorm)
        assert head == ("DeepLabV3PlusHead" if "plus" in yaml_path.name else "DeepLabV3Head")
        assert [b.conv2.dilation for b in model.backbone.res5] == [(2, 2), (4, 4), (8, 8)]  # mg124, OS16

    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 64, 128) * 255, "height": 32, "width": 64}])
    assert out[0]["sem_seg"].shape == (19, 32, 64)

    model.train()
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer)
    assert isinstance(scheduler, WarmupPolyLR)
    before = [p.detach().clone() for p in model.sem_seg_head.parameters()]
    batch = [{"image": torch.rand(3, 64, 128) * 255, "sem_seg": torch.randint(0, 19, (64, 128))} for _ in range(2)]
    with EventStorage():
        losses = model(batch)
    assert sorted(losses) == ["loss_sem_seg"] and torch.isfinite(losses["loss_sem_seg"])
    losses["loss_sem_seg"].backward()
    optimizer.step()
    scheduler.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.sem_seg_head.parameters()))
    # iteration 1 of 10 with 2 warmup iterations from 0.001: 0.01 * (0.001 * 0.5 + 0.5) * 0.9 ** 0.9
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5005 * 0.9**0.9)


def test_add_deeplab_config_is_a_no_op_after_get_cfg_and_adds_to_a_bare_config():
    from det.core.config import CfgNode
    from det.projects.deeplab import add_deeplab_config
    from det.projects.deeplab.config import DEEPLAB_CONFIG_KEYS

    cfg = get_cfg()
    cfg.MODEL.SEM_SEG_HEAD.ASPP_CHANNELS = 64
    before = cfg.dump()
    add_deeplab_config(cfg)
    assert cfg.dump() == before  # it never resets a value

    bare = CfgNode({"INPUT": {"CROP": {}}, "SOLVER": {}, "MODEL": {"SEM_SEG_HEAD": {}, "RESNETS": {}}})
    add_deeplab_config(bare)
    assert bare.MODEL.RESNETS.RES5_MULTI_GRID == [1, 2, 4]
    assert bare.MODEL.RESNETS.STEM_TYPE == "deeplab"
    assert bare.SOLVER.POLY_LR_POWER == 0.9
    assert len(DEEPLAB_CONFIG_KEYS) == 13


def test_disabled_the_yaml_fails_naming_det_deeplab(disable_plugins):
    from det.core.config import ConfigKeyError
    from det.core.registry import ComponentNotFoundError, get_component

    # det-panoptic-deeplab adds DeepLab's keys too (it reuses them, as detectron2's config does)
    disable_plugins("deeplab", "panoptic-deeplab")
    cfg = get_cfg()
    assert "POLY_LR_POWER" not in cfg.SOLVER
    with pytest.raises(ConfigKeyError) as info:
        cfg.merge_from_file(str(YAMLS[2]))
    assert str(info.value) == (
        "Non-existent config key: MODEL.RESNETS.RES5_MULTI_GRID. This key is added by "
        "det-deeplab, which is installed but "
        "disabled (check DET_DISABLE_PLUGINS and det.core.plugins.disable()).")
    with pytest.raises(ComponentNotFoundError, match="It is provided by det-deeplab, which is installed but disabled"):
        get_component("LR_SCHEDULER", "WarmupPolyLR")


def test_an_unknown_lr_scheduler_names_the_built_in_ones():
    from det.engine.train.solver import build_lr_scheduler

    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupPolyLRR"
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=r"Unknown LR scheduler: WarmupPolyLRR \(SOLVER.LR_SCHEDULER_NAME; built in: "
                                         r"'WarmupMultiStepLR', 'WarmupCosineLR', 'WarmupStepWithFixedGammaLR'; "
                                         r"plugins add others\). No LR_SCHEDULER component named 'WarmupPolyLRR' is "
                                         r"installed. Installed LR_SCHEDULER components: WarmupPolyLR. Did you mean "
                                         r"'WarmupPolyLR'\?"):
        build_lr_scheduler(cfg, optimizer)
