"""Optimizer parameter groups, gradient clipping and LR schedules follow detectron2's solver."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from det.core.config import get_cfg
from det.engine.train.lr_scheduler import (
    CosineParamScheduler,
    LRMultiplier,
    MultiStepParamScheduler,
    StepParamScheduler,
    StepWithFixedGammaParamScheduler,
    WarmupParamScheduler,
)
from det.engine.train.solver import (
    build_lr_scheduler,
    build_optimizer,
    get_default_optimizer_params,
    reduce_param_groups,
)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _lrs(cfg, n):
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.SOLVER.BASE_LR)
    sched = build_lr_scheduler(cfg, opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_multistep_schedule_matches_detectron2():
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.MAX_ITER = 10
    cfg.SOLVER.STEPS = (5, 8)
    cfg.SOLVER.GAMMA = 0.1
    cfg.SOLVER.WARMUP_ITERS = 4
    cfg.SOLVER.WARMUP_FACTOR = 0.2
    lrs = _lrs(cfg, 10)
    # linear warmup from 0.2 to 1.0 over 4 iterations, then 1, x0.1 at 5, x0.01 at 8
    assert lrs == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_constant_warmup_and_steps_beyond_max_iter_are_ignored():
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 0.5
    cfg.SOLVER.MAX_ITER = 6
    cfg.SOLVER.STEPS = (3, 100)
    cfg.SOLVER.WARMUP_ITERS = 2
    cfg.SOLVER.WARMUP_FACTOR = 0.1
    cfg.SOLVER.WARMUP_METHOD = "constant"
    assert _lrs(cfg, 6) == pytest.approx([0.05, 0.05, 0.5, 0.05, 0.05, 0.05])


def test_warmup_cosine_schedule():
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    cfg.SOLVER.BASE_LR = 2.0
    cfg.SOLVER.BASE_LR_END = 0.0
    cfg.SOLVER.MAX_ITER = 100
    cfg.SOLVER.WARMUP_ITERS = 0
    lrs = _lrs(cfg, 100)
    for it in (0, 25, 50, 99):
        assert lrs[it] == pytest.approx(1.0 + math.cos(math.pi * it / 100), abs=1e-9)


def test_warmup_step_with_fixed_gamma_schedule():
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupStepWithFixedGammaLR"
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.GAMMA = 0.5
    cfg.SOLVER.NUM_DECAYS = 3
    cfg.SOLVER.MAX_ITER = 8
    cfg.SOLVER.WARMUP_ITERS = 0
    # four equal quarters of 8 iterations: 1, 0.5, 0.25, 0.125; where == 1 keeps the last value
    assert _lrs(cfg, 9) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.125])


def test_rescale_interval_restarts_the_schedule_after_warmup():
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupStepWithFixedGammaLR"
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.GAMMA = 0.1
    cfg.SOLVER.NUM_DECAYS = 1
    cfg.SOLVER.MAX_ITER = 10
    cfg.SOLVER.WARMUP_ITERS = 4
    cfg.SOLVER.WARMUP_FACTOR = 0.5
    cfg.SOLVER.WARMUP_METHOD = "constant"
    # fixed interval: the decay comes at iteration 5 of 10, one iteration after warmup
    assert _lrs(cfg, 10) == pytest.approx([0.5] * 4 + [1.0] + [0.1] * 5)
    cfg.SOLVER.RESCALE_INTERVAL = True
    # rescaled: the remaining 6 iterations are the schedule's whole range, decay at 4 + 3
    assert _lrs(cfg, 10) == pytest.approx([0.5] * 4 + [1.0] * 3 + [0.1] * 3)


def test_step_schedulers_are_fvcores():
    import fvcore.common.param_scheduler as fvcore_schedulers

    assert StepParamScheduler is fvcore_schedulers.StepParamScheduler
    assert StepWithFixedGammaParamScheduler is fvcore_schedulers.StepWithFixedGammaParamScheduler
    assert issubclass(WarmupParamScheduler, fvcore_schedulers.CompositeParamScheduler)
    assert [StepParamScheduler(4, [3, 2])(x / 4) for x in range(4)] == [3, 3, 2, 2]
    with pytest.raises(ValueError, match="positive"):
        StepWithFixedGammaParamScheduler(base_value=1.0, num_decays=2, gamma=-0.1, num_updates=10)


def test_fixed_gamma_schedule_checks_the_config_and_survives_the_last_step():
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupStepWithFixedGammaLR"
    cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER, cfg.SOLVER.WARMUP_ITERS = 1.0, 4, 0
    cfg.SOLVER.NUM_DECAYS, cfg.SOLVER.GAMMA = 1, 0.5
    # the step after the last iteration (where = 1) has no fvcore value: the last one is kept
    assert _lrs(cfg, 5) == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.5])
    cfg.SOLVER.NUM_DECAYS = 0
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"SOLVER\.NUM_DECAYS must be a positive integer, got 0"):
        build_lr_scheduler(cfg, opt)


def test_unknown_scheduler_and_bad_end_lr_raise():
    cfg = get_cfg()
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupStepLR"
    with pytest.raises(ValueError, match="Unknown LR scheduler: WarmupStepLR"):
        build_lr_scheduler(cfg, opt)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    cfg.SOLVER.BASE_LR_END = 1.0
    with pytest.raises(ValueError, match="BASE_LR_END"):
        build_lr_scheduler(cfg, opt)


def test_param_schedulers():
    ms = MultiStepParamScheduler([1, 0.1, 0.01], num_updates=90, milestones=[60, 80])
    assert [ms(x / 90) for x in (0, 59, 60, 79, 80, 89)] == [1, 1, 0.1, 0.1, 0.01, 0.01]
    cos = CosineParamScheduler(1, 0)
    assert cos(0) == 1 and cos(1) == pytest.approx(0) and cos(0.5) == pytest.approx(0.5)
    warm = WarmupParamScheduler(cos, warmup_factor=0.5, warmup_length=0.1)
    assert warm(0.0) == pytest.approx(0.5)
    assert warm(0.05) == pytest.approx(0.5 * 0.5 + 0.5 * cos(0.1))
    assert warm(0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="requires a list of 1 miletones"):  # fvcore's words
        MultiStepParamScheduler([1, 0.1], num_updates=10, milestones=[3, 6])
    with pytest.raises(ValueError, match="warmup method"):
        WarmupParamScheduler(cos, 0.1, 0.1, "exp")
    # detectron2: a rescaled schedule starts over after warmup, so warmup ends at scheduler(0)
    step = MultiStepParamScheduler([1, 0.1], num_updates=10, milestones=[5])
    assert WarmupParamScheduler(step, 0.5, 0.5, rescale_interval=True)(0.5 - 1e-3) == pytest.approx(1.0, abs=1e-2)
    assert WarmupParamScheduler(step, 0.5, 0.5, rescale_interval=False)(0.5 - 1e-3) == pytest.approx(0.1, abs=1e-2)


def test_lr_multiplier_state_is_position_only():
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    sched = LRMultiplier(opt, CosineParamScheduler(1, 0), max_iter=10)
    for _ in range(3):
        opt.step()
        sched.step()
    assert sched.state_dict() == {"base_lrs": [1.0], "last_epoch": 3}
    with pytest.raises(ValueError, match="fvcore's ParamScheduler"):
        LRMultiplier(opt, lambda x: x, max_iter=10)


def test_default_optimizer_params_groups():
    model = _Net()
    groups = get_default_optimizer_params(model, base_lr=0.1, weight_decay_norm=0.0, bias_lr_factor=2.0,
                                          weight_decay_bias=0.5)
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert id(model.frozen.weight) not in by_param
    assert by_param[id(model.conv.weight)] == {**by_param[id(model.conv.weight)], "lr": 0.1}
    assert "weight_decay" not in by_param[id(model.conv.weight)]
    assert by_param[id(model.bn.weight)]["weight_decay"] == 0.0
    assert by_param[id(model.gn.weight)]["weight_decay"] == 0.0
    # biases: the bias override wins over the norm one (applied later), detectron2's order
    assert by_param[id(model.bn.bias)]["weight_decay"] == 0.5 and by_param[id(model.bn.bias)]["lr"] == 0.2
    assert by_param[id(model.fc.bias)] is by_param[id(model.conv.bias)]
    # equal hyper-parameters share one group
    assert len(groups) == 3
    assert sum(len(g["params"]) for g in groups) == 8
    with pytest.raises(ValueError, match="bias_lr_factor requires base_lr"):
        get_default_optimizer_params(model, bias_lr_factor=2.0)


def test_reduce_param_groups_merges_and_overrides():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    out = reduce_param_groups([{"params": [a, b], "lr": 1.0}, {"params": [b], "lr": 2.0}, {"params": [a], "lr": 1.0}])
    assert [(g["lr"], len(g["params"])) for g in out] == [(1.0, 1), (2.0, 1)]


def test_build_optimizer_from_cfg_and_gradient_clipping():
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = 0.5
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    opt = build_optimizer(cfg, model)
    assert type(opt) is torch.optim.SGD and opt.defaults["lr"] == 0.5

    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.1
    opt = build_optimizer(cfg, model)
    assert type(opt).__name__ == "SGDWithGradientClip" and isinstance(opt, torch.optim.SGD)
    model.weight.grad = torch.tensor([[3.0, -0.05]])
    opt.step()
    assert model.weight.detach()[0].tolist() == pytest.approx([-0.05, 0.025])

    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
    with torch.no_grad():
        model.weight.zero_()
    opt = build_optimizer(cfg, model)
    model.weight.grad = torch.tensor([[3.0, 4.0]])
    opt.step()
    assert model.weight.detach()[0].tolist() == pytest.approx([-0.3, -0.4])

    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "max"
    with pytest.raises(ValueError, match="CLIP_TYPE must be 'value' or 'norm'"):
        build_optimizer(cfg, model)
    frozen = nn.Linear(1, 1).requires_grad_(False)
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(cfg, frozen)
