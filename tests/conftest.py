"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DET_SHARED_DIR", REPO_ROOT.parent / "shared"))
GOLDEN = SHARED / "golden"
GOLDEN_CASES = ("mask_rcnn_R_50_FPN", "faster_rcnn_R_50_C4", "keypoint_rcnn_R_50_FPN", "retinanet_R_50_FPN")


def pytest_configure(config: pytest.Config) -> None:
    # Two pytest-xdist workers on two cores: one torch thread each keeps them from fighting.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}; set DET_SHARED_DIR to the shared folder")
    return SHARED


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    return shared_dir / "golden"


@pytest.fixture(scope="session")
def configs_dir(shared_dir: Path) -> Path:
    return shared_dir / "detectron2-configs"


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"
