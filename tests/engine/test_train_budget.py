"""TrainingBudget: the thread count and the iteration count are measured and fitted while
training runs, on a simulated clock (iterations "take" the seconds the test says)."""

from __future__ import annotations

import pytest
import torch

from det.core.config import get_cfg
from det.engine.train import hooks
from det.engine.train.budget import TrainingBudget, fit_schedule, thread_candidates
from det.engine.train.solver import build_lr_scheduler
from det.engine.train.train_loop import TrainerBase


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SimulatedTrainer(TrainerBase):
    """Each step advances the clock by ``seconds(iteration, threads)`` and records the lr used."""

    def __init__(self, cfg, clock, seconds) -> None:
        super().__init__()
        self.param = torch.nn.Parameter(torch.zeros(1))
        self.optimizer = torch.optim.SGD([self.param], lr=cfg.SOLVER.BASE_LR, momentum=0.9)
        self.scheduler = build_lr_scheduler(cfg, self.optimizer)
        self.clock, self.seconds = clock, seconds
        self.threads = 4
        self.lrs: list[float] = []
        self.thread_log: list[int] = []

    def set_threads(self, n: int) -> None:
        self.threads = n

    def run_step(self) -> None:
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        self.thread_log.append(self.threads)
        self.clock.now += self.seconds(self.iter, self.threads)
        self.optimizer.step()


def _cfg(max_iter=1000, steps=(750, 920), warmup=100):
    cfg = get_cfg()
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.SOLVER.BASE_LR = 0.02
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS = max_iter, steps, warmup
    cfg.SOLVER.WARMUP_FACTOR = 0.001
    return cfg


class FinalIteration(hooks.HookBase):
    """Records the iterations at which a hook reading ``max_iter`` believed it was the last one
    (as the checkpointer does to save model_final)."""

    def __init__(self) -> None:
        self.finals: list[int] = []

    def after_step(self) -> None:
        if self.trainer.iter >= self.trainer.max_iter - 1:
            self.finals.append(self.trainer.iter)


def _run(cfg, seconds, *, deadline, reserve=0.0, candidates=(2, 1), budget_first=False, **kwargs):
    clock = FakeClock()
    trainer = SimulatedTrainer(cfg, clock, seconds)
    budget = TrainingBudget(cfg, deadline, reserve_seconds=reserve, thread_candidates=candidates, clock=clock,
                            set_threads=trainer.set_threads, **kwargs)
    final = FinalIteration()
    trainer.register_hooks([budget, final, hooks.LRScheduler()] if budget_first
                           else [final, hooks.LRScheduler(), budget])
    trainer.train(0, int(cfg.SOLVER.MAX_ITER))
    # whatever the hooks' order, the one that saves model_final saw the last iteration as such
    assert final.finals == [trainer.iter - 1]
    return trainer, budget, clock


def test_fit_schedule_keeps_step_fractions_and_warmup():
    cfg = _cfg(676, (507, 622), 100)
    fit_schedule(cfg, 1000)
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS) == (1000, (750, 920), 100)
    fit_schedule(cfg, 300)  # warm-up at most a tenth of the run
    assert (cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS) == ((225, 276), 30)
    fit_schedule(cfg, 500, step_fractions=(0.75, 0.92), fixed_steps=(240,))  # a step that happened stays
    assert cfg.SOLVER.STEPS == (240, 460)
    fit_schedule(cfg, 3, step_fractions=(0.75, 0.92))  # tiny runs: steps stay increasing, inside the run
    assert cfg.SOLVER.STEPS == (2,) and cfg.SOLVER.WARMUP_ITERS == 1
    with pytest.raises(ValueError, match="positive number of iterations"):
        fit_schedule(cfg, 0)


def test_thread_candidates():
    assert thread_candidates(2) == (2, 1)
    assert thread_candidates(8) == (8, 4, 1)
    assert thread_candidates(1) == (1,)


def test_two_threads_are_kept_when_they_are_faster_and_the_run_fits_the_budget():
    speeds = {2: 0.5, 1: 0.85}
    trainer, budget, clock = _run(_cfg(), lambda it, n: speeds[n], deadline=400.0, reserve=40.0)
    assert budget.threads == 2
    assert budget.probes[0]["seconds_per_iteration"] == {"2": 0.5, "1": 0.85}
    # 2 untimed iterations on 1 thread, 3 probes of each count, then 2 threads to the end
    assert trainer.thread_log[:8] == [1, 1, 2, 1, 2, 1, 2, 1] and set(trainer.thread_log[8:]) == {2}
    assert 360.0 - 0.85 <= clock.now <= 360.0  # ends within one iteration of deadline - reserve
    assert trainer.iter == trainer.max_iter == len(trainer.lrs)
    schedule = budget.fitted_schedule()
    assert schedule["MAX_ITER"] == trainer.max_iter
    assert schedule["STEPS"] == (round(0.75 * trainer.max_iter), round(0.92 * trainer.max_iter))
    # the LR used at each iteration is the fitted schedule's: warm-up, 0.02, 0.002, 0.0002
    first, second = schedule["STEPS"]
    assert trainer.lrs[first - 1] == pytest.approx(0.02) and trainer.lrs[first] == pytest.approx(0.002)
    assert trainer.lrs[second] == pytest.approx(0.0002) and trainer.lrs[-1] == pytest.approx(0.0002)
    assert trainer.lrs[0] == pytest.approx(0.02 * 0.001)


