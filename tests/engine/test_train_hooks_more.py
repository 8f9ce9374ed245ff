"""The hooks beyond the basic set: PreciseBN (and its update_bn_stats), BestCheckpointer, the
profilers and TorchMemoryStats, on toy models; DefaultTrainer's PreciseBN registration."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import torch
from torch import nn

from det.checkpoint import Checkpointer
from det.core.events import get_event_storage
from det.core.layers.batch_norm import FrozenBatchNorm2d, NaiveSyncBatchNorm
from det.engine.train import hooks
from det.engine.train.precise_bn import get_bn_modules, update_bn_stats
from det.engine.train.train_loop import HookBase, SimpleTrainer


class _Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def hook_logs():
    # attached to the hooks' logger itself: "det" may not propagate once setup_logger ran
    log = logging.getLogger("det.engine.train.hooks")
    handler, old_level = _Logs(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield handler.messages
    log.removeHandler(handler)
    log.setLevel(old_level)


class _BNToy(nn.Module):
    """Linear -> BatchNorm1d; reports a loss and a ``probe`` scalar on every forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(2, 3)
        self.bn = nn.BatchNorm1d(3, momentum=0.25)

    def forward(self, x):
        get_event_storage().put_scalar("probe", 1.0)
        return {"loss": (self.bn(self.lin(x)) - 1.0).pow(2).mean()}


def _batches(seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randn(4, 2, generator=g) * 3.0 + shift


def _bn_trainer(model=None):
    model = model or _BNToy()
    return SimpleTrainer(model, _batches(0), torch.optim.SGD(model.parameters(), lr=0.1))


class _Counting:
    """An iterable over ``batches`` that counts what was taken from it."""

    def __init__(self, batches):
        self._batches = batches
        self.taken: list[torch.Tensor] = []

    def __iter__(self):
        for b in self._batches:
            self.taken.append(b)
            yield b


# --- get_bn_modules / update_bn_stats ---------------------------------------------------------


def test_get_bn_modules_finds_training_mode_bn_only():
    model = nn.Sequential(
        nn.BatchNorm1d(2),
        nn.BatchNorm2d(2),
        NaiveSyncBatchNorm(2),
        FrozenBatchNorm2d(2),
        nn.BatchNorm3d(2),
        nn.GroupNorm(1, 2),
    )
    model[4].eval()
    assert get_bn_modules(model) == [model[0], model[1], model[2]]
    assert get_bn_modules(model.eval()) == []


def test_update_bn_stats_is_the_average_of_batch_statistics():
    # float64, so "average of the batch statistics" can be checked to rounding error
    bn = nn.BatchNorm2d(3, momentum=0.3).double()
    model = nn.Sequential(nn.Conv2d(2, 3, 1).double(), bn)
    g = torch.Generator().manual_seed(1)
    # batches of different sizes and offsets: the average is per batch, not per sample
    batches = [
        torch.randn(n, 2, 4, 5, generator=g, dtype=torch.float64) * (i + 1) + i
        for i, n in enumerate([2, 3, 5, 4, 2])
    ]
    with torch.no_grad():
        feats = [model[0](b) for b in batches[:4]]
    loader = iter(batches)
    update_bn_stats(model, loader, num_iters=4)

    expected_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    # BN's running_var takes the unbiased batch variance; the average of those, as fvcore does
    expected_var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_var, expected_var, rtol=1e-12, atol=1e-12)
    assert bn.momentum == 0.3 and model.training
    assert torch.equal(next(loader), batches[4])  # took exactly num_iters batches

    none_momentum = nn.BatchNorm1d(2, momentum=None)
    update_bn_stats(none_momentum, [torch.randn(3, 2)], num_iters=1)
    assert none_momentum.momentum is None


def test_update_bn_stats_loader_too_short_raises_and_keeps_stats():
    model = nn.BatchNorm1d(2, momentum=0.1)
    model(torch.randn(5, 2) + 3)  # some statistics to keep
    before = {k: v.clone() for k, v in model.named_buffers()}
    with pytest.raises(RuntimeError, match="needs 3 batches, but the data loader stopped after 2"):
        update_bn_stats(model, [torch.randn(4, 2), torch.randn(4, 2)], num_iters=3)
    assert all(torch.equal(v, before[k]) for k, v in model.named_buffers())
    assert model.momentum == 0.1
    with pytest.raises(ValueError, match="num_iters must be >= 1"):
        update_bn_stats(model, [], num_iters=0)


