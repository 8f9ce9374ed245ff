"""The public modules pass ``mypy --strict`` (configured in the root pyproject's [tool.mypy]).

det ships ``py.typed`` in every distribution, so users' type checkers read det's annotations;
this keeps the public surface (det.structures, det.checkpoint, det.core's public names and the
plugin hook specifications) fully typed, and checks that a plugin implementing the hooks with
the wrong types is caught.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

PACKAGES = [
    "det.structures",
    "det.checkpoint",
    "det.export",
    "det.model_zoo",
    "det.heads.mask",
    "det.heads.keypoint",
    "det.heads.rpn",
    "det.heads.retinanet",
    "det.heads.semseg",
]
MODULES = [
    "det.core",
    "det.core.hookspecs",
    "det.core.config",
    "det.core.config.lazy",
    "det.core.events",
    "det.core.modeling.build",
    "det.core.modeling.skip_init",
    "det.core.plugins",
    "det.core.predictor",
    "det.core.registry",
    "det.core.cli",
]


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # one cache for this module's runs: the second reuses the analysis of torch & co.
    return tmp_path_factory.mktemp("mypy_cache")


def _mypy(repo_root: Path, cache: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(cache),
            "--config-file",
            str(repo_root / "pyproject.toml"),
            *targets,
        ],
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=600,
    )


def test_every_distribution_ships_py_typed(repo_root):
    folders = sorted(p.parent for p in repo_root.glob("packages/**/pyproject.toml"))
    assert len(folders) >= 13
    for folder in folders:
        assert list(folder.glob("src/**/py.typed")), f"{folder.name} has no py.typed"


@pytest.mark.slow
def test_public_modules_pass_mypy_strict(repo_root, mypy_cache):
    targets = [arg for p in PACKAGES for arg in ("-p", p)] + [arg for m in MODULES for arg in ("-m", m)]
    result = _mypy(repo_root, mypy_cache, *targets)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.slow
def test_hook_signatures_check_plugin_code(repo_root, mypy_cache, tmp_path):
    plugin = tmp_path / "typed_plugin.py"
    plugin.write_text(
        "from det.core.hookspecs import CommandDecl, ComponentDecl, det_components\n"
        "good: list[ComponentDecl] = [('BACKBONE', 'toy', 'toy:build')]\n"
        "bad: list[CommandDecl] = [('toy', 'help')]\n"
        "declared: int = det_components()\n"
    )
    result = _mypy(repo_root, mypy_cache, str(plugin))
    assert result.returncode == 1
    assert 'typed_plugin.py:3: error: List item 0 has incompatible type "tuple[str, str]"' in result.stdout
    assert "typed_plugin.py:4: error: Incompatible types in assignment" in result.stdout
    assert "Iterable[tuple[str, str, str]]" in result.stdout


@pytest.mark.slow
def test_every_plugin_declaration_module_matches_the_hookspecs(repo_root, mypy_cache):
    """Each distribution's ``_plugin`` module (what its ``det`` entry point names) is checked
    against det.core.hookspecs' types, alone: its package's other modules are not (yet) all strict,
    so imports are followed silently."""
    files = repo_root.glob("packages/**/src/det/**/_plugin.py")
    modules = sorted(".".join(f.relative_to(next(d for d in f.parents if d.name == "src")).with_suffix("").parts)
                     for f in files)
    assert len(modules) >= 18 and "det.heads.roi._plugin" in modules
    result = _mypy(repo_root, mypy_cache, "--follow-imports=silent", *(a for m in modules for a in ("-m", m)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_users_strict_code_imports_the_lazily_served_names(repo_root, mypy_cache, tmp_path):
    """A lazy package serves its names at run time through ``__getattr__``; a user's
    ``mypy --strict`` accepts ``from det.heads.rpn import RPN`` only when ``__all__`` lists the name
    literally (tests/test_lazy_exports.py keeps every such package so)."""
    user = tmp_path / "user_code.py"
    user.write_text(
        "from det.backbones import build_resnet_fpn_backbone\n"
        "from det.core.config import LazyConfig\n"
        "from det.core.modeling import GeneralizedRCNN\n"
        "from det.engine.train import DefaultTrainer, hooks\n"
        "from det.export import export_torch\n"
        "from det.heads.mask import paste_masks_in_image\n"
        "from det.heads.rpn import RPN\n"
        "from det.projects.point_rend import PointRendMaskHead\n"
        "reveal_type(hooks.PeriodicCheckpointer)\n"
        "reveal_type(LazyConfig.load)\n"
    )
    result = _mypy(repo_root, mypy_cache, str(user))
    assert "does not explicitly export" not in result.stdout, result.stdout
    assert "user_code.py:9: note: Revealed type is \"def (checkpointer:" in result.stdout, result.stdout
    assert "user_code.py:10: note: Revealed type is \"def (filename:" in result.stdout, result.stdout
