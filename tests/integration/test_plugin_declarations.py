"""Every installed det plugin, checked the same way: its module is cheap (no torch), it speaks plugin
API 1, what it declares imports, and detectron2's standard names come from the distribution that
core's hint table names. Distribution-specific declarations are tested in each one's folder."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import metadata

import pytest

from det.core.registry import STANDARD_PROVIDERS, get_component, list_components

DET_ENTRY_POINTS = sorted(
    (ep for ep in metadata.entry_points(group="det") if ep.dist and ep.dist.name.startswith("det-")),
    key=lambda ep: ep.name,
)


def test_every_detectron2_component_name_comes_from_its_distribution(reference_dir):
    declared = {(c.kind, c.name): c.distribution for c in list_components()}
    wanted = {}
    for line in (reference_dir / "detectron2_registry_names.txt").read_text().splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        kind, _, names = line.partition(":")
        wanted.update({(kind.strip(), n.strip()): STANDARD_PROVIDERS[(kind.strip(), n.strip())]
                       for n in names.split(",") if n.strip()})
    assert len(wanted) == 21
    assert {key: declared.get(key) for key in wanted} == wanted


@pytest.mark.parametrize("entry_point", DET_ENTRY_POINTS, ids=lambda ep: ep.name)
def test_plugin_module_and_package_import_without_torch(entry_point):
    package = entry_point.value.rpartition("._plugin")[0] or entry_point.value
    code = (
        f"import sys, importlib\n"
        f"plugin = importlib.import_module({entry_point.value!r})\n"
        f"package = importlib.import_module({package!r})\n"
        "assert plugin.DET_PLUGIN_API_VERSION == 1, plugin.DET_PLUGIN_API_VERSION\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(package.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == entry_point.dist.version


@pytest.mark.parametrize("distribution", sorted({ep.dist.name for ep in DET_ENTRY_POINTS}))
def test_declared_components_import_to_their_targets(distribution):
    for info in list_components():
        if info.distribution != distribution:
            continue
        module, _, attribute = info.target.partition(":")
        assert get_component(info.kind, info.name) is getattr(importlib.import_module(module), attribute)
