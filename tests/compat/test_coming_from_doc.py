"""The examples of docs/coming_from_detectron2.md run (the README's and the guide's are run by
tests/integration/test_readme_examples.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_page_is_linked_from_the_readme(repo_root):
    assert "](docs/coming_from_detectron2.md)" in (repo_root / "README.md").read_text()
    page = (repo_root / "docs" / "coming_from_detectron2.md").read_text()
    for target in re.findall(r"\]\(([^)#:]+)\)", page):
        assert (repo_root / "docs" / target).resolve().exists(), f"the page links to missing {target}"


@pytest.mark.slow
def test_examples_run_and_print_what_the_page_says(repo_root, shared_dir, tmp_path):
    page = (repo_root / "docs" / "coming_from_detectron2.md").read_text()
    code = "\n\n".join(body for lang, body in FENCE.findall(page) if lang == "python")
    script = tmp_path / "coming_from_detectron2.py"
    script.write_text(code.replace("../shared/", f"{shared_dir.as_posix()}/"))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    expected = [m.strip() for m in re.findall(r"^\s*print\(.*\)  # (.*)$", code, re.M)]
    assert printed == expected
