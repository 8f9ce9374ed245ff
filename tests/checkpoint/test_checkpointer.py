"""Checkpointer / DetectionCheckpointer / PeriodicCheckpointer behave as fvcore's and detectron2's."""

from __future__ import annotations

import logging
import os
import sys
from collections import OrderedDict

import pytest
import torch
from torch import nn

from det.checkpoint import (
    Checkpointer,
    DetectionCheckpointer,
    IncompatibleCheckpointError,
    PeriodicCheckpointer,
    get_missing_parameters_message,
    get_unexpected_parameters_message,
)


class Net(nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2)
        self.register_buffer("pixel_mean", torch.zeros(3, 1, 1), persistent=False)

    def forward(self, x):
        return self.head(self.backbone(x).flatten(1))


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def make_optimizer(model):
    """An SGD optimizer after one step, so its state holds momentum tensors."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return opt


def test_save_writes_pth_and_last_checkpoint_and_load_returns_extra(tmp_path):
    model = Net(0)
    optimizer = make_optimizer(model)
    checkpointer = Checkpointer(model, str(tmp_path), optimizer=optimizer)
    checkpointer.save("model_0000009", iteration=9, note="hi")

    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    saved = torch.load(tmp_path / "model_0000009.pth", weights_only=True)
    assert sorted(saved) == ["iteration", "model", "note", "optimizer"]
    assert checkpointer.has_checkpoint()
    assert checkpointer.get_checkpoint_file() == str(tmp_path / "model_0000009.pth")
    assert checkpointer.get_all_checkpoint_files() == [str(tmp_path / "model_0000009.pth")]

    other = Net(1)
    other_opt = torch.optim.SGD(other.parameters(), lr=0.5, momentum=0.9)
    extra = Checkpointer(other, str(tmp_path), optimizer=other_opt).load(str(tmp_path / "model_0000009.pth"))
    assert extra == {"iteration": 9, "note": "hi"}
    assert states_equal(model, other)
    assert other_opt.state_dict()["param_groups"][0]["lr"] == 0.1


def test_resume_or_load(tmp_path):
    model = Net(0)
    Checkpointer(model, str(tmp_path), optimizer=make_optimizer(model)).save("model_final", iteration=3)
    weights = tmp_path / "weights.pth"
    torch.save({"model": Net(5).state_dict()}, weights)

    fresh = Net(1)
    opt = torch.optim.SGD(fresh.parameters(), lr=0.5)
    # resume=True with a last_checkpoint: that file, with the optimizer.
    assert Checkpointer(fresh, str(tmp_path), optimizer=opt).resume_or_load(str(weights), resume=True) == {"iteration": 3}
    assert states_equal(fresh, model) and opt.param_groups[0]["lr"] == 0.1

    # resume=False: the given weights, model only (checkpointables untouched).
    opt2 = torch.optim.SGD(fresh.parameters(), lr=0.5)
    Checkpointer(fresh, str(tmp_path), optimizer=opt2).resume_or_load(str(weights), resume=False)
    assert states_equal(fresh, Net(5)) and opt2.param_groups[0]["lr"] == 0.5

    # resume=True but nothing to resume from: the given weights.
    fresh2 = Net(1)
    Checkpointer(fresh2, str(tmp_path / "empty")).resume_or_load(str(weights), resume=True)
    assert states_equal(fresh2, Net(5))


def test_no_saving_without_dir_or_with_save_to_disk_false(tmp_path):
    Checkpointer(Net(), "").save("x")
    Checkpointer(Net(), str(tmp_path), save_to_disk=False).save("x")
    assert os.listdir(tmp_path) == []
    assert not Checkpointer(Net(), str(tmp_path)).has_checkpoint()
    assert Checkpointer(Net(), str(tmp_path)).get_checkpoint_file() == ""


def test_empty_path_loads_nothing():
    model = Net(0)
    assert DetectionCheckpointer(model).load("") == {}
    assert states_equal(model, Net(0))


def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        Checkpointer({"w": 1})
    with pytest.raises(TypeError, match=r"checkpointable 'scheduler'.*state_dict"):
        Checkpointer(Net(), scheduler=object())
    with pytest.raises(ValueError, match="save_format must be one of"):
        Checkpointer(Net(), save_format="npz")
    with pytest.raises(ValueError, match="plain file name"):
        Checkpointer(Net(), str(tmp_path)).save("sub/model")
    checkpointer = Checkpointer(Net(), str(tmp_path))
    checkpointer.save("m")
    with pytest.raises(ValueError, match=r"unknown checkpointables \['optimizer'\]"):
        checkpointer.load(str(tmp_path / "m.pth"), checkpointables=["optimizer"])


def test_dataparallel_model_is_unwrapped_and_module_prefix_stripped(tmp_path):
    inner = Net(0)
    checkpointer = Checkpointer(nn.DataParallel(inner), str(tmp_path))
    assert checkpointer.model is inner
    checkpointer.save("m")
    assert all(not k.startswith("module.") for k in torch.load(tmp_path / "m.pth", weights_only=True)["model"])

    # A file saved from a wrapped model's own state_dict() has every key under "module.".
    torch.save({"model": nn.DataParallel(Net(3)).state_dict()}, tmp_path / "ddp.pth")
    target = Net(1)
    DetectionCheckpointer(target).load(str(tmp_path / "ddp.pth"), strict=True)
    assert states_equal(target, Net(3))


def test_distributed_data_parallel_model(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        inner = Net(0)
        ddp = nn.parallel.DistributedDataParallel(inner)
        checkpointer = DetectionCheckpointer(ddp, str(tmp_path))
        assert checkpointer.model is inner and checkpointer.save_to_disk  # rank 0 saves
        checkpointer.save("model_final")
        target = nn.parallel.DistributedDataParallel(Net(1))
        DetectionCheckpointer(target).load(str(tmp_path / "model_final.pth"), strict=True)
        assert states_equal(target.module, inner)
    finally:
        dist.destroy_process_group()


def test_missing_unexpected_and_shape_mismatch_are_reported_grouped(tmp_path, caplog):
    state = Net(3).state_dict()
    state["head.weight"] = torch.zeros(5, 4)  # wrong shape
    state["extra.block.weight"] = torch.zeros(1)
    state["extra.block.bias"] = torch.zeros(1)
    del state["backbone.1.running_mean"], state["backbone.1.running_var"]
    torch.save({"model": state}, tmp_path / "m.pth")

    model = Net(0)
    with caplog.at_level(logging.INFO, logger="det.checkpoint"):
        DetectionCheckpointer(model).load(str(tmp_path / "m.pth"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert warnings[0].startswith("Skip loading 1 parameters whose shapes differ")
    assert "  head.weight: (5, 4) in the checkpoint but (2, 4) in the model" in warnings[0]
    assert warnings[1] == ("Some model parameters or buffers are not found in the checkpoint:\n"
                           "  backbone.1.{running_mean, running_var}\n  head.weight")
    assert warnings[2] == ("The checkpoint state_dict contains keys that are not used by the model:\n"
                           "  extra.block.{weight, bias}")
    # Everything that fits was loaded.
    assert torch.equal(model.head.bias, Net(3).head.bias)
    assert torch.equal(model.backbone[0].weight, Net(3).backbone[0].weight)


def test_message_helpers():
    assert get_missing_parameters_message(["a.b.weight", "a.b.bias", "c"]) == (
        "Some model parameters or buffers are not found in the checkpoint:\n  a.b.{weight, bias}\n  c")
    assert get_unexpected_parameters_message(["x.y"]) == (
        "The checkpoint state_dict contains keys that are not used by the model:\n  x.y")


@pytest.mark.parametrize("via", ["argument", "constructor"])
def test_strict_raises_and_leaves_model_untouched(tmp_path, via):
    state = Net(3).state_dict()
    state["head.weight"] = torch.zeros(5, 4)
    state["unused.weight"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "m.pth")
    model = Net(0)
    with pytest.raises(IncompatibleCheckpointError) as info:
        if via == "argument":
            DetectionCheckpointer(model).load(str(tmp_path / "m.pth"), strict=True)
        else:
            DetectionCheckpointer(model, strict=True).load(str(tmp_path / "m.pth"))
    message = str(info.value)
    assert "the model was not changed" in message
    assert "head.weight: (5, 4) in the checkpoint but (2, 4) in the model" in message
    assert "  unused.weight" in message
    assert states_equal(model, Net(0))
    # strict=False overrides the constructor flag for one call.
    DetectionCheckpointer(model, strict=True).load(str(tmp_path / "m.pth"), strict=False)
    assert torch.equal(model.head.bias, Net(3).head.bias)


def test_detection_checkpointer_ignores_pixel_stats_and_cell_anchors(tmp_path, caplog):
    model = Net(0)
    model.register_buffer("pixel_std", torch.ones(3, 1, 1))  # persistent, absent from old files
    state = Net(3).state_dict()
    state["proposal_generator.anchor_generator.cell_anchors.0"] = torch.zeros(3, 4)
    torch.save({"model": state}, tmp_path / "m.pth")
    with caplog.at_level(logging.WARNING, logger="det.checkpoint"):
        DetectionCheckpointer(model).load(str(tmp_path / "m.pth"), strict=True)
    assert caplog.records == []
    # The plain Checkpointer has no such exceptions.
    with pytest.raises(IncompatibleCheckpointError, match="pixel_std"):
        Checkpointer(model).load(str(tmp_path / "m.pth"), strict=True)


def test_plain_state_dict_file_is_wrapped(tmp_path):
    torch.save(Net(3).state_dict(), tmp_path / "sd.pth")
    model = Net(0)
    assert DetectionCheckpointer(model).load(str(tmp_path / "sd.pth"), strict=True) == {}
    assert states_equal(model, Net(3))


class VersionProbe(nn.Module):
    """Records the module version its _load_from_state_dict is given (what upgrade hooks read)."""

    _version = 2

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2))
        self.seen_versions: list = []

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        self.seen_versions.append(local_metadata.get("version"))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)


@pytest.mark.parametrize("wrapped", [False, True])
def test_metadata_versions_reach_load_state_dict(tmp_path, wrapped):
    source = nn.Sequential(VersionProbe())
    state = (nn.DataParallel(source) if wrapped else source).state_dict()
    state._metadata["module.0" if wrapped else "0"]["version"] = 1  # an "old" file
    torch.save({"model": state}, tmp_path / "old.pth")
    model = nn.Sequential(VersionProbe())
    Checkpointer(model).load(str(tmp_path / "old.pth"), strict=True)
    assert model[0].seen_versions == [1]


def test_pycls_pyth_file(tmp_path):
    state = OrderedDict((f"trunk.{k}", v) for k, v in Net(3).state_dict().items())
    torch.save({"model_state": state, "epoch": 3}, tmp_path / "regnet.pyth")
    model = nn.Module()
    model.trunk = Net(0)
    extra = DetectionCheckpointer(model).load(str(tmp_path / "regnet.pyth"))
    assert extra == {"__author__": "pycls", "matching_heuristics": True}
    n = model.trunk.backbone[1].num_batches_tracked.item()
    assert n == 0  # num_batches_tracked entries are dropped, as detectron2 does
    assert torch.equal(model.trunk.head.weight, Net(3).head.weight)


def test_safetensors_round_trip(tmp_path):
    model = Net(0)
    checkpointer = DetectionCheckpointer(model, str(tmp_path), save_format="safetensors")
    checkpointer.save("model_final", iteration=12)
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.safetensors"
    assert checkpointer.get_all_checkpoint_files() == [str(tmp_path / "model_final.safetensors")]

    from safetensors.torch import load_file

    assert sorted(load_file(str(tmp_path / "model_final.safetensors"))) == sorted(model.state_dict())
    target = Net(1)
    assert DetectionCheckpointer(target).load(checkpointer.get_checkpoint_file(), strict=True) == {"iteration": 12}
    assert states_equal(target, model)


def test_safetensors_refuses_tensor_extras(tmp_path):
    model = Net(0)
    checkpointer = Checkpointer(model, str(tmp_path), save_format="safetensors", optimizer=make_optimizer(model))
    with pytest.raises(TypeError, match="save_format='pth'"):
        checkpointer.save("m")
    assert not (tmp_path / "m.safetensors").exists()


def test_safetensors_tied_weights(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    model[1].weight = model[0].weight
    Checkpointer(model, str(tmp_path), save_format="safetensors").save("tied")
    target = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    target[1].weight = target[0].weight
    Checkpointer(target).load(str(tmp_path / "tied.safetensors"), strict=True)
    assert torch.equal(target[0].weight, model[0].weight)


def test_safetensors_missing_gives_pip_command(tmp_path, monkeypatch):
    torch.save({"model": Net(0).state_dict()}, tmp_path / "m.pth")
    (tmp_path / "m.safetensors").write_bytes(b"x")
    for name in [m for m in sys.modules if m == "safetensors" or m.startswith("safetensors.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "safetensors", None)  # makes "import safetensors" fail
    with pytest.raises(ImportError, match=r"pip install 'det-checkpoint\[safetensors\]'"):
        Checkpointer(Net(0)).load(str(tmp_path / "m.safetensors"))
    with pytest.raises(ImportError, match=r"pip install 'det-checkpoint\[safetensors\]'"):
        Checkpointer(Net(0), str(tmp_path), save_format="safetensors").save("x")
    Checkpointer(Net(0)).load(str(tmp_path / "m.pth"))  # .pth needs no safetensors


def test_periodic_checkpointer(tmp_path):
    checkpointer = Checkpointer(Net(0), str(tmp_path))
    periodic = PeriodicCheckpointer(checkpointer, period=2, max_iter=9, max_to_keep=2)
    for iteration in range(9):
        periodic.step(iteration, lr=0.1)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000005.pth", "model_0000007.pth",
                                            "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["iteration"] == 8
    assert torch.load(tmp_path / "model_0000007.pth", weights_only=True)["lr"] == 0.1
    periodic.save("manual", iteration=100)
    assert (tmp_path / "last_checkpoint").read_text() == "manual.pth"


def test_periodic_checkpointer_keeps_final_and_prefix(tmp_path):
    checkpointer = Checkpointer(Net(0), str(tmp_path))
    periodic = PeriodicCheckpointer(checkpointer, period=1, max_iter=3, max_to_keep=1, file_prefix="ema")
    for iteration in range(3):
        periodic.step(iteration)
    assert sorted(os.listdir(tmp_path)) == ["ema_0000002.pth", "ema_final.pth", "last_checkpoint"]
    with pytest.raises(ValueError, match="period"):
        PeriodicCheckpointer(checkpointer, period=0)
    with pytest.raises(ValueError, match="max_to_keep"):
        PeriodicCheckpointer(checkpointer, period=1, max_to_keep=0)


def test_fvcore_style_subclass_overriding_load_model(tmp_path):
    calls = []

    class Mine(DetectionCheckpointer):
        def _load_model(self, checkpoint):
            calls.append(sorted(checkpoint["model"])[:1])
            return super()._load_model(checkpoint)

    torch.save({"model": Net(3).state_dict()}, tmp_path / "m.pth")
    model = Net(0)
    Mine(model).load(str(tmp_path / "m.pth"), strict=True)
    assert calls == [["backbone.0.bias"]] and states_equal(model, Net(3))


def test_strict_refuses_heuristic_shape_mismatch(tmp_path):
    import pickle

    state = {k: v.numpy() for k, v in Net(3).state_dict().items()}
    state["head.weight"] = state["head.weight"][:1]
    with open(tmp_path / "zoo.pkl", "wb") as f:
        pickle.dump({"model": state, "__author__": "t", "matching_heuristics": True}, f)
    model = Net(0)
    with pytest.raises(IncompatibleCheckpointError, match=r"head\.weight: \(1, 4\) in the checkpoint but \(2, 4\)"):
        DetectionCheckpointer(model).load(str(tmp_path / "zoo.pkl"), strict=True)
    assert states_equal(model, Net(0))


def test_plain_checkpointer_points_pkl_users_to_detection_checkpointer(tmp_path):
    import pickle

    with open(tmp_path / "zoo.pkl", "wb") as f:
        pickle.dump({"model": {}, "__author__": "t"}, f)
    with pytest.raises(ValueError, match="read by DetectionCheckpointer"):
        Checkpointer(Net(0)).load(str(tmp_path / "zoo.pkl"))
