"""det.core.config: the standard schema, YAML merging with _BASE_, key errors, configurable."""

from __future__ import annotations

import ast
import contextlib
import os
from pathlib import Path

import pytest
import yaml

from det.core.config import CfgNode, ConfigKeyError, configurable, get_cfg
from det.core.config.defaults import _C


def _plain(value):
    """Config values as YAML reads them: tuples become lists, nodes become dicts."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# --- the schema ------------------------------------------------------------------------------


def test_defaults_hold_every_reference_key_with_its_value(reference_dir: Path):
    reference = _flatten(yaml.safe_load((reference_dir / "detectron2_default_config.yaml").read_text()))
    ours = _flatten(_plain(_C))  # the schema itself, without plugin extensions
    assert len(reference) == 192
    assert sorted(ours) == sorted(reference)
    for key, value in reference.items():
        # type too: an int default where detectron2 has a float would refuse "0.5" in YAML
        assert (ours[key], type(ours[key])) == (value, type(value)), key


def test_get_cfg_spot_values_and_tuple_defaults():
    cfg = get_cfg()
    assert cfg.VERSION == 2
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert cfg.MODEL.PIXEL_MEAN == [103.530, 116.280, 123.675]
    assert cfg.INPUT.MIN_SIZE_TRAIN == (800,)
    assert cfg.MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS[2] == (30.0, 30.0, 15.0, 15.0)
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS == (512,) * 8
    assert cfg.SOLVER.WARMUP_FACTOR == 0.001
    assert cfg.SOLVER.WEIGHT_DECAY_BIAS is None
    assert isinstance(cfg, CfgNode) and isinstance(cfg.MODEL, CfgNode)


def test_get_cfg_returns_independent_copies():
    a, b = get_cfg(), get_cfg()
    a.MODEL.RPN.IN_FEATURES.append("p9")
    a.SOLVER.BASE_LR = 1.0
    assert b.MODEL.RPN.IN_FEATURES == ["res4"]
    assert get_cfg().SOLVER.BASE_LR == 0.001


# --- every model-zoo YAML merges ---------------------------------------------------------------

# Collected at import time for parametrisation; same location rule as tests/conftest.py.
_CONFIGS = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared")) / "detectron2-configs"
ZOO = sorted(str(p.relative_to(_CONFIGS)) for p in _CONFIGS.rglob("*.yaml"))


def test_zoo_has_92_configs(configs_dir: Path):
    assert len(sorted(configs_dir.rglob("*.yaml"))) == 92


@pytest.mark.parametrize("relpath", ZOO)
def test_every_zoo_config_merges(configs_dir: Path, relpath: str):
    cfg = get_cfg()
    cfg.merge_from_file(configs_dir / relpath)
    assert cfg.VERSION == 2
    # values of the file itself (not only its _BASE_) end up in the config
    # Base-RetinaNet.yaml computes its anchor sizes with a !!python/object/apply:eval tag
    own = yaml.unsafe_load((configs_dir / relpath).read_text()) or {}
    own.pop("_BASE_", None)
    for key, value in _flatten(own).items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        if isinstance(value, str):  # yacs reads '("coco_2017_train",)' as a Python literal
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(value)
        assert _plain(node) == _plain(value), key


def test_mask_rcnn_fpn_3x_inherits_its_bases(configs_dir: Path):
    cfg = get_cfg()
    cfg.merge_from_file(configs_dir / "COCO-InstanceSegmentation" / "mask_rcnn_R_50_FPN_3x.yaml")
    assert cfg.MODEL.MASK_ON is True
    assert cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"  # from Base-RCNN-FPN.yaml
    assert cfg.MODEL.ROI_HEADS.NAME == "StandardROIHeads"
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[32], [64], [128], [256], [512]]
    assert cfg.SOLVER.STEPS == (210000, 250000)  # list in YAML, tuple like the default
    assert cfg.SOLVER.MAX_ITER == 270000
    assert cfg.MODEL.RPN.IN_FEATURES == ["p2", "p3", "p4", "p5", "p6"]


def test_retinanet_eval_tag_needs_allow_unsafe(configs_dir: Path):
    path = configs_dir / "Base-RetinaNet.yaml"
    with pytest.raises(ValueError, match="unsafe YAML tags; pass allow_unsafe=True"):
        CfgNode.load_yaml_with_base(path, allow_unsafe=False)
    sizes = CfgNode.load_yaml_with_base(path, allow_unsafe=True)["MODEL"]["ANCHOR_GENERATOR"]["SIZES"]
    assert [round(s, 4) for s in sizes[0]] == [32, 40.3175, 50.7968]


# --- _BASE_ and VERSION ------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_paths_are_relative_to_the_file_and_chain(tmp_path: Path):
    _write(tmp_path / "bases" / "root.yaml", "MODEL:\n  MASK_ON: true\n  RESNETS:\n    DEPTH: 101\nSOLVER:\n  BASE_LR: 0.5\n")
    _write(tmp_path / "bases" / "mid.yaml", "_BASE_: root.yaml\nSOLVER:\n  BASE_LR: 0.25\n  MAX_ITER: 7\n")
    leaf = _write(tmp_path / "exp" / "leaf.yaml", "_BASE_: ../bases/mid.yaml\nSOLVER:\n  MAX_ITER: 9\nVERSION: 2\n")
    cfg = get_cfg()
    cfg.merge_from_file(leaf)
    assert (cfg.MODEL.MASK_ON, cfg.MODEL.RESNETS.DEPTH) == (True, 101)
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER) == (0.25, 9)
    assert cfg.MODEL.RESNETS.NUM_GROUPS == 1  # untouched sibling of an inherited key


def test_base_may_be_a_list_and_absolute(tmp_path: Path):
    a = _write(tmp_path / "a.yaml", "SOLVER:\n  BASE_LR: 0.5\n  MAX_ITER: 1\n")
    _write(tmp_path / "b.yaml", "SOLVER:\n  MAX_ITER: 2\n")
    leaf = _write(tmp_path / "sub" / "leaf.yaml", f"_BASE_: [{str(a)!r}, ../b.yaml]\n")
    cfg = get_cfg()
    cfg.merge_from_file(leaf)
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER) == (0.5, 2)


def test_missing_base_names_the_file(tmp_path: Path):
    leaf = _write(tmp_path / "leaf.yaml", "_BASE_: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.yaml"):
        get_cfg().merge_from_file(leaf)


def test_version_other_than_2_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="VERSION: 1"):
        get_cfg().merge_from_file(_write(tmp_path / "v1.yaml", "VERSION: 1\n"))
    cfg = get_cfg()
    cfg.merge_from_file(_write(tmp_path / "none.yaml", "SEED: 3\n"))
    assert (cfg.VERSION, cfg.SEED) == (2, 3)


def test_empty_yaml_merges_nothing(tmp_path: Path):
    cfg = get_cfg()
    cfg.merge_from_file(_write(tmp_path / "empty.yaml", ""))
    assert cfg == get_cfg()


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="must hold a mapping"):
        get_cfg().merge_from_file(_write(tmp_path / "list.yaml", "- 1\n- 2\n"))


# --- unknown keys and types ---------------------------------------------------------------------


def test_unknown_key_in_yaml_names_it_and_the_closest_key(tmp_path: Path):
    path = _write(tmp_path / "typo.yaml", "MODEL:\n  ROI_HEADS:\n    NUM_CLASS: 3\n")
    with pytest.raises(ConfigKeyError) as info:
        get_cfg().merge_from_file(path)
    assert info.value.key == "MODEL.ROI_HEADS.NUM_CLASS"
    assert info.value.suggestion == "MODEL.ROI_HEADS.NUM_CLASSES"
    assert "did you mean MODEL.ROI_HEADS.NUM_CLASSES?" in str(info.value)
    # a KeyError as in yacs/detectron2, and a ValueError as bad input
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_unknown_section_is_reported_at_the_section(tmp_path: Path):
    path = _write(tmp_path / "typo.yaml", "MODEL:\n  ROI_HEAD:\n    NUM_CLASSES: 3\n")
    with pytest.raises(ConfigKeyError, match=r"MODEL\.ROI_HEAD .*did you mean MODEL\.ROI_HEADS"):
        get_cfg().merge_from_file(path)


def test_unknown_key_without_a_close_one_has_no_suggestion():
    with pytest.raises(ConfigKeyError) as info:
        get_cfg().merge_from_list(["ZZZZZZ", 1])
    assert info.value.suggestion is None and "did you mean" not in str(info.value)


def test_type_mismatch_names_key_and_expected_type(tmp_path: Path):
    path = _write(tmp_path / "bad.yaml", "SOLVER:\n  MAX_ITER: lots\n")
    with pytest.raises(ValueError, match=r"SOLVER\.MAX_ITER: expected int like the default 40000, got str 'lots'"):
        get_cfg().merge_from_file(path)


def test_section_and_value_mixups_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match=r"MODEL\.RPN is a section"):
        get_cfg().merge_from_file(_write(tmp_path / "a.yaml", "MODEL:\n  RPN: 3\n"))
    with pytest.raises(ValueError, match=r"SOLVER\.BASE_LR is a single option"):
        get_cfg().merge_from_file(_write(tmp_path / "b.yaml", "SOLVER:\n  BASE_LR:\n    X: 1\n"))


# --- merge_from_list ---------------------------------------------------------------------------


def test_merge_from_list_decodes_literals_and_coerces_sequences():
    cfg = get_cfg()
    cfg.merge_from_list([
        "MODEL.ROI_HEADS.NUM_CLASSES", "3",
        "SOLVER.STEPS", "[10, 20]",
        "MODEL.DEVICE", "cpu",
        "MODEL.WEIGHTS", "/tmp/model.pth",
        "SOLVER.WEIGHT_DECAY_BIAS", "0.0",
        "INPUT.MIN_SIZE_TRAIN", (640, 672),
    ])
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 3
    assert cfg.SOLVER.STEPS == (10, 20)
    assert cfg.MODEL.DEVICE == "cpu"
    assert cfg.MODEL.WEIGHTS == "/tmp/model.pth"
    assert cfg.SOLVER.WEIGHT_DECAY_BIAS == 0.0
    assert cfg.INPUT.MIN_SIZE_TRAIN == (640, 672)


def test_merge_from_list_errors():
    cfg = get_cfg()
    with pytest.raises(ConfigKeyError, match=r"MODEL\.RPN\.NMS_THRES .*did you mean MODEL\.RPN\.NMS_THRESH"):
        cfg.merge_from_list(["MODEL.RPN.NMS_THRES", "0.5"])
    with pytest.raises(ConfigKeyError, match=r"SOLVR .*did you mean SOLVER"):
        cfg.merge_from_list(["SOLVR.BASE_LR", "0.5"])
    with pytest.raises(ValueError, match="odd number"):
        cfg.merge_from_list(["SOLVER.BASE_LR"])
    with pytest.raises(ValueError, match=r"SOLVER\.BASE_LR: expected float"):
        cfg.merge_from_list(["SOLVER.BASE_LR", "fast"])
    with pytest.raises(ValueError, match=r"MODEL\.RPN is a section"):
        cfg.merge_from_list(["MODEL.RPN", "1"])
    with pytest.raises(TypeError, match="Config keys are strings"):
        cfg.merge_from_list([3, "1"])
    assert cfg == get_cfg()  # nothing was half-applied by the failures above


def test_frozen_config_refuses_merges():
    cfg = get_cfg()
    cfg.freeze()
    with pytest.raises(AttributeError, match="frozen"):
        cfg.merge_from_list(["SEED", "1"])
    with pytest.raises(AttributeError, match="frozen"):
        cfg.merge_from_other_cfg(CfgNode({"SEED": 1}))


def test_dump_round_trips(tmp_path: Path, configs_dir: Path):
    cfg = get_cfg()
    cfg.merge_from_file(configs_dir / "COCO-Keypoints" / "keypoint_rcnn_R_50_FPN_3x.yaml")
    text = cfg.dump()
    assert "META_ARCHITECTURE: GeneralizedRCNN" in text and "_BASE_" not in text
    again = get_cfg()
    again.merge_from_file(_write(tmp_path / "dumped.yaml", text))
    # equal as data; like yacs, only the outer tuple of a nested default is restored
    assert _plain(again) == _plain(cfg)


# --- configurable -------------------------------------------------------------------------------


class _Widget:
    @configurable
    def __init__(self, a, b=2, *, c=3):
        self.a, self.b, self.c = a, b, c

    @classmethod
    def from_config(cls, cfg, b=5):
        return {"a": cfg.SOLVER.MAX_ITER, "b": b}


def test_configurable_class_explicit_and_from_cfg():
    cfg = get_cfg()
    w = _Widget(1, 7, c=9)
    assert (w.a, w.b, w.c) == (1, 7, 9)
    w = _Widget(cfg)
    assert (w.a, w.b, w.c) == (40000, 5, 3)
    w = _Widget(cfg, b=6)  # from_config takes b
    assert (w.a, w.b, w.c) == (40000, 6, 3)
    w = _Widget(cfg=cfg, c=8)  # c bypasses from_config and reaches __init__
    assert (w.a, w.b, w.c) == (40000, 5, 8)
    assert _Widget.__init__.__name__ == "__init__"


def test_configurable_function_and_parentheses_form():
    @configurable(from_config=lambda cfg, scale=1: {"n": cfg.SEED * scale})
    def make(n, extra=0):
        return n + extra

    cfg = get_cfg()
    cfg.SEED = 4
    assert make(10) == 10
    assert make(cfg, scale=3) == 12
    assert make(cfg, extra=1) == 5
    assert make.from_config(cfg) == {"n": 4}

    class B:
        @configurable()
        def __init__(self, x):
            self.x = x

        @classmethod
        def from_config(cls, cfg):
            return {"x": cfg.SEED}

    assert B(cfg).x == 4 and B(x=1).x == 1


def test_configurable_from_config_with_var_kwargs_gets_everything():
    class V:
        @configurable
        def __init__(self, a, b):
            self.a, self.b = a, b

        @classmethod
        def from_config(cls, cfg, **kwargs):
            return {"a": cfg.SEED, **kwargs}

    v = V(get_cfg(), b=2)
    assert (v.a, v.b) == (-1, 2)


def test_configurable_misuse_errors():
    with pytest.raises(TypeError, match="decorates a class's __init__"):
        configurable(lambda x: x)

    class NoFromConfig:
        @configurable
        def __init__(self, a):
            self.a = a

    # as in detectron2, the class is checked on every call, not only calls with a cfg
    with pytest.raises(AttributeError, match="NoFromConfig uses @configurable and must define a 'from_config'"):
        NoFromConfig(1)
    with pytest.raises(AttributeError, match="must define a 'from_config' classmethod"):
        NoFromConfig(get_cfg())

    class StaticFromConfig:
        @configurable
        def __init__(self, a):
            self.a = a

        @staticmethod
        def from_config(cfg):
            return {"a": 1}

    with pytest.raises(TypeError, match="must be a classmethod"):
        StaticFromConfig(get_cfg())

    class BadFirstArg:
        @configurable
        def __init__(self, a):
            self.a = a

        @classmethod
        def from_config(cls, config):
            return {"a": 1}

    with pytest.raises(TypeError, match="must take 'cfg' as its first argument"):
        BadFirstArg(get_cfg())

    with pytest.raises(TypeError, match="from_config of @configurable must be a function"):
        configurable(from_config=3)


def test_computed_attributes_are_write_once():
    cfg = get_cfg()
    cfg.COMPUTED_SCALE = 2
    cfg.COMPUTED_SCALE = 2  # same value: fine
    with pytest.raises(KeyError, match="COMPUTED_SCALE"):
        cfg.COMPUTED_SCALE = 3
    assert cfg.COMPUTED_SCALE == 2


def test_config_key_of_a_known_project_names_the_distribution(monkeypatch):
    from det.core import registry

    monkeypatch.setitem(registry.STANDARD_CONFIG_PROVIDERS, "MODEL.NOT_INSTALLED_HEAD", "det-not-installed")
    monkeypatch.setitem(registry.STANDARD_CONFIG_PROVIDERS, "MODEL.RPN.SHARED_KEY", ("det-not-a", "det-not-b"))
    assert registry.config_key_provider("MODEL.NOT_INSTALLED_HEAD.DEPTH.X") == ("det-not-installed",)
    assert registry.config_key_provider("MODEL.NOT_INSTALLED") == ()
    cfg = get_cfg()
    with pytest.raises(ConfigKeyError) as info:
        cfg.merge_from_other_cfg(CfgNode({"MODEL": {"NOT_INSTALLED_HEAD": {"DEPTH": 3}}}))
    assert str(info.value) == ("Non-existent config key: MODEL.NOT_INSTALLED_HEAD. This key is added by the "
                               "distribution det-not-installed; install it with: pip install det-not-installed")
    assert info.value.distribution == "det-not-installed" and info.value.suggestion is None
    with pytest.raises(ConfigKeyError) as info:
        cfg.merge_from_list(["MODEL.RPN.SHARED_KEY", 1])
    assert str(info.value) == ("Non-existent config key: MODEL.RPN.SHARED_KEY. This key is added by any of the "
                               "distributions det-not-a or det-not-b; install one, e.g.: pip install det-not-a")
    assert info.value.distribution is None