def test_a_busy_core_makes_one_thread_win_after_a_single_slow_iteration():
    speeds = {2: 6.0, 1: 0.6}
    trainer, budget, clock = _run(_cfg(), lambda it, n: speeds[n], deadline=300.0)
    assert budget.threads == 1
    assert trainer.thread_log.count(2) == 1  # dropped after its first, hopeless, iteration
    assert clock.now <= 300.0 and trainer.iter >= (300.0 - 6.0) / 0.6 - 5


def test_a_machine_that_slows_down_halfway_still_ends_on_time():
    def seconds(it, n):
        return 0.5 if it < 200 else 1.0  # another program starts at iteration 200

    trainer, budget, clock = _run(_cfg(), seconds, deadline=400.0, candidates=(1,))
    assert budget.threads == 1 and not budget.probes
    assert clock.now <= 400.0 + 1.0
    assert len(budget.fits) >= 2 and budget.fits[-1]["max_iter"] < budget.fits[0]["max_iter"]
    # the first LR step happened after the slow-down and is at 75 % of the final count
    assert budget.fitted_schedule()["STEPS"][0] == round(0.75 * trainer.max_iter)


def test_a_step_already_taken_is_not_moved_by_a_later_fit():
    def seconds(it, n):
        return 0.5 if it < 600 else 2.0  # after the first LR step

    trainer, budget, clock = _run(_cfg(), seconds, deadline=400.0, candidates=(1,))
    steps = budget.fitted_schedule()["STEPS"]
    first_fit_steps = round(0.75 * budget.fits[0]["max_iter"])
    assert steps[0] == first_fit_steps  # taken before the slow-down: stays
    assert trainer.lrs[steps[0]] == pytest.approx(0.002) and trainer.lrs[steps[0] - 1] == pytest.approx(0.02)
    assert clock.now <= 400.0 + 2.0


def test_the_reserve_is_measured_once_and_a_tiny_budget_ends_training_at_once():
    calls = []

    def reserve():
        calls.append(1)
        return 1000.0

    trainer, budget, _clock = _run(_cfg(), lambda it, n: 1.0, deadline=100.0, reserve=reserve, candidates=(1,))
    assert calls == [1] and budget.reserve == 1000.0
    # the 2 untimed iterations, the one that measured the speed and the next (the earliest end)
    assert trainer.iter == 4


def test_without_a_deadline_only_the_threads_are_measured():
    trainer, budget, _clock = _run(_cfg(max_iter=30, steps=(20,)), lambda it, n: {2: 0.3, 1: 0.5}[n], deadline=None)
    assert budget.threads == 2 and trainer.iter == 30 and not budget.fits
    assert budget.fitted_schedule() == {"MAX_ITER": 30, "STEPS": (20,), "WARMUP_ITERS": 100}


def test_bad_thread_counts_are_refused():
    with pytest.raises(ValueError, match="thread counts must be positive"):
        TrainingBudget(_cfg(), 10.0, thread_candidates=(2, 0))


def test_time_running_out_while_the_threads_are_measured_ends_training_at_once():
    trainer, budget, _clock = _run(_cfg(), lambda it, n: 1.0, deadline=2.5)
    assert trainer.iter == 4 and budget.threads is None and not budget.probes
    assert budget.fits[-1]["max_iter"] == 4 and budget.fitted_schedule()["MAX_ITER"] == 4


def test_after_training_the_best_measured_thread_count_is_kept_for_evaluation():
    # out of time in the middle of the thread measurement: 1 thread was the faster one seen
    trainer, budget, _clock = _run(_cfg(), lambda it, n: {2: 1.0, 1: 0.5}[n], deadline=2.5)
    assert trainer.thread_log == [1, 1, 2, 1, 1] and trainer.iter == 5
    assert trainer.threads == 1 and budget.threads is None


def test_the_hook_order_does_not_change_the_schedule():
    def seconds(it, n):
        return 0.5 if it < 300 else 0.8

    a, budget_a, _ = _run(_cfg(), seconds, deadline=400.0, candidates=(1,))
    b, budget_b, _ = _run(_cfg(), seconds, deadline=400.0, candidates=(1,), budget_first=True)
    assert a.iter == b.iter and budget_a.fitted_schedule() == budget_b.fitted_schedule()
    assert a.lrs == pytest.approx(b.lrs, rel=1e-12)


def test_the_first_thread_setting_reaches_a_custom_setter_whatever_torch_has():
    # torch already at 1 thread (an earlier run in this process): the simulated trainer, at 4, must
    # still be told to use 1 for the untimed first iterations
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer, _budget, _clock = _run(_cfg(), lambda it, n: {2: 0.5, 1: 0.85}[n], deadline=400.0)
    finally:
        torch.set_num_threads(before)
    assert trainer.thread_log[:2] == [1, 1] and trainer.thread_log[-1] == 2
