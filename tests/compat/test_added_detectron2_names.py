"""detectron2 names user scripts reach for, added with detectron2's behaviour: the torch LR
schedulers WarmupMultiStepLR / WarmupCosineLR, global_cfg / set_global_cfg, upgrade_config /
downgrade_config (VERSION 2 only, said so), has_event_storage, setup_logger's color/abbrev_name."""

from __future__ import annotations

import logging
import math

import pytest
import torch


def _optimizer(lr: float = 0.5) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _lrs(scheduler, optimizer, n: int) -> list[float]:
    lrs = []
    for _ in range(n):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_warmup_multistep_lr():
    from detectron2.solver import WarmupMultiStepLR
    from detectron2.solver.lr_scheduler import WarmupMultiStepLR as same

    from det.engine.train.lr_scheduler import WarmupMultiStepLR as det_class

    assert WarmupMultiStepLR is same is det_class
    optimizer = _optimizer()
    scheduler = WarmupMultiStepLR(optimizer, milestones=[6, 8], gamma=0.1, warmup_factor=0.2, warmup_iters=4)
    lrs = _lrs(scheduler, optimizer, 10)
    # linear warmup 0.2 -> 1 over 4 iterations, then x0.1 from iteration 6 and again from 8
    expected = [0.5 * f for f in (0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01)]
    assert lrs == pytest.approx(expected)
    constant = _optimizer()
    scheduler = WarmupMultiStepLR(constant, milestones=[3], warmup_factor=0.1, warmup_iters=2, warmup_method="constant")
    assert _lrs(scheduler, constant, 4) == pytest.approx([0.05, 0.05, 0.5, 0.05])
    with pytest.raises(ValueError, match="milestones should be a list of increasing integers"):
        WarmupMultiStepLR(_optimizer(), milestones=[8, 6])
    with pytest.raises(ValueError, match="Unknown warmup method: 'cosine'"):
        WarmupMultiStepLR(_optimizer(), milestones=[8], warmup_method="cosine")


def test_warmup_cosine_lr_and_resume():
    from detectron2.solver import WarmupCosineLR

    optimizer = _optimizer()
    scheduler = WarmupCosineLR(optimizer, max_iters=10, warmup_factor=0.1, warmup_iters=2)
    lrs = _lrs(scheduler, optimizer, 11)
    warmup = [0.1, 0.55] + [1.0] * 9
    expected = [0.5 * w * 0.5 * (1 + math.cos(math.pi * i / 10)) for i, w in enumerate(warmup)]
    assert lrs == pytest.approx(expected) and lrs[-1] == pytest.approx(0.0)
    # the state is the iteration: a new scheduler loading it continues the same sequence
    resumed_opt = _optimizer()
    resumed = WarmupCosineLR(resumed_opt, max_iters=10, warmup_factor=0.1, warmup_iters=2)
    resumed.load_state_dict(scheduler.state_dict())
    assert resumed.get_last_lr() == pytest.approx(scheduler.get_last_lr())
    with pytest.raises(ValueError, match="max_iters > 0"):
        WarmupCosineLR(_optimizer(), max_iters=0)


def test_global_cfg_is_one_object_updated_in_place():
    from detectron2.config import global_cfg, set_global_cfg

    from det.core.config import get_cfg
    from det.core.config import global_cfg as det_global_cfg

    assert global_cfg is det_global_cfg
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True
    try:
        set_global_cfg(cfg)
        assert global_cfg.MODEL.MASK_ON is True and global_cfg.VERSION == 2
        set_global_cfg(type(cfg)({"ONLY": 1}))
        assert dict(global_cfg) == {"ONLY": 1}
    finally:
        set_global_cfg(type(cfg)())
    assert len(global_cfg) == 0


def test_upgrade_and_downgrade_config_only_know_version_2():
    from detectron2.config import downgrade_config, upgrade_config
    from detectron2.config.compat import upgrade_config as same

    from det.core.config import get_cfg

    assert upgrade_config is same
    cfg = get_cfg()
    upgraded = upgrade_config(cfg)
    assert upgraded is not cfg and upgraded == cfg and upgraded.VERSION == 2
    assert downgrade_config(cfg, to_version=2) == cfg
    with pytest.raises(ValueError, match=r"^downgrade_config: det reads only VERSION 2 configs \(detectron2's current "
                                         r"format\) and does not convert VERSION 2 to VERSION 1"):
        downgrade_config(cfg, to_version=1)
    old = cfg.clone()
    old.VERSION = 1
    with pytest.raises(ValueError, match=r"does not convert VERSION 1 to VERSION 2; detectron2's pre-release"):
        upgrade_config(old)
    with pytest.raises(ValueError, match=r"^upgrade_config: cannot upgrade a VERSION 2 config to VERSION 1$"):
        upgrade_config(cfg, to_version=1)


def test_has_event_storage():
    from detectron2.utils.events import EventStorage, has_event_storage

    from det.core import has_event_storage as det_name

    assert has_event_storage is det_name
    assert has_event_storage() is False
    with EventStorage(0):
        assert has_event_storage() is True
        with EventStorage(1):
            assert has_event_storage() is True
    assert has_event_storage() is False


class _Stdout:
    """What the loggers wrote to stdout (captured by pytest's capsys)."""

    def __init__(self, capsys):
        self._capsys, self._text = capsys, ""

    def getvalue(self) -> str:
        self._text += self._capsys.readouterr().out
        return self._text


@pytest.fixture
def fresh_logger(monkeypatch, capsys):
    from det.engine.train import logger as logger_module

    monkeypatch.setattr(logger_module, "_CONFIGURED", set())
    made: list[str] = []
    yield _Stdout(capsys), made
    for name in made:
        logging.getLogger(name).handlers.clear()


