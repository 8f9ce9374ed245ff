"""LazyConfig, LazyCall and instantiate (det.core.config), as detectron2's ``config`` behaves.

These tests use small config files written here; the model-zoo files (which import
``detectron2.*``) are exercised in tests/compat.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from det.core.config import ConfigKeyError, LazyCall, LazyConfig, instantiate
from det.core.config.instantiate import _convert_target_to_string, dump_dataclass, locate
from det.core.config.lazy import ConfigImportError
from det.core.layers import ShapeSpec

L = LazyCall


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def config_tree(tmp_path: Path) -> Path:
    """A detectron2-style tree: common/ files imported relatively by a model config."""
    write(tmp_path / "common" / "optim.py", """
        import torch
        from det.core.config import LazyCall as L

        SGD = L(torch.optim.SGD)(params=None, lr=0.02, momentum=0.9)
        plain = dict(a=1, b=[1, 2])
    """)
    write(tmp_path / "common" / "models" / "conv.py", """
        import torch
        from det.core.config import LazyCall as L
        from det.core.layers import ShapeSpec

        model = L(torch.nn.Conv2d)(in_channels=3, out_channels=8, kernel_size=3)
        shape = L("builtins.dict")(spec=ShapeSpec(channels=8, stride=4))
    """)
    write(tmp_path / "Models" / "net.py", """
        from ..common.optim import SGD as optimizer, plain
        from ..common.models.conv import model, shape

        train = dict(max_iter=100, lr="${optimizer.lr}", output_dir="./output")
        model.out_channels = 16
        _private = dict(x=1)
        number = 3
    """)
    return tmp_path


# --- LazyCall and instantiate -------------------------------------------------------------------


def test_lazy_call_records_the_call_and_instantiate_makes_it():
    cfg = L(torch.nn.Conv2d)(in_channels=3, out_channels=8, kernel_size=3)
    assert isinstance(cfg, DictConfig)
    assert cfg._target_ is torch.nn.Conv2d and cfg.out_channels == 8
    cfg.out_channels = 4
    conv = instantiate(cfg)
    assert isinstance(conv, torch.nn.Conv2d) and conv.out_channels == 4 and conv.in_channels == 3


def test_instantiate_targets_by_name_nested_and_in_lists():
    cfg = L("torch.nn.ModuleList")(modules=[L("torch.nn.ReLU")(), {"_target_": torch.nn.Identity}])
    layers = instantiate(cfg)
    assert isinstance(layers, torch.nn.ModuleList)
    assert [type(m) for m in layers] == [torch.nn.ReLU, torch.nn.Identity]
    # a plain list and a ListConfig are instantiated item by item
    assert [type(x) for x in instantiate([L(torch.nn.ReLU)()])] == [torch.nn.ReLU]
    built = instantiate(ListConfig([L(torch.nn.ReLU)()], flags={"allow_objects": True}))
    assert isinstance(built, ListConfig) and isinstance(built[0], torch.nn.ReLU)


def test_instantiate_returns_what_it_cannot_build_unchanged():
    plain = OmegaConf.create({"a": 1, "inner": {"_target_": "torch.nn.ReLU"}})
    # detectron2's rule: a mapping without _target_ is not walked
    assert instantiate(plain) is plain
    assert instantiate(3) == 3 and instantiate("torch.nn.ReLU") == "torch.nn.ReLU"


def test_instantiate_resolves_relative_interpolations():
    cfg = OmegaConf.create({"num_classes": 5, "head": {"_target_": "builtins.dict", "n": "${..num_classes}"}},
                           flags={"allow_objects": True})
    assert instantiate(cfg.head) == {"n": 5}


def test_dataclass_values_survive_as_dataclasses():
    cfg = L("builtins.dict")(input_shape=ShapeSpec(channels=256, height=7, width=7))
    cfg.input_shape.channels = 128  # editable like any config node
    built = instantiate(cfg)
    assert built["input_shape"] == ShapeSpec(channels=128, height=7, width=7)
    assert type(built["input_shape"]) is ShapeSpec
    assert instantiate(dump_dataclass(ShapeSpec(1, 2, 3, 4))) == ShapeSpec(1, 2, 3, 4)


def test_instantiate_errors_name_the_key_and_target():
    cfg = OmegaConf.create({"model": {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 8,
                                      "kernel_size": 3, "bogus": 1}}, flags={"allow_objects": True})
    with pytest.raises(TypeError, match=r"Cannot instantiate config key 'model': torch\.nn\.modules\.conv\.Conv2d"
                                        r"\(\.\.\.\) raised TypeError: .*bogus"):
        instantiate(cfg.model)
    cfg = OmegaConf.create({"model": {"_target_": "builtins.dict",
                                      "backbone": {"_target_": "torch.nn.NoSuchLayer"}}})
    with pytest.raises(ImportError, match=r"config key 'model\.backbone': its _target_ 'torch\.nn\.NoSuchLayer' "
                                          r"cannot be imported .*torch\.nn has no attribute 'NoSuchLayer'"):
        instantiate(cfg.model)
    with pytest.raises(ImportError, match="no module 'nosuchpackage' is installed"):
        instantiate({"_target_": "nosuchpackage.Thing"})
    with pytest.raises(TypeError, match="is not callable"):
        instantiate({"_target_": 3})


def test_instantiate_reports_interpolation_cycles_and_missing_keys():
    cfg = OmegaConf.create({"a": "${b}", "b": "${a}", "m": {"_target_": "builtins.dict", "v": "${a}"}})
    with pytest.raises(ConfigKeyError, match=r"config key 'm': Recursive interpolation detected \(at m\.v\)"):
        instantiate(cfg.m)
    cfg = OmegaConf.create({"m": {"_target_": "builtins.dict", "v": "${nowhere}"}})
    with pytest.raises(KeyError, match="nowhere"):
        instantiate(cfg.m)


def test_other_exceptions_keep_their_type_with_a_note():
    cfg = OmegaConf.create({"opt": {"_target_": "torch.optim.SGD", "params": [], "lr": 0.1}})
    with pytest.raises(ValueError, match="empty parameter list") as info:
        instantiate(cfg.opt)
    assert any("config key 'opt'" in note for note in info.value.__notes__)


def test_locate_and_target_names():
    assert locate("torch.nn.Conv2d") is torch.nn.Conv2d
    assert locate("torch.optim.SGD") is torch.optim.SGD
    assert locate("dict") is dict
    assert locate("det.core.layers.ShapeSpec") is ShapeSpec
    with pytest.raises(ImportError, match=r"torch\.nn has no attribute 'Nope'"):
        locate("torch.nn.Nope")
    # the shortest path that is the same object
    assert _convert_target_to_string(ShapeSpec) == "det.core.layers.ShapeSpec"
    assert _convert_target_to_string(torch.nn.Conv2d) == "torch.nn.Conv2d"


# --- load -------------------------------------------------------------------------------------


def test_load_python_config_with_relative_imports(config_tree):
    cfg = LazyConfig.load(config_tree / "Models" / "net.py")
    assert set(cfg) == {"optimizer", "plain", "model", "shape", "train"}  # no _private, no number
    assert isinstance(cfg.plain, DictConfig) and cfg.plain.b == [1, 2]
    assert cfg.optimizer._target_ is torch.optim.SGD
    assert cfg.train.lr == 0.02  # interpolation across imported files
    assert cfg.model.out_channels == 16
    assert isinstance(instantiate(cfg.model), torch.nn.Conv2d)
    assert instantiate(cfg.shape) == {"spec": ShapeSpec(channels=8, stride=4)}


def test_each_load_executes_the_files_afresh(config_tree):
    first = LazyConfig.load(config_tree / "Models" / "net.py")
    first.optimizer.lr = 1.0
    second = LazyConfig.load(config_tree / "Models" / "net.py")
    assert second.optimizer.lr == 0.02


def test_load_keys(config_tree):
    path = config_tree / "Models" / "net.py"
    model = LazyConfig.load(path, "model")
    assert model.out_channels == 16
    model, train = LazyConfig.load(path, ("model", "train"))
    assert train.max_iter == 100
    assert LazyConfig.load(path, "number") == 3
    with pytest.raises(KeyError, match=r"net\.py has no top-level 'trian'; did you mean 'train'\?"):
        LazyConfig.load(path, "trian")


def test_load_rel_is_relative_to_the_calling_file(config_tree):
    write(config_tree / "Models" / "uses_rel.py", """
        from det.core.config import LazyConfig
        train = LazyConfig.load_rel("net.py", "train")
    """)
    assert LazyConfig.load(config_tree / "Models" / "uses_rel.py").train.max_iter == 100


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Config file .*missing\.py does not exist"):
        LazyConfig.load(tmp_path / "missing.py")
    with pytest.raises(ValueError, match="has to be a Python"):
        LazyConfig.load(write(tmp_path / "cfg.json", "{}"))
    bad = write(tmp_path / "bad.py", "x = dict(a=1\ny = 2\n")
    with pytest.raises(SyntaxError, match=r"Config file .*bad\.py has a syntax error, line 1") as info:
        LazyConfig.load(bad)
    assert info.value.filename == str(bad)
    with pytest.raises(ValueError, match=r"bad\.yaml is not a valid YAML config"):
        LazyConfig.load(write(tmp_path / "bad.yaml", "a: [1, 2\n"))


def test_import_failures_name_the_file_line_and_chain(tmp_path):
    write(tmp_path / "common" / "base.py", """
        import os

        from det.core.layers import NoSuchThing
    """)
    top = write(tmp_path / "configs" / "top.py", """
        # a model config
        from ..common.base import model
    """)
    with pytest.raises(ConfigImportError) as info:
        LazyConfig.load(top)
    message = str(info.value)
    assert f"Config file {tmp_path / 'common' / 'base.py'}, line 4: cannot import name 'NoSuchThing'" in message
    assert f"imported from {top}, line 3" in message
    assert isinstance(info.value, ImportError)


def test_relative_import_errors(tmp_path):
    missing = write(tmp_path / "a.py", "from .nothere import x\n")
    with pytest.raises(ImportError, match=r"the config file .*nothere\.py does not exist"):
        LazyConfig.load(missing)
    folder = write(tmp_path / "b.py", "from .sub import x\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ImportError, match="is a folder"):
        LazyConfig.load(folder)
    dot = write(tmp_path / "c.py", "from . import a\n")
    with pytest.raises(ImportError, match=r"'from \. import \.\.\.' is not supported"):
        LazyConfig.load(dot)
    write(tmp_path / "d.py", "y = dict(a=1)\n")
    no_name = write(tmp_path / "e.py", "from .d import x\n")
    with pytest.raises(ImportError, match=r"cannot import name 'x' from config file .*d\.py"):
        LazyConfig.load(no_name)


def test_import_cycles_are_refused_not_recursed(tmp_path):
    write(tmp_path / "a.py", "from .b import y\nx = dict(v=1)\n")
    write(tmp_path / "b.py", "from .a import x\ny = dict(v=2)\n")
    with pytest.raises(ConfigImportError, match=r"import each other in a cycle: .*a\.py -> .*b\.py -> .*a\.py"):
        LazyConfig.load(tmp_path / "a.py")


def test_errors_while_executing_a_config_get_a_note(tmp_path):
    path = write(tmp_path / "boom.py", "x = dict(a=1)\ny = 1 / 0\n")
    with pytest.raises(ZeroDivisionError) as info:
        LazyConfig.load(path)
    assert info.value.__notes__ == [f"(while executing config file {path}, line 2)"]


def test_the_import_patch_is_removed_after_loading(tmp_path):
    import builtins

    before = builtins.__import__
    with pytest.raises(ZeroDivisionError):
        LazyConfig.load(write(tmp_path / "boom.py", "1 / 0\n"))
    assert builtins.__import__ is before


# --- apply_overrides ----------------------------------------------------------------------------


def test_apply_overrides_parses_values_like_hydra(config_tree):
    cfg = LazyConfig.load(config_tree / "Models" / "net.py")
    LazyConfig.apply_overrides(cfg, [
        "train.max_iter=7", "optimizer.lr=1e-3", "train.output_dir=/tmp/out dir", "model.kernel_size=[3,5]",
        "plain.a=null", "optimizer.momentum=0", "train.lr=true", "model.out_channels='32'",
    ])
    assert cfg.train.max_iter == 7 and cfg.optimizer.lr == 0.001
    assert cfg.train.output_dir == "/tmp/out dir"
    assert list(cfg.model.kernel_size) == [3, 5] and cfg.plain.a is None
    assert cfg.optimizer.momentum == 0 and cfg.train.lr is True
    assert cfg.model.out_channels == "32"


def test_apply_overrides_refuses_unknown_keys_with_the_closest(config_tree):
    cfg = LazyConfig.load(config_tree / "Models" / "net.py")
    with pytest.raises(ConfigKeyError, match=r"no key 'train\.max_itr' \(no 'max_itr' under train; did you mean "
                                             r"train\.max_iter\?\)\. Use '\+train\.max_itr=\.\.\.'") as info:
        LazyConfig.apply_overrides(cfg, ["train.max_itr=3"])
    assert info.value.suggestion == "train.max_iter" and isinstance(info.value, KeyError)
    with pytest.raises(ConfigKeyError, match=r"no 'trian' under the top level; did you mean train"):
        LazyConfig.apply_overrides(cfg, ["trian.max_iter=3"])
    with pytest.raises(ConfigKeyError, match=r"'train\.max_iter' is a single value \(int\), not a config section"):
        LazyConfig.apply_overrides(cfg, ["train.max_iter.x=3"])
    assert cfg.train.max_iter == 100  # nothing changed


def test_apply_overrides_add_delete_and_parse_errors(config_tree):
    cfg = LazyConfig.load(config_tree / "Models" / "net.py")
    LazyConfig.apply_overrides(cfg, ["+train.seed=5", "++train.max_iter=9", "++train.other=1", "~plain.b"])
    assert cfg.train.seed == 5 and cfg.train.max_iter == 9 and cfg.train.other == 1 and "b" not in cfg.plain
    with pytest.raises(ValueError, match="exists already"):
        LazyConfig.apply_overrides(cfg, ["+train.seed=6"])
    with pytest.raises(ValueError, match=r"Cannot parse config override 'train max_iter'"):
        LazyConfig.apply_overrides(cfg, ["train max_iter"])
    with pytest.raises(ValueError, match="is a sweep"):
        LazyConfig.apply_overrides(cfg, ["train.max_iter=1,2"])
    with pytest.raises(TypeError, match="list of 'key=value' strings"):
        LazyConfig.apply_overrides(cfg, "train.max_iter=1")


def test_overriding_a_lazy_call_merges_into_it(config_tree):
    cfg = LazyConfig.load(config_tree / "Models" / "net.py")
    LazyConfig.apply_overrides(cfg, ["model={out_channels:4,stride:2}"])
    conv = instantiate(cfg.model)
    assert (conv.out_channels, conv.stride) == (4, (2, 2))


# --- save and to_py -----------------------------------------------------------------------------


def test_save_and_load_round_trip(config_tree, tmp_path):
    cfg = LazyConfig.load(config_tree / "Models" / "net.py")
    out = tmp_path / "out" / "config.yaml"
    LazyConfig.save(cfg, out)
    text = out.read_text()
    assert "_target_: torch.nn.Conv2d" in text and "lr: '${optimizer.lr}'" in text
    assert "!!python/object:det.core.layers.shape_spec.ShapeSpec" in text
    loaded = LazyConfig.load(out)
    assert loaded.train.lr == 0.02  # interpolation kept
    assert isinstance(instantiate(loaded.model), torch.nn.Conv2d)
    assert instantiate(loaded.shape) == {"spec": ShapeSpec(channels=8, stride=4)}
    assert not (tmp_path / "out" / "config.yaml.pkl").exists()


def test_yaml_loading_builds_only_dataclasses(tmp_path):
    evil = write(tmp_path / "evil.yaml", "a: !!python/object:os.system {}\n")
    with pytest.raises(ValueError, match="not a dataclass"):
        LazyConfig.load(evil)


def test_save_warns_about_what_yaml_cannot_hold(tmp_path, caplog):
    cfg = OmegaConf.create({"f": {"_target_": "builtins.dict", "fn": (lambda: 1)}}, flags={"allow_objects": True})
    with caplog.at_level(logging.WARNING):
        LazyConfig.save(cfg, tmp_path / "c.yaml")
    assert "cannot be loaded" in caplog.text
    assert "could not be pickled" in caplog.text  # a lambda pickles neither
    assert not (tmp_path / "c.yaml.pkl").exists()


def test_to_py_prints_calls_and_values(config_tree):
    cfg = LazyConfig.load(config_tree / "Models" / "net.py")
    code = LazyConfig.to_py(cfg)
    assert "cfg.model = torch.nn.Conv2d(in_channels=3, kernel_size=3, out_channels=16)" in code
    assert "cfg.train.lr = 0.02" in code and "cfg.train.max_iter = 100" in code
    assert "cfg.plain.b = [1, 2]" in code


def test_importing_det_core_config_stays_light():
    import subprocess
    import sys

    code = ("import sys, det.core.config; "
            "print(sorted(m for m in ('omegaconf', 'torch', 'hydra') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
