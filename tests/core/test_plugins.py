"""det.core.plugins in the main environment: the manager, names, targets, converters, hooks."""

from __future__ import annotations

import subprocess
import sys

import pluggy
import pytest

from det.core import hookspecs, plugins


@pytest.fixture(autouse=True)
def _clean(fresh_plugins):
    yield


def test_manager_registers_installed_distributions_by_name():
    pm = plugins.get_plugin_manager()
    assert isinstance(pm, pluggy.PluginManager) and pm.project_name == "det"
    core = pm.get_plugin("det-core:core")
    assert core.__name__ == "det.core._plugin" and core.DET_PLUGIN_API_VERSION == hookspecs.PLUGIN_API_VERSION == 1
    infos = {p.distribution: p for p in plugins.list_plugins()}
    assert infos["det-core"] == plugins.PluginInfo(name="core", distribution="det-core", version="0.1.0",
                                                   value="det.core._plugin", status="loaded", api_version=1)
    # sorted by distribution, so listings do not depend on the file system
    names = [p.distribution for p in plugins.list_plugins()]
    assert names == sorted(names)
    assert plugins.get_plugin_manager() is pm  # discovered once


def test_disable_and_reset_and_env(monkeypatch):
    plugins.disable("Det_Core")
    assert "det-core" in plugins.disabled_names()
    assert {p.distribution: p.status for p in plugins.list_plugins()}["det-core"] == "disabled"
    assert plugins.get_plugin_manager().get_plugin("det-core:core") is None
    plugins.reset()
    assert plugins.disabled_names() == set()
    monkeypatch.setenv("DET_DISABLE_PLUGINS", "core, other.thing")
    assert plugins.disabled_names() == {"core", "other-thing"}
    assert {p.name: p.status for p in plugins.list_plugins()}["core"] == "disabled"


def test_reset_runs_callbacks_and_rediscovers():
    calls = []
    plugins.on_reset(lambda: calls.append(1))
    try:
        first = plugins.get_plugin_manager()
        plugins.reset()
        assert calls == [1]
        assert plugins.get_plugin_manager() is not first
    finally:
        plugins._reset_callbacks.pop()


def test_normalize_name():
    assert plugins.normalize_name(" Det_Heads.ROI ") == "det-heads-roi"


def test_load_target_variants():
    import os.path

    assert plugins.load_target("os:path.join") is os.path.join
    with pytest.raises(ValueError, match=r"target must be 'module:attribute', got 'os\.path'"):
        plugins.load_target("os.path")
    with pytest.raises(ImportError, match="module 'os' has no attribute 'nope'"):
        plugins.load_target("os:nope", "det-x")


def test_lazy_converter_imports_on_first_call():
    conv = plugins._LazyConverter("c", "json:loads", "det-x")
    assert conv._fn is None
    assert conv('{"a": 1}') == {"a": 1}
    assert conv == plugins._LazyConverter("c", "json:loads", "det-x") != plugins._LazyConverter("c", "json:dumps", "det-x")
    broken = plugins._LazyConverter("c", "json:nothing", "det-x")
    with pytest.raises(ImportError, match=r"checkpoint converter 'c' 'json:nothing' \(declared by det-x\)"):
        broken({})


def test_declarations_have_the_documented_shapes():
    for op in plugins.op_declarations():
        assert len(op) == 4 and all(isinstance(x, str) for x in op)
    for decl in plugins.component_declarations():
        assert decl.target.count(":") == 1 and decl.distribution
    assert all(isinstance(e, plugins.PluginError) for e in plugins.plugin_errors())


def test_extend_config_is_called_by_get_cfg(monkeypatch):
    seen = []

    class Probe:
        @hookspecs.hookimpl
        def det_extend_config(self, cfg):
            seen.append(cfg.MODEL.META_ARCHITECTURE)
            cfg.PROBE_KEY = 7

    state = plugins._get_state()
    state.manager.register(Probe(), name="probe")
    state.by_name["probe"] = plugins.PluginInfo("probe", "det-probe", "0", "probe", "loaded", 1)
    from det.core.config import get_cfg

    cfg = get_cfg()
    assert seen == ["GeneralizedRCNN"] and cfg.PROBE_KEY == 7


def test_hookspecs_names():
    assert hookspecs.HOOK_NAMES == (
        "det_components", "det_ops", "det_checkpoint_converters", "det_extend_config", "det_cli_commands",
        "det_detectron2_names")
    assert all(callable(getattr(hookspecs, name)) for name in hookspecs.HOOK_NAMES)
    assert sorted(n for n in hookspecs.__all__ if n.startswith("det_")) == sorted(hookspecs.HOOK_NAMES)


def test_importing_det_core_and_declarations_does_not_import_torch():
    code = ("import sys, det.core, det.core._plugin, det.core.plugins, det.core.registry, det.core.config, "
            "det.core.cli; from det.core import get_cfg, hookimpl; get_cfg(); "
            "det.core.registry.list_components(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