def test_setup_logger_color_and_abbrev_name(fresh_logger):
    from detectron2.utils.logger import setup_logger

    stream, made = fresh_logger
    made.append("zoo_d2test")
    logger = setup_logger(name="zoo_d2test", color=True, abbrev_name="zt")
    logging.getLogger("zoo_d2test.engine.hooks").info("hello")
    logging.getLogger("zoo_d2test.engine.hooks").warning("careful")
    logger.error("broken")
    first, second, third = stream.getvalue().splitlines()
    assert first.startswith("\x1b[32m[") and first.endswith(" zt.engine.hooks]: \x1b[0mhello")
    assert second.startswith("\x1b[31m\x1b[5mWARNING\x1b[0m \x1b[32m[") and second.endswith("zt.engine.hooks]: \x1b[0mcareful")
    assert third.startswith("\x1b[31m\x1b[5m\x1b[4mERROR\x1b[0m \x1b[32m[") and third.endswith(" zoo_d2test]: \x1b[0mbroken")


def test_setup_logger_plain_and_default_abbreviation(fresh_logger, tmp_path):
    from det.engine.train.logger import setup_logger

    stream, made = fresh_logger
    made += ["zoo_plain", "detectron2"]
    setup_logger(tmp_path, name="zoo_plain")  # stdout is not a terminal: no colour by default
    logging.getLogger("zoo_plain.x").warning("plain")
    assert stream.getvalue().endswith(" zoo_plain.x]: plain\n") and "\x1b" not in stream.getvalue()
    setup_logger(name="detectron2", color=True)  # detectron2 -> d2, as detectron2 abbreviates it
    logging.getLogger("detectron2.engine").info("short")
    assert stream.getvalue().splitlines()[-1].endswith(" d2.engine]: \x1b[0mshort")
    assert (tmp_path / "log.txt").read_text().rstrip().endswith(" zoo_plain.x]: plain")  # files: never coloured


def test_default_setup_logger_shows_a_detectron2_scripts_own_logger(fresh_logger, tmp_path):
    # detectron2's tools (benchmark.py, analyze_model.py) call setup_logger() and then write their
    # results to logging.getLogger("detectron2"): with det those lines must still show
    from detectron2.utils.logger import setup_logger

    stream, made = fresh_logger
    made += ["det", "detectron2"]
    setup_logger(tmp_path, color=False)
    logging.getLogger("detectron2").info("300 iters in 12.5 seconds.")
    logging.getLogger("det.data.benchmark").info("Dataset Alone: avg=1.0 it/s")
    lines = stream.getvalue().splitlines()
    assert lines[-2].endswith(" detectron2]: 300 iters in 12.5 seconds.")
    assert lines[-1].endswith(" det.data.benchmark]: Dataset Alone: avg=1.0 it/s")
    assert (tmp_path / "log.txt").read_text().count("300 iters in 12.5 seconds.") == 1


def test_collect_env_info_and_data_benchmark_are_detectron2s():
    import detectron2.data.benchmark
    from detectron2.data.benchmark import DataLoaderBenchmark, iter_benchmark
    from detectron2.utils.collect_env import collect_env_info

    import det.data.benchmark
    from det.core.machine import collect_env_info as det_collect_env_info

    assert detectron2.data.benchmark is det.data.benchmark
    assert DataLoaderBenchmark is det.data.benchmark.DataLoaderBenchmark
    assert iter_benchmark is det.data.benchmark.iter_benchmark
    assert collect_env_info is det_collect_env_info


def test_every_registry_and_builder_is_where_detectron2_defines_it():
    # project code imports registries from the defining module, e.g.
    # `from detectron2.modeling.roi_heads.roi_heads import ROI_HEADS_REGISTRY`
    import importlib

    from detectron2._detectron2_names import DETECTRON2_NAMES

    from det.core import registry

    missing = []
    for module, names in DETECTRON2_NAMES.items():
        if module.startswith("detectron2.tracking"):  # detectron2's video trackers: not in det
            continue
        for name in names:
            if name.endswith("_REGISTRY") or name.startswith("build_"):
                try:
                    value = getattr(importlib.import_module(module), name)
                except (ImportError, AttributeError):
                    missing.append(f"{module}.{name}")
                    continue
                if name.endswith("_REGISTRY"):
                    assert value is getattr(registry, name), f"{module}.{name} is not det's registry"
    assert missing == []


def test_rotated_iou_and_matched_iou_under_detectron2s_names():
    import torch
    from detectron2.layers import pairwise_iou_rotated
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated as from_module
    from detectron2.structures import Boxes, matched_pairwise_iou

    from det.core.layers import box_iou_rotated
    from det.structures import matched_boxlist_iou

    assert pairwise_iou_rotated is box_iou_rotated and from_module is box_iou_rotated
    assert matched_pairwise_iou is matched_boxlist_iou
    iou = matched_pairwise_iou(Boxes(torch.tensor([[0.0, 0, 2, 2]])), Boxes(torch.tensor([[1.0, 1, 3, 3]])))
    assert torch.allclose(iou, torch.tensor([1 / 7]))
    boxes = torch.tensor([[5.0, 5.0, 4.0, 2.0, 0.0], [5.0, 5.0, 4.0, 2.0, 90.0]])
    assert torch.allclose(pairwise_iou_rotated(boxes, boxes), torch.tensor([[1.0, 1 / 3], [1 / 3, 1.0]]), atol=1e-5)


def test_mmdet_wrappers_from_detectron2_modeling():
    from detectron2.modeling import MMDetBackbone, MMDetDetector

    from det.mmdet_wrapper import MMDetBackbone as DetBackbone
    from det.mmdet_wrapper import MMDetDetector as DetDetector

    assert MMDetBackbone is DetBackbone and MMDetDetector is DetDetector
