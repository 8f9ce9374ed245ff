"""Helpers for det.checkpoint tests: modules shaped like the golden checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from torch import nn

BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def module_from_state_dict(state_dict: Mapping[str, torch.Tensor], seed: int = 123) -> nn.Module:
    """A module tree whose state_dict has exactly these names and shapes (values random).

    Statistics (running_mean/var) become buffers, everything else parameters, as in a real model.
    """
    gen = torch.Generator().manual_seed(seed)
    root = nn.Module()
    for name, value in state_dict.items():
        *path, leaf = name.split(".")
        module = root
        for part in path:
            child = module._modules.get(part)
            if child is None:
                child = nn.Module()
                module.add_module(part, child)
            module = child
        if value.dtype.is_floating_point:
            tensor = torch.randn(value.shape, generator=gen, dtype=value.dtype)
        else:
            tensor = torch.zeros(value.shape, dtype=value.dtype)
        if leaf in BUFFER_SUFFIXES or not value.dtype.is_floating_point:
            module.register_buffer(leaf, tensor)
        else:
            module.register_parameter(leaf, nn.Parameter(tensor))
    return root


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model: nn.Module, expected: Mapping[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert sorted(state) == sorted(expected)
    for k, v in expected.items():
        assert torch.equal(state[k], v), k


@pytest.fixture(scope="session")
def golden_state(golden_dir: Path):
    """``golden_state(case)`` -> the golden ``model_final.pth`` state dict (cached per session)."""
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def get(case: str) -> dict[str, torch.Tensor]:
        if case not in cache:
            cache[case] = torch.load(golden_dir / case / "model_final.pth", weights_only=True)["model"]
        return cache[case]

    return get


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty download cache, set through $DET_CACHE."""
    path = tmp_path / "cache"
    monkeypatch.setenv("DET_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def helpers():
    """``helpers.module_from_state_dict``, ``helpers.snapshot``, ``helpers.assert_same_state``."""
    from types import SimpleNamespace

    return SimpleNamespace(module_from_state_dict=module_from_state_dict, snapshot=snapshot,
                           assert_same_state=assert_same_state)