def test_update_bn_stats_without_bn_is_a_no_op():
    untracked = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2, track_running_stats=False))
    before = {k: v.clone() for k, v in untracked.state_dict().items()}
    batches_read = []

    def loader():
        batches_read.append(1)
        yield torch.randn(4, 2)

    # nothing to update: the loader is not read and no parameter or buffer changes
    assert update_bn_stats(untracked, loader(), num_iters=5) is None
    assert batches_read == []
    after = untracked.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert untracked[1].running_mean is None and untracked[1].momentum == 0.1


# --- PreciseBN --------------------------------------------------------------------------------


class _Snapshot(HookBase):
    """Records the BN running mean in after_step: what a hook registered after PreciseBN sees."""

    def __init__(self, bn):
        self.bn, self.seen = bn, []

    def after_step(self):
        self.seen.append((self.trainer.iter, self.bn.running_mean.clone()))


def test_precise_bn_runs_every_period_and_at_the_last_iteration():
    trainer = _bn_trainer()
    model = trainer.model
    loader = _Counting(_batches(7, shift=2.0))
    snapshot = _Snapshot(model.bn)
    trainer.register_hooks([hooks.PreciseBN(2, model, loader, num_iter=3), snapshot])
    trainer.train(0, 5)
    # next_iter 2 and 4 (period), 5 (the last): three passes of three batches, one iterator
    assert len(loader.taken) == 9
    # the statistics are those of the final weights over the last pass's batches
    with torch.no_grad():
        feats = [model.lin(b) for b in loader.taken[6:]]
    expected = torch.stack([f.mean(0) for f in feats]).mean(0)
    torch.testing.assert_close(model.bn.running_mean, expected)
    expected_var = torch.stack([f.var(0) for f in feats]).mean(0)
    torch.testing.assert_close(model.bn.running_var, expected_var)
    assert model.bn.momentum == 0.25 and model.training
    # hooks after it (checkpointer, evaluation) see the precise statistics at the last iteration
    assert snapshot.seen[-1][0] == 4 and torch.equal(snapshot.seen[-1][1], model.bn.running_mean)
    # the model's scalars from the precise-BN passes did not go into training's storage
    assert [it for _, it in trainer.storage.history("probe").values()] == [0, 1, 2, 3, 4]


def test_precise_bn_period_zero_runs_once_at_the_end():
    trainer = _bn_trainer()
    loader = _Counting(_batches(3))
    trainer.register_hooks([hooks.PreciseBN(0, trainer.model, loader, num_iter=2)])
    trainer.train(0, 4)
    assert len(loader.taken) == 2


def test_precise_bn_is_disabled_without_training_mode_bn(hook_logs):
    class _Untouchable:
        def __iter__(self):
            raise AssertionError("the loader of a disabled PreciseBN must not be read")

    model = nn.Sequential(nn.Linear(2, 2), FrozenBatchNorm2d(2))
    hook = hooks.PreciseBN(1, model, _Untouchable(), num_iter=2)
    assert any("PreciseBN is disabled" in m for m in hook_logs)
    hook.update_stats()  # nothing happens


def test_precise_bn_loader_running_out_is_an_error():
    trainer = _bn_trainer()
    trainer.register_hooks([hooks.PreciseBN(0, trainer.model, [torch.randn(4, 2)], num_iter=2)])
    with pytest.raises(RuntimeError, match="stopped after 1"):
        trainer.train(0, 2)


# --- BestCheckpointer -------------------------------------------------------------------------


