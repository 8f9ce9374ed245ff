"""Loading without a second copy: memory-mapped zip checkpoints and ``load(..., assign=True)``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from det.checkpoint import Checkpointer, DetectionCheckpointer, serialization
from det.checkpoint.errors import IncompatibleCheckpointError, UnsafeCheckpointError


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


def _saved(tmp_path, seed=1, name="w.pth", **save_kwargs):
    torch.manual_seed(seed)
    src = _Net()
    path = tmp_path / name
    torch.save({"model": src.state_dict()}, path, **save_kwargs)
    return src, str(path)


def _storages(model):
    return [t.untyped_storage().data_ptr() for t in model.state_dict().values() if t.numel() > 0]


@pytest.fixture
def load_calls(monkeypatch):
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("mmap"))
        return real(*args, **kwargs)

    monkeypatch.setattr(serialization.torch, "load", spy)
    return calls


def test_zip_checkpoint_is_memory_mapped_and_legacy_is_read(tmp_path, load_calls):
    src, path = _saved(tmp_path)
    _, legacy = _saved(tmp_path, name="legacy.pth", _use_new_zipfile_serialization=False)
    for f in (path, legacy):
        model = _Net()
        Checkpointer(model).load(f)
        for k, v in src.state_dict().items():
            assert torch.equal(model.state_dict()[k], v), k
    assert load_calls == [True, False]


def test_default_load_copies_into_the_same_parameter_objects(tmp_path):
    src, path = _saved(tmp_path)
    model = _Net()
    params = list(model.parameters())
    ck = Checkpointer(model)
    ck.load(path)
    assert not ck.last_load_assigned
    assert all(a is b for a, b in zip(params, model.parameters(), strict=True))  # an optimizer stays valid
    assert torch.equal(model.fc.weight, src.fc.weight)


def test_assign_makes_the_loaded_tensors_the_parameters(tmp_path):
    src, path = _saved(tmp_path)
    model = _Net()
    model.conv.weight.requires_grad_(False)
    old = list(model.parameters())
    ck = Checkpointer(model)
    ck.load(path, assign=True)
    assert ck.last_load_assigned
    assert ck.last_incompatible_keys is not None and not any(ck.last_incompatible_keys)
    for k, v in src.state_dict().items():
        got = model.state_dict()[k]
        assert torch.equal(got, v) and got.dtype == v.dtype, k
    assert not any(a is b for a, b in zip(old, model.parameters(), strict=True))
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
    assert model.conv.weight.requires_grad is False and model.fc.weight.requires_grad is True
    assert isinstance(model.bn.running_mean, torch.Tensor) and not isinstance(model.bn.running_mean, nn.Parameter)
    assert len(set(_storages(model))) == len(_storages(model))
    # the weights are private to the model: changing them never touches the file
    before = Path(path).read_bytes()
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    assert Path(path).read_bytes() == before
    fresh = _Net()
    Checkpointer(fresh).load(path)
    assert torch.equal(fresh.fc.weight, src.fc.weight)


def test_assign_converts_dtype_and_layout_to_the_model(tmp_path):
    torch.manual_seed(0)
    src = _Net()
    sd = {k: v.double() for k, v in src.state_dict().items() if v.dtype == torch.float32}
    sd["fc.weight"] = src.fc.weight.detach().t().contiguous().t()  # same values, transposed strides
    sd["bn.num_batches_tracked"] = src.bn.num_batches_tracked
    torch.save({"model": sd}, tmp_path / "d.pth")
    model = _Net()
    ck = Checkpointer(model)
    ck.load(str(tmp_path / "d.pth"), assign=True)
    assert ck.last_load_assigned
    for k, v in model.state_dict().items():
        assert v.dtype == src.state_dict()[k].dtype, k
        assert v.stride() == src.state_dict()[k].stride(), k
        assert torch.equal(v, src.state_dict()[k].to(v.dtype)), k


def test_assign_into_a_model_built_on_the_meta_device(tmp_path):
    src, path = _saved(tmp_path)
    with torch.device("meta"):
        model = _Net()
    ck = Checkpointer(model)
    ck.load(path, assign=True)
    assert ck.last_load_assigned
    for k, v in src.state_dict().items():
        got = model.state_dict()[k]
        assert got.device.type == "cpu" and torch.equal(got, v), k


def test_assign_unshares_checkpoint_entries_that_share_memory(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    w = torch.randn(3, 3)
    big = torch.randn(100)
    sd = {"0.weight": w, "1.weight": w, "0.bias": big[:3], "1.bias": big[3:6]}
    torch.save({"model": sd}, tmp_path / "s.pth")
    ck = Checkpointer(model)
    ck.load(str(tmp_path / "s.pth"), assign=True)
    assert ck.last_load_assigned
    assert torch.equal(model[0].weight, w) and torch.equal(model[1].weight, w)
    assert torch.equal(model[1].bias, big[3:6])
    ptrs = _storages(model)
    assert len(set(ptrs)) == len(ptrs)
    for p in model.parameters():
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()


def test_assign_keeps_tied_weights_by_copying(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False))
    model[1].weight = model[0].weight
    w = torch.randn(3, 3)
    torch.save({"model": {"0.weight": w, "1.weight": w}}, tmp_path / "t.pth")
    ck = Checkpointer(model)
    ck.load(str(tmp_path / "t.pth"), assign=True)
    assert not ck.last_load_assigned
    assert model[1].weight is model[0].weight and torch.equal(model[0].weight, w)


def test_strict_refusal_with_assign_leaves_the_model_alone(tmp_path):
    _, path = _saved(tmp_path)
    model = nn.Sequential(_Net(), nn.Linear(2, 2))
    before = {k: (v, v.clone()) for k, v in model.state_dict(keep_vars=True).items()}
    ck = Checkpointer(model)
    with pytest.raises(IncompatibleCheckpointError):
        ck.load(path, strict=True, assign=True)
    after = model.state_dict(keep_vars=True)
    for k, (obj, value) in before.items():
        assert after[k] is obj and torch.equal(after[k], value), k
    assert ck.last_incompatible_keys is None and not ck.last_load_assigned


def test_partial_checkpoint_reports_missing_keys(tmp_path):
    torch.manual_seed(0)
    src = _Net()
    torch.save({"model": {k: v for k, v in src.state_dict().items() if k.startswith("conv.")}}, tmp_path / "p.pth")
    model = _Net()
    ck = Checkpointer(model)
    ck.load(str(tmp_path / "p.pth"), assign=True)
    report = ck.last_incompatible_keys
    assert report is not None
    # (torch's BatchNorm fills a missing num_batches_tracked itself)
    expected = sorted(k for k in model.state_dict() if not k.startswith("conv.") and k != "bn.num_batches_tracked")
    assert sorted(report.missing_keys) == expected
    assert torch.equal(model.conv.weight, src.conv.weight)
    ck.load("")
    assert ck.last_incompatible_keys is None


def test_shape_mismatch_is_reported_and_not_assigned(tmp_path):
    torch.manual_seed(0)
    sd = _Net().state_dict()
    sd["fc.weight"] = torch.randn(5, 4)
    torch.save({"model": sd}, tmp_path / "m.pth")
    model = _Net()
    old = model.fc.weight
    ck = DetectionCheckpointer(model)
    ck.load(str(tmp_path / "m.pth"), assign=True)
    assert [k for k, _, _ in ck.last_incompatible_keys.incorrect_shapes] == ["fc.weight"]
    assert model.fc.weight is old


def test_safetensors_with_assign(tmp_path):
    pytest.importorskip("safetensors")
    torch.manual_seed(0)
    src = _Net()
    saver = Checkpointer(src, str(tmp_path), save_format="safetensors")
    saver.save("m")
    model = _Net()
    ck = Checkpointer(model)
    ck.load(str(tmp_path / "m.safetensors"), assign=True)
    assert ck.last_load_assigned
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_hostile_zip_pickle_is_refused_with_mmap(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "x": Evil()}, path)
    model = nn.Linear(1, 2, bias=False)
    with pytest.raises(UnsafeCheckpointError):
        Checkpointer(model).load(str(path), assign=True)
    assert not (tmp_path / "pwned").exists()
