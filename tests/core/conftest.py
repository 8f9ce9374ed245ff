"""Fixtures of tests/core: throwaway det plugin distributions and a clean plugin state.

The toy plugins are real projects built into real wheels (hatchling, no index) so that tests can
install them into a child venv and exercise entry-point discovery as a user's `pip install` would.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

# name of the distribution -> (python package, plugin module source, other modules of the package)
TOY_PLUGINS: dict[str, tuple[str, str, dict[str, str]]] = {
    # A well-behaved plugin that uses every hook.
    "det-toy-alpha": ("toy_alpha", """
        from det.core.hookspecs import hookimpl

        DET_PLUGIN_API_VERSION = 1

        @hookimpl
        def det_components():
            return [
                ("BACKBONE", "build_toy_backbone", "toy_alpha.components:build_toy_backbone"),
                ("META_ARCH", "ToyArch", "toy_alpha.components:ToyArch"),
                ("ROI_HEADS", "ToyShared", "toy_alpha.components:ToyShared"),
                ("ROI_HEADS", "ToyMissingAttr", "toy_alpha.components:DoesNotExist"),
            ]

        @hookimpl
        def det_ops():
            return [("nms", "toydev", "toy_alpha.ops:nms")]

        @hookimpl
        def det_checkpoint_converters():
            return [("toy_alpha_converter", "toy_alpha.ops:convert")]

        @hookimpl
        def det_extend_config(cfg):
            from det.core.config import CfgNode
            cfg.MODEL.TOY = CfgNode()
            cfg.MODEL.TOY.DEPTH = 3

        @hookimpl
        def det_cli_commands():
            return [("toy-hello", "say hello from alpha", "toy_alpha.cmd:register")]
    """, {
        "components": """
            def build_toy_backbone(cfg, input_shape):
                return ("toy backbone", cfg, input_shape)

            class ToyArch:
                pass

            class ToyShared:
                origin = "alpha"
        """,
        "ops": """
            def nms(boxes, scores, iou_threshold):
                return "alpha-nms"

            def convert(state):
                return None
        """,
        "cmd": """
            import sys

            def register(parser):
                parser.add_argument("--name", default="world")

                def run(args):
                    print(f"hello {args.name} from alpha; toy_alpha.cmd imported")
                    return 3
                return run
        """,
    }),
    # Provides the same ROI_HEADS name as alpha.
    "det-toy-beta": ("toy_beta", """
        from det.core.hookspecs import hookimpl

        DET_PLUGIN_API_VERSION = 1

        @hookimpl
        def det_components():
            return [
                ("ROI_HEADS", "ToyShared", "toy_beta.components:ToyShared"),
                ("BACKBONE", "build_beta_backbone", "toy_beta.components:build_beta_backbone"),
            ]
    """, {
        "components": """
            class ToyShared:
                origin = "beta"

            def build_beta_backbone(cfg, input_shape):
                return "beta"
        """,
    }),
    # Fails to import.
    "det-toy-broken": ("toy_broken", """
        raise RuntimeError("boom from toy-broken")
    """, {}),
    # Written for a plugin API this core does not speak.
    "det-toy-future": ("toy_future", """
        from det.core.hookspecs import hookimpl

        DET_PLUGIN_API_VERSION = 2

        @hookimpl
        def det_components():
            return [("BACKBONE", "build_future_backbone", "toy_future.x:y")]
    """, {}),
    # Declares no API version at all.
    "det-toy-noversion": ("toy_noversion", """
        from det.core.hookspecs import hookimpl

        @hookimpl
        def det_components():
            return [("BACKBONE", "build_noversion_backbone", "toy_noversion.x:y")]
    """, {}),
    # Loads, but misbehaves in its hooks.
    "det-toy-rude": ("toy_rude", """
        from det.core.hookspecs import hookimpl

        DET_PLUGIN_API_VERSION = 1

        @hookimpl
        def det_components():
            raise RuntimeError("rude components")

        @hookimpl
        def det_ops():
            return [("nms", "cuda"), ("roi_align", "rudedev", "toy_rude.ops:roi_align")]

        @hookimpl
        def det_extend_config(cfg):
            cfg.SOLVER.BASE_LR = 123.0
            cfg.RUDE_KEY = 1

        @hookimpl
        def det_component():
            return []
    """, {}),
}


def _write_toy_project(root: Path, dist: str, package: str, plugin_src: str, modules: dict[str, str]) -> Path:
    project = root / dist
    pkg = project / "src" / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "_plugin.py").write_text(textwrap.dedent(plugin_src).lstrip())
    for name, src in modules.items():
        (pkg / f"{name}.py").write_text(textwrap.dedent(src).lstrip())
    short = dist.removeprefix("det-")
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "{dist}"
        version = "0.0.1"

        [project.entry-points.det]
        {short} = "{package}._plugin"

        [tool.hatch.build.targets.wheel]
        packages = ["src/{package}"]
    """).lstrip())
    return project


@pytest.fixture(scope="session")
def toy_plugin_wheels(tmp_path_factory: pytest.TempPathFactory, wheel_builder) -> dict[str, Path]:
    """Wheels of the throwaway plugin distributions in TOY_PLUGINS, by distribution name."""
    root = tmp_path_factory.mktemp("toy-plugins")
    out = tmp_path_factory.mktemp("toy-wheels")
    return {dist: wheel_builder(_write_toy_project(root, dist, pkg, src, mods), out)
            for dist, (pkg, src, mods) in TOY_PLUGINS.items()}


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch):
    """Plugin discovery and preferences start empty; in-process registrations made by the test
    are dropped afterwards; DET_DISABLE_PLUGINS / DET_PREFER are unset."""
    from det.core import plugins, registry

    monkeypatch.delenv("DET_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("DET_PREFER", raising=False)
    saved = {kind: dict(objs) for kind, objs in registry._in_process.items()}
    plugins.reset()
    yield plugins
    plugins.reset()
    registry._in_process.clear()
    registry._in_process.update(saved)
