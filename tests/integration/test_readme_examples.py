"""The examples of README.md and docs/guide.md run, so they cannot rot.

Each document's ```python blocks are joined in order into one script (later blocks use earlier
names, as a reader would) and run in a fresh interpreter from the repository root, with the
`../shared/` paths pointed at the shared folder actually in use. The `det ...` commands of its
```bash blocks are run too. Printed results quoted in the documents' comments are checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = ["README.md", "docs/guide.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def _script(repo_root: Path, shared_dir: Path, doc: str) -> str:
    code = "\n\n".join(blocks(repo_root / doc, "python"))
    return code.replace("../shared/", f"{shared_dir.as_posix()}/")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_documents_have_examples_and_link_each_other(repo_root):
    readme = (repo_root / "README.md").read_text()
    assert "<!-- guide -->" in readme and "](docs/guide.md)" in readme.split("<!-- guide -->", 1)[1]
    assert len(blocks(repo_root / "README.md", "python")) >= 1
    assert len(blocks(repo_root / "docs/guide.md", "python")) >= 8
    guide = (repo_root / "docs/guide.md").read_text()
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", guide):
        assert (repo_root / "docs" / target).resolve().exists(), f"guide links to missing {target}"


@pytest.mark.slow
def test_readme_examples_run(repo_root, shared_dir, tmp_path):
    script = tmp_path / "readme_examples.py"
    script.write_text(_script(repo_root, shared_dir, "README.md"))
    out = _run([sys.executable, str(script)], repo_root).stdout
    assert "(480, 640)" in out


@pytest.mark.slow
def test_guide_examples_run(repo_root, shared_dir, tmp_path):
    script = tmp_path / "guide_examples.py"
    script.write_text(_script(repo_root, shared_dir, "docs/guide.md"))
    lines = _run([sys.executable, str(script)], repo_root).stdout.splitlines()
    assert lines[0] == "GeneralizedRCNN StandardROIHeads"
    assert lines[1] == "100 torch.Size([100, 480, 640])"
    assert lines[2] == "(480, 640)"
    assert lines[3] == "['p2', 'p3', 'p4', 'p5', 'p6'] 1000 (200, 16, 14, 14)"
    assert "{'tiny4': (1, 16, 4, 4)}" in lines
    assert "[]" in lines  # the disabled keypoint plugin lists no component
    # the plugin page's example: det-pointrend's YAML, and the same YAML with the plugin disabled
    assert "PointRendMaskHead StandardPointHead" in lines and "det.projects.point_rend.point_head" in lines
    assert any(line.startswith("Non-existent config key: MODEL.ROI_MASK_HEAD.FC_DIM. This key is added by "
                               "det-pointrend, which is installed but disabled") for line in lines)
    assert "1" in lines  # BestOnlyROIHeads keeps one detection
    assert lines[-1] == "True"
    assert any("det-heads-roi" in line and "in-process" in line for line in lines)


@pytest.mark.slow
def test_documented_det_commands_run(repo_root):
    det = Path(sys.executable).parent / "det"
    commands = [line.split("#", 1)[0].split() for doc in DOCS for block in blocks(repo_root / doc, "bash")
                for line in block.splitlines() if line.startswith("det ")]
    assert ["det", "plugins"] in commands
    for command in commands:
        out = _run([str(det), *command[1:]], repo_root).stdout
        assert "det-core" in out
