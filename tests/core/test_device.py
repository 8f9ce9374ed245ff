"""The device rule (det.core.device): MODEL.DEVICE naming a GPU this machine lacks runs on the CPU
with one warning line that names the key; a device that cannot exist is an error naming key and
value. build_model and DefaultPredictor follow it. CUDA's presence is patched, so these tests mean
the same on a machine with a GPU."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from det.core import DefaultPredictor, build_model, get_cfg
from det.core import device as device_rule
from det.core.emulated_cuda import EmulatedCUDA
from det.core.registry import META_ARCH_REGISTRY

WARNING = (
    "MODEL.DEVICE is 'cuda' but CUDA is not available on this machine; running on the CPU "
    "(set MODEL.DEVICE cpu to choose it and silence this)"
)


@pytest.fixture
def warnings_of_the_rule(monkeypatch):
    """The messages det.core.device logs, with its once-per-process memory cleared."""
    monkeypatch.setattr(device_rule, "_warned", set())
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    device_rule.logger.addHandler(handler)
    yield records
    device_rule.logger.removeHandler(handler)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cuda_without_cuda_runs_on_the_cpu_and_says_so_once(no_cuda, warnings_of_the_rule):
    assert device_rule.resolve_device("cuda") == torch.device("cpu")
    assert device_rule.resolve_device("cuda") == torch.device("cpu")
    assert warnings_of_the_rule == [WARNING]
    # another value or key is worth its own line
    assert device_rule.resolve_device("cuda:1", key="OTHER.DEVICE") == torch.device("cpu")
    assert len(warnings_of_the_rule) == 2 and warnings_of_the_rule[1].startswith("OTHER.DEVICE is 'cuda:1'")


def test_devices_that_exist_are_kept_as_asked(two_gpus, warnings_of_the_rule):
    assert device_rule.resolve_device("cpu") == torch.device("cpu")
    # no index stays no index: each process of a multi-GPU run means its current device
    assert device_rule.resolve_device("cuda") == torch.device("cuda")
    assert device_rule.resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert warnings_of_the_rule == []


def test_devices_that_cannot_exist_are_errors_naming_key_and_value(two_gpus):
    with pytest.raises(ValueError, match=r"MODEL.DEVICE is 'cuda:2' but this machine has 2 CUDA device\(s\), numbered from 0; set MODEL.DEVICE cuda:0"):
        device_rule.resolve_device("cuda:2")
    with pytest.raises(ValueError, match=r"MODEL.DEVICE is 'gpu', which is not a device PyTorch knows \(use cpu, cuda, or cuda:N for the N-th GPU\)$"):
        device_rule.resolve_device("gpu")
    assert device_rule.device_available("cuda:1") and not device_rule.device_available("cuda:2")


def test_under_emulation_cuda_needs_no_gpu(no_cuda, warnings_of_the_rule):
    with EmulatedCUDA():
        assert device_rule.resolve_device("cuda") == torch.device("cuda")
    assert warnings_of_the_rule == []


class _Tiny(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))

    def forward(self, batched_inputs):
        return [{"device": x["image"].device, "weight_device": self.weight.device} for x in batched_inputs]


@pytest.fixture
def tiny_cfg(tmp_path):
    META_ARCH_REGISTRY.register(_Tiny, name="_TestDeviceTiny")
    torch.save({"model": {"weight": torch.tensor([3.0, 4.0])}}, tmp_path / "w.pth")
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE = "_TestDeviceTiny"
    cfg.MODEL.WEIGHTS = str(tmp_path / "w.pth")
    assert cfg.MODEL.DEVICE == "cuda"  # detectron2's default, as in every zoo config
    return cfg


def test_build_model_and_predictor_with_a_stock_device_on_a_machine_without_cuda(
    tiny_cfg, no_cuda, warnings_of_the_rule
):
    assert build_model(tiny_cfg).weight.device.type == "cpu"
    predictor = DefaultPredictor(tiny_cfg)
    out = predictor(np.zeros((8, 8, 3), dtype=np.uint8))
    assert out == {"device": torch.device("cpu"), "weight_device": torch.device("cpu")}
    assert warnings_of_the_rule == [WARNING]
    assert tiny_cfg.MODEL.DEVICE == "cuda"  # the caller's config is not rewritten