class _SpyCheckpointer(Checkpointer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.saved: list[tuple[str, dict]] = []

    def save(self, name, **kwargs):
        self.saved.append((name, kwargs))
        super().save(name, **kwargs)


def _best_run(tmp_path, values, *, mode="max", metric="val/AP", max_iter=7):
    """EvalHook every 2 iterations (after 1, 3, 5 and after training at 7) giving ``values``
    (None: an evaluation that reports nothing), then a BestCheckpointer on ``metric``."""
    trainer = _bn_trainer()
    results = iter(values)

    def evaluate():
        value = next(results)
        return {} if value is None else {"val": {"AP": value}}

    checkpointer = _SpyCheckpointer(trainer.model, str(tmp_path))
    best = hooks.BestCheckpointer(2, checkpointer, metric, mode=mode)
    trainer.register_hooks([hooks.EvalHook(2, evaluate), best])
    trainer.train(0, max_iter)
    return best, checkpointer


def test_best_checkpointer_saves_only_on_improvement(tmp_path):
    best, ckpt = _best_run(tmp_path, [1.0, 3.0, 2.0, 5.0])
    # first evaluation, then each better one; the final evaluation is recorded at max_iter
    assert ckpt.saved == [
        ("model_best", {"iteration": 1}),
        ("model_best", {"iteration": 3}),
        ("model_best", {"iteration": 7}),
    ]
    assert (best.best_metric, best.best_iter) == (5.0, 7)
    assert torch.load(tmp_path / "model_best.pth", weights_only=True)["iteration"] == 7
    assert best.state_dict() == {"best_metric": 5.0, "best_iter": 7}


def test_best_checkpointer_mode_min(tmp_path):
    best, ckpt = _best_run(tmp_path, [1.0, 3.0, 0.5, 0.7], mode="min")
    assert [kw["iteration"] for _, kw in ckpt.saved] == [1, 5]
    assert (best.best_metric, best.best_iter) == (0.5, 5)
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        hooks.BestCheckpointer(2, ckpt, "val/AP", mode="maximum")


def test_best_checkpointer_skips_stale_missing_and_nan_metrics(tmp_path, hook_logs):
    # the 2nd evaluation reports nothing: val/AP is still the one from iteration 1
    _, ckpt = _best_run(tmp_path / "stale", [1.0, None, 4.0, float("nan")])
    assert [kw["iteration"] for _, kw in ckpt.saved] == [1, 5]
    assert any("recorded at iteration 1" in m and "iteration 3" in m for m in hook_logs)
    assert any("is nan" in m for m in hook_logs)

    _, ckpt = _best_run(tmp_path / "missing", [1.0, 2.0, 3.0, 4.0], metric="val/AR")
    assert ckpt.saved == [] and not (tmp_path / "missing" / "model_best.pth").exists()
    assert any("'val/AR' was not found" in m for m in hook_logs)


def test_best_checkpointer_state_survives_a_resume(tmp_path):
    best, _ = _best_run(tmp_path / "a", [1.0, 3.0, 2.0, 5.0])
    resumed = hooks.BestCheckpointer(2, _SpyCheckpointer(nn.Linear(1, 1), str(tmp_path / "b")), "val/AP")
    resumed.load_state_dict(best.state_dict())
    assert (resumed.best_metric, resumed.best_iter) == (5.0, 7)


# --- profilers --------------------------------------------------------------------------------


def test_torch_profiler_writes_chrome_traces_for_enabled_iterations(tmp_path):
    trainer = _bn_trainer()
    trainer.register_hooks(
        [hooks.TorchProfiler(lambda t: t.iter == 1, str(tmp_path), save_tensorboard=False)]
    )
    trainer.train(0, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["profiler-trace-iter1.json"]
    trace = json.loads((tmp_path / "profiler-trace-iter1.json").read_text())
    assert trace["traceEvents"]


def test_torch_profiler_tensorboard_trace_dir(tmp_path):
    trainer = _bn_trainer()
    trainer.register_hooks([hooks.TorchProfiler(lambda t: t.iter in (0, 2), str(tmp_path))])
    trainer.train(0, 3)
    log_dir = tmp_path / "log"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]
    assert sorted(p.name for p in log_dir.iterdir()) == [
        "profiler-tensorboard-iter0",
        "profiler-tensorboard-iter2",
    ]
    for d in log_dir.iterdir():
        (trace,) = d.iterdir()
        assert trace.name.startswith("worker0") and trace.name.endswith(".pt.trace.json")
        assert json.loads(trace.read_text())["traceEvents"]


def test_autograd_profiler_writes_chrome_traces(tmp_path):
    with pytest.warns(DeprecationWarning, match="TorchProfiler"):
        hook = hooks.AutogradProfiler(lambda t: t.iter % 2 == 0, str(tmp_path), use_cuda=False)
    trainer = _bn_trainer()
    trainer.register_hooks([hook])
    trainer.train(0, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "profiler-trace-iter0.json",
        "profiler-trace-iter2.json",
    ]
    assert json.loads((tmp_path / "profiler-trace-iter2.json").read_text())["traceEvents"]


def test_profiler_is_stopped_when_the_step_raises(tmp_path):
    class _Boom(HookBase):
        def after_step(self):
            raise RuntimeError("boom")

    profiler = hooks.TorchProfiler(lambda t: True, str(tmp_path), save_tensorboard=False)
    trainer = _bn_trainer()
    # _Boom runs before the profiler's after_step: the step never finishes
    trainer.register_hooks([_Boom(), profiler])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train(0, 2)
    assert profiler._profiler is None and not list(tmp_path.iterdir())


# --- TorchMemoryStats -------------------------------------------------------------------------


def test_torch_memory_stats_does_nothing_without_cuda(monkeypatch, hook_logs):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_cuda(*args, **kwargs):
        raise AssertionError("CUDA memory queried without CUDA")

    for name in (
        "max_memory_reserved",
        "memory_reserved",
        "max_memory_allocated",
        "memory_allocated",
        "memory_summary",
        "reset_peak_memory_stats",
    ):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    trainer = _bn_trainer()
    trainer.register_hooks([hooks.TorchMemoryStats(period=1, max_runs=3)])
    trainer.train(0, 4)
    assert hook_logs == []


def test_torch_memory_stats_logs_every_period_at_most_max_runs(monkeypatch, hook_logs):
    mb = 1024 * 1024
    resets = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 40 * mb)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda: 30 * mb)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 20 * mb)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda: 10 * mb)
    monkeypatch.setattr(torch.cuda, "memory_summary", lambda: "FAKE SUMMARY")
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: resets.append(1))
    trainer = _bn_trainer()
    trainer.register_hooks([hooks.TorchMemoryStats(period=2, max_runs=2)])
    trainer.train(0, 7)
    stats = [m for m in hook_logs if "max_reserved_mem" in m]
    assert [m.split()[1] for m in stats] == ["1", "3"]  # iterations 1 and 3, then max_runs reached
    assert "max_reserved_mem: 40MB" in stats[0] and "allocated_mem: 10MB" in stats[0]
    assert sum("FAKE SUMMARY" in m for m in hook_logs) == 1
    assert len(resets) == 2


