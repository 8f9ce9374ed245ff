"""Converter plugins rewrite foreign checkpoints before matching."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from det.checkpoint import (
    DetectionCheckpointer,
    apply_converters,
    register_converter,
    registered_converters,
    unregister_converter,
)


@pytest.fixture(autouse=True)
def clean_registry():
    before = registered_converters()
    yield
    for name in registered_converters():
        if name not in before:
            unregister_converter(name)


def toy_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.stem = nn.Module()
    model.backbone.stem.conv1 = nn.Conv2d(3, 4, 3, bias=False)
    model.backbone.res2 = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False))
    return model


def torchvision_style(checkpoint):
    """In-test converter: names like torchvision's ResNet ("conv1.weight", "layer1.0.weight")."""
    model = checkpoint["model"]
    if "conv1.weight" not in model or not any(k.startswith("layer1.") for k in model):
        return None
    renamed = {}
    for k, v in model.items():
        k = k.replace("layer1.", "res2.")
        if k.startswith("conv1."):
            k = "stem." + k
        renamed[k] = v
    return {"model": renamed, "__author__": "torchvision", "matching_heuristics": True}


def write_torchvision_file(tmp_path):
    torch.manual_seed(7)
    state = {"conv1.weight": torch.randn(4, 3, 3, 3), "layer1.0.weight": torch.randn(4, 4, 1, 1),
             "fc.weight": torch.randn(10, 4)}
    path = tmp_path / "resnet.pth"
    torch.save(state, path)
    return path, state


def test_registered_converter_rewrites_before_matching(tmp_path, caplog):
    path, state = write_torchvision_file(tmp_path)
    register_converter("torchvision-resnet", torchvision_style)
    model = toy_model()
    extra = DetectionCheckpointer(model).load(str(path))
    assert extra == {"__author__": "torchvision", "matching_heuristics": True}
    assert torch.equal(model.backbone.stem.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.backbone.res2[0].weight, state["layer1.0.weight"])
    assert "fc.weight" in caplog.text  # reported as unused


def test_without_the_converter_nothing_matches(tmp_path):
    path, _ = write_torchvision_file(tmp_path)
    model = toy_model()
    before = model.backbone.stem.conv1.weight.clone()
    DetectionCheckpointer(model).load(str(path))
    assert torch.equal(model.backbone.stem.conv1.weight, before)


def test_first_recognising_converter_wins_and_none_passes_on():
    calls = []

    def declines(ckpt):
        calls.append("declines")
        return None

    def accepts(ckpt):
        calls.append("accepts")
        return {"model": {"a": torch.zeros(1)}}

    def never(ckpt):
        calls.append("never")
        return {"model": {}}

    for name, fn in [("declines", declines), ("accepts", accepts), ("never", never)]:
        register_converter(name, fn)
    result, name = apply_converters({"model": {"x": torch.zeros(1)}})
    assert name == "accepts" and list(result["model"]) == ["a"]
    assert calls == ["declines", "accepts"]
    assert registered_converters()[-3:] == ["declines", "accepts", "never"]


def test_no_converter_returns_input_unchanged():
    checkpoint = {"model": {"x": torch.zeros(1)}}
    assert apply_converters(checkpoint) == (checkpoint, None)


def test_registration_errors():
    register_converter("dup", torchvision_style)
    register_converter("dup", torchvision_style)  # same function again: fine
    with pytest.raises(ValueError, match="already registered"):
        register_converter("dup", lambda c: None)
    with pytest.raises(TypeError, match="callable"):
        register_converter("bad", 42)
    with pytest.raises(ValueError, match="module:attribute"):
        register_converter("bad", "no_colon_here")
    with pytest.raises(KeyError, match="no checkpoint converter named 'missing'"):
        unregister_converter("missing")


def test_bad_converter_result_is_a_clear_error(tmp_path):
    path, _ = write_torchvision_file(tmp_path)
    register_converter("broken", lambda ckpt: {"weights": {}})
    with pytest.raises(TypeError, match="converter 'broken' must return None or a dict with a 'model' mapping"):
        DetectionCheckpointer(toy_model()).load(str(path))


def test_failing_converter_is_named(tmp_path):
    path, _ = write_torchvision_file(tmp_path)

    def explodes(ckpt):
        raise KeyError("boom")

    register_converter("explodes", explodes)
    with pytest.raises(RuntimeError, match=r"converter 'explodes' failed on .*resnet\.pth"):
        DetectionCheckpointer(toy_model()).load(str(path))


def test_lazy_module_attribute_converter(tmp_path, monkeypatch):
    module = types.ModuleType("fake_det_plugin_converters")
    module.convert = torchvision_style
    monkeypatch.setitem(sys.modules, "fake_det_plugin_converters", module)
    register_converter("lazy", "fake_det_plugin_converters:convert")
    path, state = write_torchvision_file(tmp_path)
    model = toy_model()
    DetectionCheckpointer(model).load(str(path))
    assert torch.equal(model.backbone.res2[0].weight, state["layer1.0.weight"])

    register_converter("unimportable", "no_such_module_anywhere:convert")
    with pytest.raises(ImportError, match="'unimportable' points to no_such_module_anywhere:convert"):
        apply_converters({"model": {}})
