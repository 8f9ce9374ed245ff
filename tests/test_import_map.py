"""The dependency picture is data (import-map.toml) and the code obeys it.

Every module of every distribution is parsed with ``ast`` (imports inside functions, lazy-export
tables, plugin declarations and ``import_module("...")`` too): an import the map does not allow,
an import of another distribution's private module, or a pyproject that does not declare exactly
what its code imports is a failure whose message says what to change. The planted-import tests
prove that each rule bites, on a copy of the tree.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("det_import_map_tool", REPO / "tools" / "import_map.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


import_map = _load_tool()


def test_the_code_obeys_the_import_map_and_the_pyprojects():
    problems = import_map.check_imports(import_map.load_map(REPO))
    assert not problems, "\n\n".join(problems)


def test_generated_tables_are_up_to_date():
    problems = import_map.check_docs(import_map.load_map(REPO))
    assert not problems, "\n".join(problems)


def test_every_distribution_of_the_tree_is_a_part_of_the_map():
    imap = import_map.load_map(REPO)
    folders = import_map.distribution_folders(REPO)
    assert sorted(part.folder for part in imap.parts.values()) == folders
    assert {"det-data", "det-evaluation", "det-export"} <= set(imap.parts)


def test_the_cut_between_data_evaluation_and_engine():
    """det.data imports neither det.evaluation nor det.engine; det.evaluation does not import det.engine."""
    imap = import_map.load_map(REPO)
    for name, above in [("det-data", {"det-evaluation", "det-engine"}), ("det-evaluation", {"det-engine"})]:
        part = imap.parts[name]
        assert not above & set(part.allow)
        assert all(part.forbidden(dist) for dist in above)
        imported = {imap.part_of_module(i.module).name for path, module in imap.source_files(part)
                    for i in import_map.scan_module(path, module) if i.module.startswith("det.")}
        assert not above & imported, (name, sorted(imported))


# --- reading imports ----------------------------------------------------------------------------


def test_scan_finds_imports_everywhere(tmp_path):
    source = tmp_path / "det" / "core" / "thing.py"
    source.parent.mkdir(parents=True)
    source.write_text(textwrap.dedent('''
        from __future__ import annotations
        import os
        from typing import TYPE_CHECKING
        from . import sibling
        from ..structures import Boxes
        if TYPE_CHECKING:
            from det.heads.roi import StandardROIHeads
        TABLE = {"Visualizer": "det.engine.visualizer"}
        DECL = ("ROI_HEADS", "X", "det.heads.mask.mask_head:X")
        def lazy():
            try:
                import lvis
            except ImportError:
                raise
            import importlib
            return importlib.import_module("det.data.catalog")
    '''))
    found = {i.module: i for i in import_map.scan_module(source, "det.core.thing")}
    assert set(found) == {"os", "typing.TYPE_CHECKING", "det.core.sibling", "det.structures.Boxes",
                          "det.heads.roi.StandardROIHeads", "det.engine.visualizer", "det.heads.mask.mask_head",
                          "lvis", "importlib", "det.data.catalog"}
    assert found["lvis"].guarded and found["lvis"].in_function
    assert not found["det.data.catalog"].guarded and found["det.data.catalog"].how == "call"
    assert found["det.engine.visualizer"].how == "name" and not found["det.engine.visualizer"].in_function
    assert found["det.heads.mask.mask_head"].how == "string"
    assert found["det.structures.Boxes"].line == 6


# --- planted problems on a copy of the tree -------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """The map, the docs with generated tables, and every distribution's pyproject and sources."""
    root = tmp_path / "repo"
    for name in ("import-map.toml", "README.md", "docs/architecture.md", "docs/guide.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    for pyproject in (REPO / "packages").rglob("pyproject.toml"):
        folder = pyproject.parent
        if "build" in folder.relative_to(REPO).parts:
            continue
        target = root / folder.relative_to(REPO)
        shutil.copytree(folder / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copy(pyproject, target / "pyproject.toml")
    assert import_map.check_imports(import_map.load_map(root)) == []
    return root


def _problems(root: Path) -> list[str]:
    return import_map.check_imports(import_map.load_map(root))


def _append(path: Path, text: str) -> int:
    """Append ``text`` to a module; returns the line number of its first line."""
    before = path.read_text()
    path.write_text(before + textwrap.dedent(text))
    return before.count("\n") + 1


def test_planted_upward_import_inside_a_function_fails_with_the_reason(tree):
    module = tree / "packages/core/src/det/core/modeling/build.py"
    line = _append(module, """
        def _planted():
            from det.heads.roi import StandardROIHeads
            return StandardROIHeads
    """)
    forbidden, undeclared = _problems(tree)
    assert forbidden.startswith(f"packages/core/src/det/core/modeling/build.py:{line + 2} imports det.heads.roi")
    assert "det-core must not import det-heads-roi" in forbidden
    assert "core imports no head" in forbidden
    assert undeclared.endswith('packages/core/pyproject.toml does not declare: add "det-heads-roi>=0.1,<0.2" '
                               "to [project] dependencies")


def test_planted_import_not_in_allow_says_what_to_add(tree):
    _append(tree / "packages/heads/rpn/src/det/heads/rpn/rpn.py", "from det.data import MetadataCatalog\n")
    problems = _problems(tree)
    assert any("which import-map.toml does not allow for det-heads-rpn" in p
               and '[parts.det-heads-rpn.allow]:\n    det-data = "<why det-heads-rpn needs it>"' in p
               for p in problems), problems
    # and the pyproject does not declare it either
    assert any('add "det-data>=0.1,<0.2" to [project] dependencies' in p for p in problems), problems


def test_planted_private_import_fails(tree):
    _append(tree / "packages/heads/roi/src/det/heads/roi/box_head.py",
            "from det.core._plugin import det_components\n")
    (problem,) = _problems(tree)
    assert "imports det.core._plugin.det_components, a private module of det-core" in problem


def test_private_names_of_public_modules_are_allowed(tree):
    # detectron2's own heads import box_regression._dense_box_regression_loss: a name, not a module
    _append(tree / "packages/heads/roi/src/det/heads/roi/box_head.py",
            "from det.core.modeling.box_regression import _dense_box_regression_loss\n")
    assert _problems(tree) == []


def test_planted_undeclared_third_party_import_fails(tree):
    line = _append(tree / "packages/heads/rpn/src/det/heads/rpn/rpn.py", "import yaml\n")
    (problem,) = _problems(tree)
    assert problem == (f"packages/heads/rpn/src/det/heads/rpn/rpn.py:{line} imports yaml (distribution pyyaml), "
                       'which packages/heads/rpn/pyproject.toml does not declare: add "pyyaml" to [project] dependencies')


def test_guarded_import_may_be_an_extra_but_not_undeclared(tree):
    module = tree / "packages/heads/rpn/src/det/heads/rpn/rpn.py"
    _append(module, """
        def _optional():
            try:
                import yaml
            except ImportError:
                return None
            return yaml
    """)
    (problem,) = _problems(tree)
    assert "under `except ImportError`, but packages/heads/rpn/pyproject.toml declares it nowhere" in problem
    pyproject = tree / "packages/heads/rpn/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("[project.entry-points.det]",
                                                       '[project.optional-dependencies]\nyaml = ["pyyaml>=6"]\n\n'
                                                       "[project.entry-points.det]"))
    assert _problems(tree) == []