# --- DefaultTrainer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_names(tmp_path_factory):
    from det.data import DatasetCatalog
    from det.data.shapes import ShapesConfig, register_shapes

    names = (f"pbn_train_{uuid.uuid4().hex[:6]}", f"pbn_val_{uuid.uuid4().hex[:6]}")
    register_shapes(
        ShapesConfig(
            num_train=4,
            num_val=2,
            seed=3,
            min_image_size=64,
            max_image_size=72,
            min_shape_size=16,
            max_shape_size=30,
        ),
        tmp_path_factory.mktemp("shapes"),
        names=names,
    )
    yield names
    for n in names:
        DatasetCatalog.remove(n)


def _tiny_trainer(names, output_dir, *opts):
    from det.core.config import get_cfg
    from det.engine.demo import DEMO_CONFIG
    from det.engine.train.defaults import DefaultTrainer

    class _Trainer(DefaultTrainer):
        progress_bar = False

    cfg = get_cfg()
    cfg.merge_from_file(str(DEMO_CONFIG))  # + a ResNet with trainable BN (the demo's has GroupNorm)
    cfg.merge_from_list(
        [
            "DATASETS.TRAIN",
            (names[0],),
            "DATASETS.TEST",
            (names[1],),
            "INPUT.MIN_SIZE_TRAIN",
            (64,),
            "INPUT.MAX_SIZE_TRAIN",
            96,
            "MODEL.FPN.OUT_CHANNELS",
            16,
            "MODEL.ROI_BOX_HEAD.FC_DIM",
            16,
            "MODEL.ROI_MASK_HEAD.CONV_DIM",
            8,
            "MODEL.RESNETS.NORM",
            "BN",
            # narrower than GroupNorm's 32 groups: no norm in the FPN and the mask head
            "MODEL.FPN.NORM",
            "",
            "MODEL.ROI_MASK_HEAD.NORM",
            "",
            "SOLVER.IMS_PER_BATCH",
            2,
            "OUTPUT_DIR",
            str(output_dir),
            *opts,
        ]
    )
    return _Trainer(cfg)


def test_default_trainer_registers_precise_bn_after_lr_scheduler(shapes_names, tmp_path):
    trainer = _tiny_trainer(
        shapes_names,
        tmp_path,
        "TEST.PRECISE_BN.ENABLED",
        True,
        "TEST.PRECISE_BN.NUM_ITER",
        7,
        "TEST.EVAL_PERIOD",
        50,
    )
    names = [type(h).__name__ for h in trainer._hooks]
    assert names[:4] == ["IterationTimer", "LRScheduler", "PreciseBN", "PeriodicCheckpointer"]
    assert names.index("PreciseBN") < names.index("EvalHook")
    precise = trainer._hooks[2]
    assert (precise._period, precise._num_iter, precise._model) == (50, 7, trainer.model)
    assert not precise._disabled and precise._data_loader is not trainer.data_loader

    off = _tiny_trainer(shapes_names, tmp_path)  # TEST.PRECISE_BN.ENABLED defaults to False
    assert "PreciseBN" not in [type(h).__name__ for h in off._hooks]
    frozen = _tiny_trainer(
        shapes_names, tmp_path, "TEST.PRECISE_BN.ENABLED", True, "MODEL.RESNETS.NORM", "FrozenBN"
    )  # no BN layer in training mode: not registered
    assert "PreciseBN" not in [type(h).__name__ for h in frozen._hooks]


def test_hooks_module_exports_the_new_hooks():
    assert {"PreciseBN", "BestCheckpointer", "TorchProfiler", "AutogradProfiler", "TorchMemoryStats"} <= set(
        hooks.__all__
    )
    assert all(isinstance(getattr(hooks, n), type) for n in hooks.__all__)
