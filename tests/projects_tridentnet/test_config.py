"""MODEL.TRIDENT comes with the plugin: detectron2's TridentNet YAMLs merge into a plain get_cfg(),
add_tridentnet_config is a no-op for detectron2 scripts, and without the plugin the same YAML fails
with det's message naming det-tridentnet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from det.core import get_cfg
from det.core.config import ConfigKeyError
from det.core.registry import STANDARD_CONFIG_PROVIDERS, config_key_provider, list_components
from det.projects.tridentnet import add_tridentnet_config

SHARED = Path(os.environ.get("DET_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
CONFIG_DIR = SHARED / "detectron2-projects/projects/TridentNet/configs"
DEFAULTS = {"NUM_BRANCH": 3, "BRANCH_DILATIONS": [1, 2, 3], "TRIDENT_STAGE": "res4", "TEST_BRANCH_IDX": 1}


def test_get_cfg_has_detectron2s_trident_keys_and_defaults():
    assert dict(get_cfg().MODEL.TRIDENT) == DEFAULTS


def test_add_tridentnet_config_keeps_what_is_there():
    cfg = get_cfg()
    cfg.MODEL.TRIDENT.TEST_BRANCH_IDX = -1
    add_tridentnet_config(cfg)  # a detectron2 script's call: changes nothing now
    assert cfg.MODEL.TRIDENT.TEST_BRANCH_IDX == -1
    del cfg.MODEL["TRIDENT"]
    add_tridentnet_config(cfg)
    assert dict(cfg.MODEL.TRIDENT) == DEFAULTS
    cfg.MODEL.TRIDENT.BRANCH_DILATIONS.append(4)  # each call gets its own list
    assert get_cfg().MODEL.TRIDENT.BRANCH_DILATIONS == [1, 2, 3]


def test_the_plugin_declares_detectron2s_component_names():
    declared = {(c.kind, c.name): c.target for c in list_components() if c.distribution == "det-tridentnet"}
    assert declared == {
        ("BACKBONE", "build_trident_resnet_backbone"):
            "det.projects.tridentnet.trident_backbone:build_trident_resnet_backbone",
        ("PROPOSAL_GENERATOR", "TridentRPN"): "det.projects.tridentnet.trident_rpn:TridentRPN",
        ("ROI_HEADS", "TridentRes5ROIHeads"): "det.projects.tridentnet.trident_rcnn:TridentRes5ROIHeads",
        ("ROI_HEADS", "TridentStandardROIHeads"): "det.projects.tridentnet.trident_rcnn:TridentStandardROIHeads",
    }


def test_the_hint_table_names_det_tridentnet_for_its_keys():
    assert STANDARD_CONFIG_PROVIDERS["MODEL.TRIDENT"] == "det-tridentnet"
    assert config_key_provider("MODEL.TRIDENT.TEST_BRANCH_IDX") == ("det-tridentnet",)
    # every key the plugin adds is covered by a row
    assert {config_key_provider(f"MODEL.TRIDENT.{k}") for k in get_cfg().MODEL.TRIDENT} == {("det-tridentnet",)}


def test_disabled_plugin_the_yaml_fails_naming_det_tridentnet(disable_plugins):
    disable_plugins("det-tridentnet")
    cfg = get_cfg()
    assert "TRIDENT" not in cfg.MODEL
    with pytest.raises(ConfigKeyError) as info:
        cfg.merge_from_file(str(CONFIG_DIR / "tridentnet_fast_R_50_C4_1x.yaml"))
    assert str(info.value) == (
        "Non-existent config key: MODEL.TRIDENT. This key is added by "
        "det-tridentnet, which is installed but disabled (check DET_DISABLE_PLUGINS and "
        "det.core.plugins.disable()).")
    assert (info.value.key, info.value.distribution) == ("MODEL.TRIDENT", "det-tridentnet")
    with pytest.raises(ConfigKeyError, match=r"MODEL\.TRIDENT.*This key is added by det-tridentnet"):
        get_cfg().merge_from_list(["MODEL.TRIDENT.NUM_BRANCH", "2"])
    # the not-installed case ("pip install det-tridentnet") runs in test_wheel.py's fresh environment
