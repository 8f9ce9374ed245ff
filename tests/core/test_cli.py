"""The det command: det plugins (text, --json, torch-free), help, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from det.core import cli


@pytest.fixture(autouse=True)
def _clean(fresh_plugins):
    yield


def _det(*args: str) -> subprocess.CompletedProcess[str]:
    code = ("import sys; from det.core.cli import main; status = main(sys.argv[1:]); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr); sys.exit(status)")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_det_plugins_in_a_fresh_process_lists_core_without_torch():
    result = _det("plugins")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "NO-TORCH"
    lines = result.stdout.splitlines()
    assert lines[0] == "det-core 0.1.0 (plugin API 1)"
    assert "Distributions:" in lines and "Components:" in lines and "Commands:" in lines
    assert any(line.split()[:4] == ["det-core", "0.1.0", "core", "="] for line in lines)
    # the name column is as wide as the longest installed META_ARCH name, so compare words
    assert ["GeneralizedRCNN", "det.core.modeling.meta_arch:GeneralizedRCNN", "[det-core]"] in [
        line.split() for line in lines
    ]


def test_det_plugins_json():
    result = _det("plugins", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "NO-TORCH"
    report = json.loads(result.stdout)
    assert set(report) == {"det_core_version", "plugin_api_version", "distributions", "components", "conflicts",
                           "ops", "converters", "commands", "disabled", "errors"}
    core = [d for d in report["distributions"] if d["name"] == "det-core"]
    assert core == [{"name": "det-core", "version": "0.1.0", "entry_point": "core = det.core._plugin",
                     "status": "loaded"}]
    assert {"name": "ProposalNetwork", "target": "det.core.modeling.meta_arch:ProposalNetwork",
            "distribution": "det-core"} in report["components"]["META_ARCH"]


def test_disabled_plugins_show_in_the_listing(capsys, monkeypatch):
    monkeypatch.setenv("DET_DISABLE_PLUGINS", "core")
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "core = det.core._plugin  [DISABLED]" in out
    assert "Disabled: core" in out
    assert "GeneralizedRCNN" not in out


def test_help_version_and_unknown_command(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: det [-h] [--version] COMMAND ...")
    # the column width follows the longest command name installed (det-engine's visualize-data)
    assert re.search(r"\n    plugins +list installed plugins and what they provide\n", out)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == "det-core 0.1.0"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_plugin_command_clashing_with_a_builtin_or_another_is_reported(capsys):
    from det.core import plugins

    state = plugins._get_state()
    state.commands += [
        plugins.CommandDeclaration("plugins", "mine", "x:y", "det-evil", "evil"),
        plugins.CommandDeclaration("twice", "a", "json:loads", "det-a", "a"),
        plugins.CommandDeclaration("twice", "b", "json:dumps", "det-b", "b"),
        plugins.CommandDeclaration("gone", "c", "det_nowhere:register", "det-c", "c"),
        plugins.CommandDeclaration("crash", "d", "json:loads", "det-d", "d"),
    ]
    report = cli.plugins_report()
    messages = [e["message"] for e in report["errors"]]
    assert "declares the command 'plugins', which is built into det; ignored" in messages
    assert "command 'twice' is declared by several distributions: det-a, det-b" in messages
    assert cli.main(["twice"]) == 2
    assert "the command 'twice' is declared by several distributions" in capsys.readouterr().err
    assert cli.main(["gone"]) == 2
    assert ("det: error: Cannot import det command 'gone' 'det_nowhere:register' (declared by det-c)"
            in capsys.readouterr().err)
    assert cli.main(["crash"]) == 2  # json.loads(parser) raises TypeError while setting up
    assert ("det: error: setting up 'det crash' (json:loads, from det-d) failed: TypeError"
            in capsys.readouterr().err)
    assert cli.main(["plugins", "--json"]) == 0  # the built-in still runs
    json.loads(capsys.readouterr().out)


def test_console_script_is_declared(repo_root: Path):
    text = (repo_root / "packages" / "core" / "pyproject.toml").read_text()
    assert 'det = "det.core.cli:main"' in text
    assert 'core = "det.core._plugin"' in text
