"""TrainerBase/SimpleTrainer/AMPTrainer, the hooks and the writers, on a toy regression model."""

from __future__ import annotations

import itertools
import json
import logging

import pytest
import torch
from torch import nn

from det.checkpoint import Checkpointer
from det.engine.train import hooks
from det.engine.train.lr_scheduler import LRMultiplier, MultiStepParamScheduler
from det.engine.train.train_loop import AMPTrainer, HookBase, SimpleTrainer, TrainerBase
from det.engine.train.writers import CommonMetricPrinter, JSONWriter


class _Toy(nn.Module):
    """Loss dict like a detector's: two named losses."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.w.weight.fill_(1.0)

    def forward(self, batch):
        x = torch.stack([b["x"] for b in batch])
        y = torch.stack([b["y"] for b in batch])
        err = self.w(x).squeeze(1) - y
        return {"loss_a": (err**2).mean(), "loss_b": err.abs().mean() * 0.0 + 0.5}


def _loader():
    g = torch.Generator().manual_seed(0)
    while True:
        x = torch.randn(2, 2, generator=g)
        yield [{"x": x[i], "y": x[i].sum() * 0.5} for i in range(2)]


def _trainer(lr=0.2, momentum=0.0):
    model = _Toy()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return SimpleTrainer(model, _loader(), opt)


class _Recorder(HookBase):
    def __init__(self, log, name):
        self.log, self.name = log, name

    def before_train(self):
        self.log.append((self.name, "before_train", self.trainer.iter))

    def before_step(self):
        self.log.append((self.name, "before_step", self.trainer.iter))

    def after_step(self):
        self.log.append((self.name, "after_step", self.trainer.iter))

    def after_train(self):
        self.log.append((self.name, "after_train", self.trainer.iter))


def test_hooks_run_in_order_and_iter_ends_at_max_iter():
    log: list = []
    trainer = _trainer()
    trainer.register_hooks([_Recorder(log, "a"), None, _Recorder(log, "b")])
    trainer.train(3, 5)
    assert log == [
        ("a", "before_train", 3), ("b", "before_train", 3),
        ("a", "before_step", 3), ("b", "before_step", 3), ("a", "after_step", 3), ("b", "after_step", 3),
        ("a", "before_step", 4), ("b", "before_step", 4), ("a", "after_step", 4), ("b", "after_step", 4),
        ("a", "after_train", 5), ("b", "after_train", 5),
    ]
    assert trainer.iter == 5 and trainer.storage.iter == 5


def test_simple_trainer_writes_losses_and_learns():
    trainer = _trainer()
    trainer.train(0, 30)
    storage = trainer.storage
    assert set(storage.histories()) == {"data_time", "total_loss", "loss_a", "loss_b"}
    hist = storage.history("total_loss").values()
    assert [it for _, it in hist] == list(range(30))
    assert hist[0][0] == pytest.approx(storage.history("loss_a").values()[0][0] + 0.5)
    assert storage.history("loss_a").latest() < 0.05 * storage.history("loss_a").values()[0][0]
    assert trainer.model.w.weight.detach().tolist()[0] == pytest.approx([0.5, 0.5], abs=0.05)


def test_nan_loss_raises_and_after_train_still_runs():
    log: list = []
    trainer = _trainer(lr=1e6)  # diverges
    trainer.register_hooks([_Recorder(log, "a")])
    with pytest.raises(FloatingPointError, match="Loss became infinite or NaN at iteration="):
        trainer.train(0, 200)
    assert log[-1][1] == "after_train" and trainer.iter < 200


def test_trainer_input_errors():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        SimpleTrainer(lambda x: x, [], torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1))
    with pytest.raises(TypeError, match="Optimizer"):
        SimpleTrainer(nn.Linear(1, 1), [], object())
    with pytest.raises(TypeError, match="HookBase"):
        _trainer().register_hooks([object()])
    trainer = _trainer()
    trainer.model.eval()
    with pytest.raises(RuntimeError, match="eval mode"):
        trainer.train(0, 1)

    class _Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, batch):
            return [self.p]

    bad = SimpleTrainer(_Bad(), _loader(), torch.optim.SGD(_Bad().parameters(), lr=1))
    with pytest.raises(TypeError, match="dict of losses"):
        bad.train(0, 1)


def test_amp_trainer_bf16_on_cpu():
    model = _Toy()
    trainer = AMPTrainer(model, _loader(), torch.optim.SGD(model.parameters(), lr=0.1))
    assert trainer.precision == torch.bfloat16 and trainer.grad_scaler is None
    trainer.train(0, 20)
    assert model.w.weight.dtype == torch.float32
    assert trainer.storage.history("loss_a").latest() < trainer.storage.history("loss_a").values()[0][0]


def test_lr_scheduler_hook_records_lr_and_state():
    trainer = _trainer(lr=1.0)
    sched = LRMultiplier(trainer.optimizer, MultiStepParamScheduler([1, 0.1], milestones=[2], num_updates=4), 4)
    lr_hook = hooks.LRScheduler(scheduler=sched)
    trainer.register_hooks([lr_hook])
    trainer.train(0, 4)
    assert [v for v, _ in trainer.storage.history("lr").values()] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    state = trainer.state_dict()
    assert state["iteration"] == 4
    assert state["hooks"] == {"LRScheduler": {"base_lrs": [1.0], "last_epoch": 4}}
    assert "optimizer" in state


def test_lr_scheduler_hook_wraps_a_param_scheduler():
    trainer = _trainer(lr=2.0)
    trainer.register_hooks([hooks.LRScheduler(scheduler=MultiStepParamScheduler([1, 0.5], milestones=[1], num_updates=3))])
    trainer.train(0, 3)
    assert [v for v, _ in trainer.storage.history("lr").values()] == pytest.approx([2.0, 1.0, 1.0])


def test_best_param_group_id():
    p = [nn.Parameter(torch.zeros(1)) for _ in range(4)]
    opt = torch.optim.SGD([{"params": p[:1], "lr": 1}, {"params": p[1:3], "lr": 2}, {"params": p[3:], "lr": 3}], lr=1)
    assert hooks.LRScheduler.get_best_param_group_id(opt) == 1
    opt = torch.optim.SGD([{"params": [p[0]], "lr": 5}, {"params": [p[1]], "lr": 3}, {"params": [p[2]], "lr": 3}], lr=1)
    assert hooks.LRScheduler.get_best_param_group_id(opt) == 1


def test_eval_hook_period_and_final_eval():
    calls: list[int] = []
    trainer = _trainer()

    def evaluate():
        calls.append(trainer.iter)
        return {"bbox": {"AP": 10.0 * len(calls)}}

    trainer.register_hooks([hooks.EvalHook(2, evaluate)])
    trainer.train(0, 6)
    # after iterations 1 and 3 (next_iter 2 and 4), not at 6 from after_step, then after training
    assert calls == [1, 3, 6]
    assert [v for v, _ in trainer.storage.history("bbox/AP").values()] == [10.0, 20.0, 30.0]

    bad = _trainer()
    bad.register_hooks([hooks.EvalHook(1, lambda: {"bbox": {"AP": "n/a"}})])
    with pytest.raises(ValueError, match="nested dict of float"):
        bad.train(0, 2)


def test_iteration_timer_and_periodic_writer_json(tmp_path, caplog):
    trainer = _trainer()
    json_file = tmp_path / "metrics.json"
    trainer.register_hooks([
        hooks.IterationTimer(warmup_iter=2),
        hooks.PeriodicWriter([JSONWriter(json_file), CommonMetricPrinter(7)], period=3),
    ])
    with caplog.at_level(logging.INFO, logger="det.engine.train"):
        trainer.train(0, 7)
    timed = [it for _, it in trainer.storage.history("time").values()]
    assert timed == [1, 2, 3, 4, 5, 6]
    lines = [json.loads(line) for line in json_file.read_text().splitlines()]
    # written at iterations 2, 5, 6 (period 3 and the last); each iteration once
    assert [d["iteration"] for d in lines] == [2, 5, 6]
    assert set(lines[0]) == {"iteration", "data_time", "time", "total_loss", "loss_a", "loss_b"}
    printed = [r.getMessage() for r in caplog.records if r.name == "det.engine.train"]
    assert any("iter: 5" in m and "total_loss:" in m and "eta:" in m for m in printed)


def test_periodic_checkpointer_hook_and_resume(tmp_path):
    trainer = _trainer(momentum=0.9)
    sched = LRMultiplier(trainer.optimizer, MultiStepParamScheduler([1, 0.1], milestones=[3], num_updates=6), 6)
    trainer.register_hooks([hooks.LRScheduler(scheduler=sched)])
    checkpointer = Checkpointer(trainer.model, str(tmp_path), trainer=trainer)
    trainer.register_hooks([hooks.PeriodicCheckpointer(checkpointer, period=2)])
    trainer.train(0, 6)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["last_checkpoint", "model_0000001.pth", "model_0000003.pth", "model_0000005.pth", "model_final.pth"]

    # resume from iteration 3's checkpoint into a fresh trainer: same weights, momentum, LR position
    fresh = _trainer(momentum=0.9)
    fresh_sched = LRMultiplier(fresh.optimizer, MultiStepParamScheduler([1, 0.1], milestones=[3], num_updates=6), 6)
    fresh.register_hooks([hooks.LRScheduler(scheduler=fresh_sched)])
    extra = Checkpointer(fresh.model, str(tmp_path), trainer=fresh).load(str(tmp_path / "model_0000003.pth"))
    assert extra == {"iteration": 3}
    assert fresh.iter == 3 and fresh_sched.last_epoch == 4
    saved = torch.load(tmp_path / "model_0000003.pth", weights_only=True)
    assert torch.equal(fresh.model.w.weight, saved["model"]["w.weight"])
    assert torch.equal(fresh.optimizer.state_dict()["state"][0]["momentum_buffer"],
                       saved["trainer"]["optimizer"]["state"][0]["momentum_buffer"])


def test_callback_hook_and_progress_bar(capsys):
    seen: list[int] = []
    trainer = _trainer()
    trainer.register_hooks([hooks.CallbackHook(after_step=lambda t: seen.append(t.iter)), hooks.ProgressBar(file=None)])
    trainer.train(0, 3)
    assert seen == [0, 1, 2]
    assert "3/3" in capsys.readouterr().err


def test_trainer_base_needs_run_step():
    with pytest.raises(NotImplementedError):
        TrainerBase().train(0, 1)


def test_load_state_dict_warns_on_unknown_hook(caplog):
    trainer = _trainer()
    with caplog.at_level(logging.WARNING):
        trainer.load_state_dict({"iteration": 7, "hooks": {"NoSuchHook": {"a": 1}},
                                 "optimizer": trainer.optimizer.state_dict()})
    assert trainer.iter == 7
    assert "Cannot find the hook 'NoSuchHook'" in caplog.text


def test_data_loader_is_not_iterated_before_training():
    calls = itertools.count()

    class _Lazy:
        def __iter__(self):
            next(calls)
            return _loader()

    trainer = SimpleTrainer(_Toy(), _Lazy(), torch.optim.SGD(_Toy().parameters(), lr=0.1))
    assert next(calls) == 0
    trainer.train(0, 1)
    assert next(calls) == 2


def test_comm_single_process_answers():
    from det.engine.train import comm

    assert (comm.get_world_size(), comm.get_rank(), comm.get_local_rank(), comm.get_local_size()) == (1, 0, 0, 1)
    assert comm.is_main_process()
    losses = {"a": torch.tensor(1.5), "b": torch.tensor(2.0)}
    assert comm.reduce_dict(losses) is losses
    assert comm.all_gather({"x": 1}) == [{"x": 1}] and comm.gather(3) == [3]
    comm.synchronize()  # a no-op without a process group
