"""Every "module:attribute" target that det's docs name exists.

Plugin authors copy these strings (the hook specifications' examples, the component tables of the
package READMEs, the guide); a target naming a module that does not exist (as
``det.heads.roi.standard`` once did) teaches a declaration that fails at build time.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TARGET = re.compile(r"\b(det(?:\.[a-z_][a-z0-9_]*)+):([A-Za-z_][A-Za-z0-9_]*)\b")
DOCUMENTS = [
    REPO / "packages/core/src/det/core/hookspecs.py",
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "packages").glob("*/README.md")),
    *sorted((REPO / "packages").glob("heads/*/README.md")),
]


def _targets() -> list[tuple[str, str, str]]:
    found = []
    for path in DOCUMENTS:
        for match in TARGET.finditer(path.read_text()):
            found.append((str(path.relative_to(REPO)), match.group(1), match.group(2)))
    return sorted(set(found))


def test_the_documents_name_targets():
    targets = _targets()
    modules = {module for _, module, _ in targets}
    assert {"det.heads.roi.roi_heads", "det.ops_cuda.nms_kernels"} <= modules
    assert len(targets) >= 15


# Examples that name a distribution being written in parallel, not in this tree yet: module prefix ->
# that distribution. An entry goes as soon as the distribution is in import-map.toml.
PLANNED: dict[str, str] = {}


def _provided(module: str) -> bool:
    """Whether a distribution of the tree (a part of import-map.toml) provides ``module``."""
    import tomllib

    parts = tomllib.loads((REPO / "import-map.toml").read_text())["parts"].values()
    prefixes = [m for part in parts for m in part["modules"]]
    best = max((m for m in prefixes if module == m or module.startswith(m + ".")), key=len, default=None)
    if best is None:
        return False
    planned = next((p for p in PLANNED if module == p or module.startswith(p + ".")), None)
    return planned is None or len(best) >= len(planned)


@pytest.mark.parametrize(("document", "module", "attribute"), _targets())
def test_documented_target_exists(document, module, attribute):
    if not _provided(module):
        planned = [dist for prefix, dist in PLANNED.items() if module == prefix or module.startswith(prefix + ".")]
        assert planned, f"{document} names {module}:{attribute}, but no distribution of import-map.toml provides {module}"
        return  # its distribution lands later (and then this target is checked like the others)
    imported = importlib.import_module(module)
    assert hasattr(imported, attribute), f"{document} names {module}:{attribute}, which {module} does not define"


def test_planned_distributions_are_not_in_the_tree_yet():
    for prefix, dist in PLANNED.items():
        assert not _provided(prefix + ".x"), f"{dist} is in import-map.toml now: remove {prefix!r} from PLANNED"
