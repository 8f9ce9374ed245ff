"""bench/bench_ops.py runs anywhere: on a machine without CUDA it says it skipped and exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch


@pytest.mark.skipif(torch.cuda.is_available(), reason="times the kernels for real on a CUDA machine")
def test_bench_skips_without_cuda(repo_root):
    result = subprocess.run(
        [sys.executable, str(repo_root / "bench" / "bench_ops.py"), "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "bench_ops: skipped, no CUDA device (the Triton kernels are tested on the CPU by tests/ops_cuda)"
    )
