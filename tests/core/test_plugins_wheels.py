"""Plugin discovery for real: throwaway plugin wheels installed into child venvs.

Each test installs some of the toy distributions of tests/core/conftest.py next to the full main
environment (inherit="all") and inspects det.core from a fresh interpreter there.
"""

from __future__ import annotations

import json
import textwrap

import pytest

# fresh virtual environments: end-to-end by the repository's definition
pytestmark = pytest.mark.slow

PRELUDE = """
import json, sys, warnings
from det.core import plugins, registry
from det.core.registry import get_component, list_components, ComponentConflictError, ComponentNotFoundError
out = {}
def report():
    print(json.dumps(out))
"""


def probe(venv, code: str, env: dict[str, str] | None = None) -> dict:
    """Run PRELUDE + code in the child; it fills `out` and calls report()."""
    result = venv.run(PRELUDE + textwrap.dedent(code) + "\nreport()\n", env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def venv_with(make_child_venv, toy_plugin_wheels):
    def make(*dists: str):
        venv = make_child_venv(inherit="all")
        venv.pip_install(*(toy_plugin_wheels[d] for d in dists))
        return venv
    return make


def test_discovery_is_lazy_and_imports_components_only_when_built(venv_with):
    venv = venv_with("det-toy-alpha")
    out = probe(venv, """
        out["after_import"] = plugins._state is None
        infos = list_components("BACKBONE", pattern="build_toy*")
        out["listed"] = [(i.name, i.target, i.distribution) for i in infos]
        out["imported_by_listing"] = "toy_alpha.components" in sys.modules
        out["plugin_module_loaded"] = "toy_alpha._plugin" in sys.modules
        out["torch"] = "torch" in sys.modules
        build = get_component("BACKBONE", "build_toy_backbone")
        out["built"] = build("cfg", "shape")
        out["imported_by_get"] = "toy_alpha.components" in sys.modules
        out["same_object"] = registry.BACKBONE_REGISTRY.get("build_toy_backbone") is build
        out["in_registry"] = "build_toy_backbone" in registry.BACKBONE_REGISTRY
        out["core_still_there"] = [i.distribution for i in list_components("META_ARCH", "GeneralizedRCNN")]
        dists = {p.distribution: (p.name, p.value, p.status, p.version) for p in plugins.list_plugins()}
        out["alpha"] = dists["det-toy-alpha"]
        out["errors"] = [str(e) for e in plugins.plugin_errors() if "toy" in e.distribution]
    """)
    assert out["after_import"] is True  # importing det.core discovers nothing
    assert out["listed"] == [["build_toy_backbone", "toy_alpha.components:build_toy_backbone", "det-toy-alpha"]]
    assert out["plugin_module_loaded"] is True
    assert out["imported_by_listing"] is False
    assert out["built"] == ["toy backbone", "cfg", "shape"]
    assert out["imported_by_get"] is True
    assert out["same_object"] is True and out["in_registry"] is True
    assert out["core_still_there"] == ["det-core"]
    assert out["alpha"] == ["toy-alpha", "toy_alpha._plugin", "loaded", "0.0.1"]
    assert out["errors"] == []
    assert out["torch"] is False  # discovery and listing need no torch


def test_ops_converters_config_and_commands_are_collected(venv_with):
    venv = venv_with("det-toy-alpha")
    out = probe(venv, """
        out["ops"] = [op for op in plugins.op_declarations() if op[1] == "toydev"]
        out["converters"] = [(c.name, c.target, c.distribution) for c in plugins.converter_declarations()
                             if c.name.startswith("toy")]
        # only the toy's: the main environment's det-engine declares commands too
        out["commands"] = [(c.name, c.help, c.distribution) for c in plugins.command_declarations()
                           if c.distribution.startswith("det-toy")]
        from det.core.config import get_cfg
        cfg = get_cfg()
        out["toy_depth"] = cfg.MODEL.TOY.DEPTH
        cfg.merge_from_list(["MODEL.TOY.DEPTH", "5"])
        out["merged"] = cfg.MODEL.TOY.DEPTH
        # converters go to det.checkpoint on the first component lookup, lazily wrapped
        get_component("BACKBONE", "build_toy_backbone")
        from det.checkpoint import registered_converters
        out["registered"] = "toy_alpha_converter" in registered_converters()
        out["ops_module_imported"] = "toy_alpha.ops" in sys.modules
        from det.core.cli import main
        out["cmd_imported_before"] = "toy_alpha.cmd" in sys.modules
        out["status"] = main(["toy-hello", "--name", "det"])
    """)
    assert out["ops"] == [["nms", "toydev", "toy_alpha.ops:nms", "det-toy-alpha"]]
    assert out["converters"] == [["toy_alpha_converter", "toy_alpha.ops:convert", "det-toy-alpha"]]
    assert out["commands"] == [["toy-hello", "say hello from alpha", "det-toy-alpha"]]
    assert (out["toy_depth"], out["merged"]) == (3, 5)
    assert out["registered"] is True and out["ops_module_imported"] is False
    assert out["cmd_imported_before"] is False
    assert out["status"] == 3


def test_det_command_runs_plugin_subcommands_and_help(venv_with):
    venv = venv_with("det-toy-alpha")
    # the console script of det-core lives in the main venv; run its main() in the child
    run = venv.run("import sys; from det.core.cli import main; sys.exit(main(sys.argv[1:] or ['--help']))",
                   check=False)
    assert run.returncode == 0
    assert "toy-hello" in run.stdout and "say hello from alpha" in run.stdout
    run = venv.run("import sys; from det.core.cli import main; sys.exit(main(['toy-hello', '--name', 'x']))",
                   check=False)
    assert (run.returncode, run.stdout.strip()) == (3, "hello x from alpha; toy_alpha.cmd imported")
    run = venv.run("import sys; from det.core.cli import main; sys.exit(main(['toy-hello', '--help']))",
                   check=False)
    assert run.returncode == 0 and "--name NAME" in run.stdout


def test_two_distributions_providing_one_name_conflict_until_one_is_chosen(venv_with):
    venv = venv_with("det-toy-alpha", "det-toy-beta")
    # one interpreter for every case (torch is imported once): DET_PREFER is read at each lookup
    out = probe(venv, """
        import os
        def attempt(tag):
            try:
                out[tag] = get_component("ROI_HEADS", "ToyShared").origin
            except ComponentConflictError as e:
                out[tag] = {"error": str(e), "dists": e.distributions}
            except ValueError as e:
                out[tag] = {"value_error": str(e)}
        attempt("none")
        out["unrelated"] = get_component("BACKBONE", "build_beta_backbone")("c", "s")
        os.environ["DET_PREFER"] = "ROI_HEADS:ToyShared=det-toy-beta"
        attempt("env_beta")
        os.environ["DET_PREFER"] = "BACKBONE:x=y, ROI_HEADS:ToyShared=DET_TOY_ALPHA"
        attempt("env_alpha_spelt_differently")
        os.environ["DET_PREFER"] = "ROI_HEADS:ToyShared=det-toy-beta"
        registry.prefer("ROI_HEADS", "ToyShared", "det-toy-alpha")
        attempt("api_over_env")
        registry.prefer("ROI_HEADS", "ToyShared", "det-toy-gamma")
        attempt("api_unknown")
        plugins.reset()
        attempt("env_after_reset")
        os.environ["DET_PREFER"] = "ROI_HEADS/ToyShared"
        attempt("malformed")
    """)
    none = out["none"]
    assert none["dists"] == ["det-toy-alpha", "det-toy-beta"]
    assert none["error"].startswith("ROI_HEADS component 'ToyShared' is provided by several distributions: "
                                    "det-toy-alpha (toy_alpha.components:ToyShared), "
                                    "det-toy-beta (toy_beta.components:ToyShared).")
    assert "DET_PREFER=ROI_HEADS:ToyShared=det-toy-alpha" in none["error"]
    assert "det.core.registry.prefer('ROI_HEADS', 'ToyShared', 'det-toy-alpha')" in none["error"]
    assert out["unrelated"] == "beta"  # the conflict does not stop anything else
    assert out["env_beta"] == "beta"
    assert out["env_alpha_spelt_differently"] == "alpha"  # names compare like pip's
    assert out["api_over_env"] == "alpha"
    assert "The preferred distribution 'det-toy-gamma' is not one of them." in out["api_unknown"]["error"]
    assert out["env_after_reset"] == "beta"  # reset() drops API preferences, the environment stays
    assert out["malformed"]["value_error"].startswith(
        "DET_PREFER entry 'ROI_HEADS/ToyShared' is malformed; expected KIND:Name=distribution")


def test_disabling_by_distribution_or_entry_point_name(venv_with):
    venv = venv_with("det-toy-alpha", "det-toy-beta")
    out = probe(venv, """
        import os
        def state():
            origin = get_component("ROI_HEADS", "ToyShared").origin
            status = {p.distribution: p.status for p in plugins.list_plugins() if "toy" in p.distribution}
            return origin, status
        os.environ["DET_DISABLE_PLUGINS"] = "det-toy-beta"
        out["env_dist"] = state()
        os.environ["DET_DISABLE_PLUGINS"] = " toy-alpha ,something-else"
        out["env_before_reset"] = state()   # discovery happened already: the change needs reset()
        plugins.reset()
        out["env_entry_point"] = state()
        del os.environ["DET_DISABLE_PLUGINS"]
        plugins.reset()
        plugins.disable("det_toy_beta")     # before first use
        out["api_first"] = state()
        plugins.reset()                       # forgets the API choice: conflict again
        try:
            get_component("ROI_HEADS", "ToyShared")
        except ComponentConflictError:
            out["after_reset"] = "conflict"
        plugins.disable("toy-alpha")          # after use: rediscovers without it
        out["api_later"] = state()
        try:
            plugins.disable(3)
        except TypeError as e:
            out["bad"] = str(e)
    """)
    assert out["env_dist"] == ["alpha", {"det-toy-alpha": "loaded", "det-toy-beta": "disabled"}]
    assert out["env_before_reset"] == out["env_dist"]
    assert out["env_entry_point"] == ["beta", {"det-toy-alpha": "disabled", "det-toy-beta": "loaded"}]
    assert out["api_first"] == ["alpha", {"det-toy-alpha": "loaded", "det-toy-beta": "disabled"}]
    assert out["after_reset"] == "conflict"
    assert out["api_later"] == ["beta", {"det-toy-alpha": "disabled", "det-toy-beta": "loaded"}]
    assert out["bad"] == "disable() takes entry-point or distribution names (str), got 3"


def test_disabled_standard_provider_is_named_in_the_error(venv_with):
    venv = venv_with("det-toy-alpha")
    out = probe(venv, """
        try:
            get_component("META_ARCH", "GeneralizedRCNN")
        except ComponentNotFoundError as e:
            out["error"] = str(e)
    """, env={"DET_DISABLE_PLUGINS": "core,heads-semseg,heads-retinanet,panoptic-deeplab"})  # leaves ToyArch the only META_ARCH
    assert out["error"] == ("No META_ARCH component named 'GeneralizedRCNN' is installed. Installed META_ARCH "
                            "components: ToyArch. It is provided by det-core, which is installed but disabled "
                            "(check DET_DISABLE_PLUGINS and det.core.plugins.disable()).")


def test_broken_plugins_are_reported_by_distribution_and_the_rest_works(venv_with):
    venv = venv_with("det-toy-alpha", "det-toy-broken", "det-toy-future", "det-toy-noversion", "det-toy-rude")
    out = probe(venv, """
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            plugins.list_plugins()
        out["discovery_warnings"] = sorted(str(w.message) for w in caught if "det-toy" in str(w.message))
        with warnings.catch_warnings(record=True) as caught:
            from det.core.config import get_cfg
            cfg = get_cfg()
        out["warnings"] = [str(w.message) for w in caught]
        try:
            get_component("BACKBONE", "build_future_backbone")
        except ComponentNotFoundError as e:
            out["not_found"] = str(e)
        out["base_lr"] = cfg.SOLVER.BASE_LR
        out["rude_key"] = "RUDE_KEY" in cfg
        out["toy_depth"] = cfg.MODEL.TOY.DEPTH
        out["errors"] = sorted([e.distribution, e.plugin, e.message] for e in plugins.plugin_errors()
                               if "toy" in e.distribution)
        out["status"] = {p.distribution: p.status for p in plugins.list_plugins() if "toy" in p.distribution}
        out["alpha_works"] = get_component("BACKBONE", "build_toy_backbone")(1, 2)
        out["future_listed"] = [i.name for i in list_components("BACKBONE", "build_future*")]
        out["rude_ops"] = [op for op in plugins.op_declarations() if op[3] == "det-toy-rude"]
        try:
            get_component("ROI_HEADS", "ToyMissingAttr")
        except ImportError as e:
            out["missing_attr"] = str(e)
    """)
    assert out["status"] == {"det-toy-alpha": "loaded", "det-toy-broken": "failed", "det-toy-future": "failed",
                             "det-toy-noversion": "failed", "det-toy-rude": "loaded"}
    errors = {(d, p): m for d, p, m in out["errors"]}
    assert errors[("det-toy-broken", "toy-broken")] == (
        "failed to import toy_broken._plugin: RuntimeError: boom from toy-broken")
    assert errors[("det-toy-future", "toy-future")] == (
        "toy_future._plugin was written for det plugin API 2, but this det-core speaks 1; install a version "
        "of det-toy-future made for it")
    assert errors[("det-toy-noversion", "toy-noversion")] == (
        "toy_noversion._plugin declares no DET_PLUGIN_API_VERSION; this det-core speaks plugin API 1 "
        "(set DET_PLUGIN_API_VERSION = 1 in it)")
    rude = sorted(m for d, p, m in out["errors"] if d == "det-toy-rude")
    assert rude == [
        "det_components() raised RuntimeError: rude components",
        "det_extend_config() changed existing config keys SOLVER.BASE_LR; a plugin may only add keys",
        "det_ops() returned ('nms', 'cuda'); expected (op name, device type, \"module:attribute\")",
        "implements unknown hook 'det_component' (det's hooks: det_components, det_ops, "
        "det_checkpoint_converters, det_extend_config, det_cli_commands, det_detectron2_names)",
    ]
    # the rude plugin's config changes are undone as a whole; alpha's keys stay
    assert (out["base_lr"], out["rude_key"], out["toy_depth"]) == (0.001, False, 3)
    assert out["warnings"] == ["det plugin det-toy-rude: det_extend_config() changed existing config keys "
                               "SOLVER.BASE_LR; a plugin may only add keys; its config keys are ignored"]
    assert out["alpha_works"] == ["toy backbone", 1, 2]
    assert len(out["discovery_warnings"]) == 6  # 3 failed imports, 3 rude hook problems
    assert out["discovery_warnings"][0] == ("det plugin det-toy-broken (entry point 'toy-broken'): failed to import "
                                            "toy_broken._plugin: RuntimeError: boom from toy-broken; ignored "
                                            "(see `det plugins`)")
    assert out["not_found"].endswith("Plugins that failed to load (see `det plugins`): det-toy-broken, "
                                     "det-toy-future, det-toy-noversion.")
    assert out["future_listed"] == []
    assert out["rude_ops"] == [["roi_align", "rudedev", "toy_rude.ops:roi_align", "det-toy-rude"]]
    assert out["missing_attr"] == ("Cannot import ROI_HEADS component 'ToyMissingAttr' "
                                   "'toy_alpha.components:DoesNotExist' (declared by det-toy-alpha): module "
                                   "'toy_alpha.components' has no attribute 'DoesNotExist'")


def test_det_plugins_lists_everything_without_torch(venv_with):
    venv = venv_with("det-toy-alpha", "det-toy-beta", "det-toy-broken")
    code = """
        import io, contextlib
        from det.core.cli import main
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            out["status"] = main(ARGS)
        out["text"] = buf.getvalue()
        out["torch"] = "torch" in sys.modules
        out["components_imported"] = "toy_alpha.components" in sys.modules
    """
    out = probe(venv, code.replace("ARGS", "['plugins', '--json']"))
    assert out["status"] == 0 and out["torch"] is False and out["components_imported"] is False
    report = json.loads(out["text"])
    dists = {d["name"]: d for d in report["distributions"]}
    assert dists["det-toy-alpha"] == {"name": "det-toy-alpha", "version": "0.0.1",
                                      "entry_point": "toy-alpha = toy_alpha._plugin", "status": "loaded"}
    assert dists["det-toy-broken"]["status"] == "failed"
    assert {"name": "build_toy_backbone", "target": "toy_alpha.components:build_toy_backbone",
            "distribution": "det-toy-alpha"} in report["components"]["BACKBONE"]
    assert {"kind": "ROI_HEADS", "name": "ToyShared",
            "distributions": ["det-toy-alpha", "det-toy-beta"]} in report["conflicts"]
    assert report["ops"]["toydev"] == [{"op": "nms", "target": "toy_alpha.ops:nms", "distribution": "det-toy-alpha"}]
    assert {"name": "toy-hello", "help": "say hello from alpha", "target": "toy_alpha.cmd:register",
            "distribution": "det-toy-alpha"} in report["commands"]
    assert {"name": "toy_alpha_converter", "target": "toy_alpha.ops:convert",
            "distribution": "det-toy-alpha"} in report["converters"]
    assert {"distribution": "det-toy-broken", "plugin": "toy-broken",
            "message": "failed to import toy_broken._plugin: RuntimeError: boom from toy-broken"} in report["errors"]
    assert report["plugin_api_version"] == 1

    out = probe(venv, code.replace("ARGS", "['plugins']"))
    text = out["text"]
    assert out["torch"] is False
    assert "  det-toy-broken           0.0.1      toy-broken = toy_broken._plugin  [FAILED]" in text
    assert "    build_toy_backbone" in text and "toy_alpha.components:build_toy_backbone  [det-toy-alpha]" in text
    assert "  ROI_HEADS:ToyShared provided by det-toy-alpha, det-toy-beta" in text
    assert "  toydev: nms [det-toy-alpha]" in text
    assert "  toy-hello  say hello from alpha  [det-toy-alpha]" in text
    assert "  det-toy-broken: failed to import toy_broken._plugin: RuntimeError: boom from toy-broken" in text
