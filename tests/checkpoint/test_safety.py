"""Loading runs no code from the file, and a failed load leaves the model as it was."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from det.checkpoint import CheckpointLoadError, DetectionCheckpointer, UnsafeCheckpointError
from det.checkpoint.serialization import SAFE_PICKLE_GLOBALS, load_pickle_file


class Payload:
    """Unpickling this would create the marker file (via os.system)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class PayloadByOpen:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before):
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("payload_cls", [Payload, PayloadByOpen])
def test_malicious_pkl_is_refused_and_never_runs(payload_cls, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {"0.weight": payload_cls(str(marker))}, "__author__": "x"}, f)
    model = small_model()
    before = snapshot(model)
    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load .*model_final\.pkl.*asks to import"):
        DetectionCheckpointer(model).load(str(path))
    assert not marker.exists()
    assert_unchanged(model, before)


def test_malicious_caffe2_pkl_inside_blobs_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "R-50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.zeros(3), "x": Payload(str(marker))}}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os|nt)\.system"):
        DetectionCheckpointer(small_model()).load(str(path))
    assert not marker.exists()


def test_malicious_pth_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    torch.save({"model": {"0.weight": torch.zeros(4, 3, 3, 3)}, "evil": Payload(str(marker))}, path)
    model = small_model()
    before = snapshot(model)
    with pytest.raises(UnsafeCheckpointError, match=r"model\.pth"):
        DetectionCheckpointer(model).load(str(path))
    assert not marker.exists()
    assert_unchanged(model, before)


def test_pkl_with_torch_tensors_is_refused(tmp_path):
    path = tmp_path / "tensors.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {"w": torch.zeros(2)}, "__author__": "x"}, f)
    with pytest.raises(UnsafeCheckpointError, match="torch"):
        load_pickle_file(str(path))


def test_allowed_globals_are_exactly_numpy_reconstruction():
    assert {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("collections", "OrderedDict"), ("_codecs", "encode"),
    } == SAFE_PICKLE_GLOBALS


@pytest.mark.parametrize("protocol", [2, 4])
def test_numpy1_and_numpy2_pickles_load_without_warnings(protocol, tmp_path):
    from collections import OrderedDict

    data = OrderedDict(w=np.arange(6, dtype=np.float32).reshape(2, 3), s=np.float32(2.5), n=np.int64(3))
    raw = pickle.dumps(data, protocol=protocol)
    if protocol == 2:
        # What numpy 1.x wrote: the same pickle with the old module name.
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"numpy.core.multiarray" in raw
    path = tmp_path / "x.pkl"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_pickle_file(str(path))
    assert list(loaded) == ["w", "s", "n"]
    assert loaded["w"].tolist() == [[0, 1, 2], [3, 4, 5]] and loaded["w"].dtype == np.float32
    assert loaded["s"] == np.float32(2.5) and loaded["n"] == 3


def test_python2_latin1_pickle_loads(tmp_path):
    # Protocol 2 pickle of {'conv1_w': float32[2]} as Python 2 wrote it: str (not bytes) payload.
    array = np.array([1.0, -2.0], np.float32)
    raw = (b"\x80\x02}q\x00U\x07conv1_wq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03"
           b"K\x00\x85U\x01b\x87Rq\x04(K\x01K\x02\x85cnumpy\ndtype\nq\x05U\x02f4K\x00K\x01\x87Rq\x06(K\x03U\x01<NNNJ"
           b"\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x08" + array.tobytes() + b"tbs.")
    path = tmp_path / "py2.pkl"
    path.write_bytes(raw)
    loaded = load_pickle_file(str(path))
    assert loaded["conv1_w"].tolist() == [1.0, -2.0]


def write_valid(tmp_path, kind, model):
    state = {k: v.clone() + 1 for k, v in model.state_dict().items()}
    if kind == "pth":
        path = tmp_path / "model.pth"
        torch.save({"model": state}, path)
    elif kind == "pkl":
        path = tmp_path / "model.pkl"
        with open(path, "wb") as f:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "t",
                         "matching_heuristics": True}, f)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "model.safetensors"
        save_file(state, str(path))
    return path


@pytest.mark.parametrize("kind", ["pth", "pkl", "safetensors"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.0])
def test_truncated_file_gives_clear_error_and_untouched_model(kind, keep, tmp_path):
    model = small_model()
    path = write_valid(tmp_path, kind, model)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    before = snapshot(model)
    with pytest.raises(CheckpointLoadError, match=rf"{path.name}.*(truncated or corrupt|Cannot read)"):
        DetectionCheckpointer(model).load(str(path))
    assert_unchanged(model, before)


@pytest.mark.parametrize("suffix", [".pth", ".pkl", ".safetensors"])
def test_garbage_file_gives_clear_error(suffix, tmp_path):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"this is not a checkpoint at all\n" * 10)
    model = small_model()
    before = snapshot(model)
    with pytest.raises(CheckpointLoadError, match=f"garbage{suffix}"):
        DetectionCheckpointer(model).load(str(path))
    assert_unchanged(model, before)


def test_non_tensor_entry_is_refused_before_touching_the_model(tmp_path):
    model = small_model()
    state = {k: v + 1 for k, v in model.state_dict().items()}
    state["2.bias"] = [1.0, 2.0]
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    before = snapshot(model)
    with pytest.raises(CheckpointLoadError, match=r"2\.bias: list"):
        DetectionCheckpointer(model).load(str(path))
    assert_unchanged(model, before)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        DetectionCheckpointer(small_model()).load(str(tmp_path / "nope.pth"))
