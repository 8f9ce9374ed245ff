"""Run det.ops_cuda's Triton kernels on the CPU, in Triton's interpreter.

The interpreter is chosen when a kernel is defined, so the variable is set here, before any test
module imports det.ops_cuda. Sizes in these tests stay small: the interpreter runs every kernel
operation as a numpy call.
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            # numpy's warning for 0/0 in the interpreter; on a GPU it is a silent NaN, which the
            # kernels mean (torchvision's IoU of two empty boxes is NaN: never suppressed)
            item.add_marker(pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"))


@pytest.fixture(autouse=True)
def _interpreted():
    from det.ops_cuda._utils import INTERPRETED

    if not INTERPRETED:
        pytest.fail("det.ops_cuda kernels were defined before TRITON_INTERPRET=1 was set")