def test_an_extras_package_imported_at_module_level_fails(tree):
    _append(tree / "packages/evaluation/src/det/evaluation/lvis_evaluation.py", "import lvis\n")
    (problem,) = _problems(tree)
    assert "only in the extra ['lvis'] of packages/evaluation/pyproject.toml) at module level" in problem


def test_declared_but_unused_dependency_fails_unless_it_is_a_convenience(tree):
    pyproject = tree / "packages/heads/rpn/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"torch>=2.1",', '"torch>=2.1",\n  "tqdm>=4.60",'))
    (problem,) = _problems(tree)
    assert "declares tqdm in [project] dependencies, but no module of det-heads-rpn imports it" in problem
    assert '[parts.det-heads-rpn.convenience]:\n    tqdm = "<why users want it installed>"' in problem
    mapping = tree / "import-map.toml"
    mapping.write_text(mapping.read_text().replace(
        "[parts.det-heads-rpn.forbid]", '[parts.det-heads-rpn.convenience]\ntqdm = "planted"\n\n[parts.det-heads-rpn.forbid]'))
    assert _problems(tree) == []


def test_optional_import_declared_as_required_fails(tree):
    # det-heads-roi imports det-backbones only under `except ImportError` (C4's res5)
    pyproject = tree / "packages/heads/roi/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"numpy>=1.24",', '"numpy>=1.24",\n  "det-backbones>=0.1,<0.2",'))
    problems = _problems(tree)
    assert any("imports det.backbones.resnet.BottleneckBlock (distribution det-backbones) only as an option" in p
               for p in problems), problems


