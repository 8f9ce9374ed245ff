#!/usr/bin/env python3
"""Set up det's one development environment (.venv/) and run things in it.

    python3 dev.py setup        # create .venv/ and install every distribution editable
    python3 dev.py test [ARGS]  # set up, then run the whole test suite (pytest ARGS)
    python3 dev.py demo [ARGS]  # set up, then run the main job: `det demo`
    python3 dev.py run CMD...   # set up, then run CMD inside .venv/

Needs only Python >= 3.11 and pip. Set-up is skipped when nothing it depends on changed since the
last run (a stamp file in .venv/ holds a hash of every pyproject.toml and of this file).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".det-setup-stamp"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"

# torch and torchvision are pinned: every machine here has these wheels on local disk.
PINNED = ["torch==2.14.1", "torchvision==0.29.1"]
# What the tests, benchmarks and build checks use beyond the distributions' own dependencies.
DEV_TOOLS = [
    "pytest>=8",
    "pytest-xdist>=3.5",
    "hypothesis>=6.100",
    "hatchling>=1.21",
    "editables>=0.5",
    "build>=1.2",
    "safetensors>=0.4",
    "onnx>=1.16",
    "onnxruntime>=1.18",
    "onnxscript>=0.1",
    "matplotlib>=3.8",
    "mypy>=1.10",
    "ruff>=0.5",
    "types-PyYAML",
    "types-tqdm",
]
# Optional extras of workspace members that the test suite exercises, installed with the member.
# det-evaluation[lvis]: the official LVIS API, which LVISEvaluator's tests run end to end.
# det-core[format]: black, with which LazyConfig.to_py formats its code (as detectron2's does).
# det-compat-detectron2[tools]: psutil, which detectron2's own tools/benchmark.py imports.
DEV_EXTRAS = {"packages/evaluation": "lvis", "packages/core": "format", "packages/compat-detectron2": "tools"}


def members() -> list[Path]:
    """Every distribution folder of the workspace (the same globs as the root pyproject)."""
    folders = sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))
    folders += sorted(p.parent for p in ROOT.glob("packages/heads/*/pyproject.toml"))
    folders += sorted(p.parent for p in ROOT.glob("packages/projects/*/pyproject.toml"))
    return folders


def editable_args(with_extras: bool) -> list[str]:
    """``-e <folder>`` for every member; ``-e <folder>[extra]`` for those in DEV_EXTRAS."""
    args = []
    for folder in members():
        extra = DEV_EXTRAS.get(folder.relative_to(ROOT).as_posix()) if with_extras else None
        args += ["-e", f"{folder}[{extra}]" if extra else str(folder)]
    return args


def setup_hash() -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for folder in members():
        digest.update(str(folder.relative_to(ROOT)).encode())
        digest.update((folder / "pyproject.toml").read_bytes())
    return digest.hexdigest()


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def setup() -> None:
    wanted = setup_hash()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        run([sys.executable, "-m", "venv", str(VENV)])
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    run([*pip, *PINNED, *DEV_TOOLS])
    # All members in one call, from the tree: `det-core` and friends must never resolve from an
    # index (other projects own those names on PyPI). No build isolation: hatchling is in the venv.
    run([*pip, "--no-build-isolation", "--no-deps", *editable_args(with_extras=False)])
    # now resolve third-party dependencies, with the extras the tests need
    run([*pip, "--no-build-isolation", *editable_args(with_extras=True)])
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    setup()
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    # Tool caches stay inside the repo or the system temp dir, never in $HOME.
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(ROOT / ".cache" / "inductor"))
    env.setdefault("TRITON_CACHE_DIR", str(ROOT / ".cache" / "triton"))
    env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(ROOT / ".cache" / "hypothesis"))
    env.setdefault("DET_CACHE", str(ROOT / ".cache" / "det"))  # generated datasets, downloads
    if command == "setup":
        return 0
    if command == "test":
        # One pytest-xdist worker per core (two here) unless the caller chose (-n / -p no:xdist).
        parallel = [] if any(a.startswith(("-n", "--numprocesses", "-pno:xdist")) or a == "no:xdist"
                             for a in rest) else ["-n", str(min(2, os.cpu_count() or 1))]
        cmd = [str(PYTHON), "-m", "pytest", *parallel, *rest]
    elif command == "demo":
        cmd = [str(BIN / "det"), "demo", *rest]
    elif command == "run":
        cmd = rest
    else:
        print(f"unknown command {command!r}; expected setup, test, demo or run", file=sys.stderr)
        return 2
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