def test_plugin_module_importing_torch_fails(tree):
    _append(tree / "packages/heads/rpn/src/det/heads/rpn/_plugin.py", "import torch\n")
    (problem,) = _problems(tree)
    assert "imports torch at module level in det.heads.rpn._plugin" in problem
    assert "never torch" in problem


def test_module_level_torchvision_import_fails(tree):
    _append(tree / "packages/backbones/src/det/backbones/fpn.py", "import torchvision.ops\n")
    (problem,) = _problems(tree)
    assert "imports torchvision.ops at module level in det.backbones.fpn" in problem


def test_det_requirements_are_version_ranges(tree):
    pyproject = tree / "packages/heads/rpn/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"det-structures>=0.1,<0.2"', '"det-structures"'))
    (problem,) = _problems(tree)
    assert "'det-structures' must be a version range" in problem


def test_allowed_and_forbidden_at_once_is_refused(tree):
    mapping = tree / "import-map.toml"
    mapping.write_text(mapping.read_text().replace(
        '[parts.det-core.allow]\n', '[parts.det-core.allow]\ndet-backbones = "planted"\n'))
    problems = _problems(tree)
    assert any("det-backbones is both allowed and forbidden" in p for p in problems), problems


def test_a_new_distribution_gets_its_table_printed(tree):
    folder = tree / "packages/projects/example"
    (folder / "src/det/projects/example").mkdir(parents=True)
    (folder / "src/det/projects/example/__init__.py").write_text("")
    (folder / "src/det/projects/example/point_head.py").write_text(
        "import torch\nfrom det.core.layers import Conv2d\nfrom det.heads.roi import StandardROIHeads\n")
    (folder / "pyproject.toml").write_text(textwrap.dedent('''
        [project]
        name = "det-example"
        dependencies = ["det-core>=0.1,<0.2", "det-heads-roi>=0.1,<0.2", "torch>=2.1"]
    '''))
    problems = _problems(tree)
    assert problems[0] == textwrap.dedent('''\
        packages/projects/example/pyproject.toml (det-example) has no entry in import-map.toml. Add this table there (and a `reason` for each det distribution it imports; `forbid` what it must never import), then run `python3 dev.py run python tools/import_map.py --write-docs`:

        [parts.det-example]
        folder = "packages/projects/example"
        modules = ["det.projects.example"]
        holds = "<one line for the README table>"

        [parts.det-example.allow]
        det-core = "<why det-example imports it>"
        det-heads-roi = "<why det-example imports it>"
    ''')
    # adding the table (and regenerating the docs) is all it takes
    mapping = tree / "import-map.toml"
    mapping.write_text(mapping.read_text() + textwrap.dedent('''
        [parts.det-example]
        folder = "packages/projects/example"
        modules = ["det.projects.example"]
        holds = "an example project"

        [parts.det-example.allow]
        det-core = "layers"
        det-heads-roi = "its ROI heads extend StandardROIHeads"
    '''))
    assert _problems(tree) == []
    guide = tree / "docs/guide.md"
    guide.write_text(guide.read_text().replace("| Triton kernels on CUDA |", "| an example project | `det-example` |\n| Triton kernels on CUDA |"))
    imap = import_map.load_map(tree)
    assert import_map.write_docs(imap) == ["docs/architecture.md", "README.md"]
    assert import_map.check_docs(imap) == []
    assert "| det-example | `det.projects.example` | an example project |" in (tree / "README.md").read_text()


def test_stale_docs_are_reported(tree):
    mapping = tree / "import-map.toml"
    mapping.write_text(mapping.read_text().replace('holds = "RPN, RRPN"', 'holds = "region proposals"'))
    (problem,) = import_map.check_docs(import_map.load_map(tree))
    assert problem == ("README.md: the generated 'distributions' table is out of date: run "
                       "`python3 dev.py run python tools/import_map.py --write-docs`")


def test_the_guide_names_every_distribution(tree):
    guide = tree / "docs/guide.md"
    guide.write_text(guide.read_text().replace("| Triton kernels on CUDA | `det-ops-cuda` |\n", ""))
    (problem,) = import_map.check_docs(import_map.load_map(tree))
    assert problem == ('docs/guide.md: the table of "Install what you need" does not name det-ops-cuda: add a row '
                       "saying what each is for")
