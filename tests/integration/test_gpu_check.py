"""bench/gpu_check.py's checks run here, on the CPU, so the script works the day a GPU is there:
golden parity, det-ops-cuda's kernels (in Triton's interpreter, small sizes), a training step of a
meta-architecture, the demo model's training run, DDP over gloo; and the command's own rules (one
line per check, exit status, no CUDA -> one line and 0)."""

from __future__ import annotations

import importlib.util
import io
import sys

import pytest
import torch


@pytest.fixture(scope="module")
def gpu_check(repo_root):
    # imported as "gpu_check" with bench/ on sys.path, as the script runs: DDP's spawned workers
    # find their function by that module name
    sys.path.insert(0, str(repo_root / "bench"))
    spec = importlib.util.spec_from_file_location("gpu_check", repo_root / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_0(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check"
    ]


def test_one_line_per_check_and_failures_counted(gpu_check):
    def fails():
        raise gpu_check.CheckFailed("loss did not fall")

    def crashes():
        raise ZeroDivisionError("division by zero\nsecond line")

    out = io.StringIO()
    failed = gpu_check.run_checks(
        [("a", lambda: "fine", ""), ("b", fails, ""), ("c", crashes, ""), ("d", None, "needs 2 GPUs")], out=out
    )
    lines = out.getvalue().splitlines()
    assert failed == 2 and len(lines) == 4
    assert lines[0].startswith("PASS a (") and lines[0].endswith("s): fine")
    assert lines[1].startswith("FAIL b (") and lines[1].endswith("s): loss did not fall")
    assert lines[2].startswith("FAIL c (") and "ZeroDivisionError: division by zero [test_gpu_check.py:" in lines[2]
    assert lines[3] == "SKIP d: needs 2 GPUs"


def test_every_check_is_listed(gpu_check, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    names = [name for name, _, _ in gpu_check.all_checks("cuda")]
    assert {f"golden/{c}" for c in gpu_check.golden_cases()} <= set(names) and gpu_check.golden_cases()
    assert {f"kernel/{op}" for op in gpu_check.KERNEL_SIZES} <= set(names)
    assert "train/rotated_rcnn" in names and "train/panoptic_fpn" in names
    assert names[-3:] == ["amp", "ddp", "speed"]
    assert dict((n, r) for n, c, r in gpu_check.all_checks("cuda") if c is None) == {"ddp": "needs 2 GPUs, this machine has 1"}


@pytest.mark.slow
def test_golden_check(gpu_check):
    assert gpu_check.check_golden("retinanet_R_50_FPN", "cpu") == "instances matched 100/100, 100/100"


KERNEL_OPS = ["nms", "batched_nms", "nms_rotated", "box_iou_rotated", "roi_align", "roi_align_rotated", "paste_masks"]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0/0 IoU in the interpreter
@pytest.mark.parametrize("op", KERNEL_OPS)
def test_kernel_check_on_emulated_cuda(gpu_check, op):
    """The check as the GPU runs it, device "cuda", with det-ops-cuda's kernels serving "cuda"
    tensors of det.core.emulated_cuda (the kernels run in Triton's interpreter on their memory):
    the wrappers are CUDA-correct, and only NMS (a data-dependent size) waits for the host."""
    from det.core.emulated_cuda import EmulatedCUDA

    with EmulatedCUDA() as mode:
        detail = gpu_check.check_kernel(op, "cuda", scale=0.004, gradients=False)
        syncs = mode.syncs()
    assert detail.startswith(("8 ", "20 ", "32 ")), detail
    kernel_syncs = [e for e in syncs if "det/ops_cuda/" in e.where]
    assert len(kernel_syncs) == (1 if "nms" in op else 0), kernel_syncs


@pytest.mark.parametrize("op", ["roi_align", "roi_align_rotated"])
def test_kernel_check_of_gradients_in_the_interpreter(gpu_check, op):
    assert gpu_check.check_kernel(op, "cpu", scale=0.004).endswith(", gradients match")


def test_kernel_check_fails_on_a_wrong_kernel(gpu_check, monkeypatch):
    import det.ops_cuda

    monkeypatch.setattr(det.ops_cuda, "nms", lambda boxes, scores, thr: torch.arange(len(boxes)))
    with pytest.raises(gpu_check.CheckFailed, match=r"kept 20 vs reference \d+"):
        gpu_check.check_kernel("nms", "cpu", scale=0.004)


@pytest.mark.slow
def test_meta_arch_check(gpu_check):
    import re

    assert re.fullmatch(r"loss \d+\.\d{3}, \d+ gradients", gpu_check.check_meta_arch("mask_rcnn_fpn", "cpu"))


@pytest.mark.slow
def test_amp_training_check(gpu_check):
    # float32 here: this CPU (AVX2) has no bfloat16 convolution kernels
    detail = gpu_check.check_amp_training("cpu", steps=12, amp=False, images_per_batch=2)
    assert detail.startswith("12 steps, float32, loss ")


@pytest.mark.slow
def test_ddp_check_over_gloo(gpu_check):
    assert gpu_check.check_ddp("cpu", 2) == "2 ranks over gloo, 3 steps, parameters identical on every rank"


@pytest.mark.slow
def test_speed_check(gpu_check):
    """Small models stand in for the full-size pair (whose calibration alone takes minutes here)."""
    import _meta_archs
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    def small_models():
        tv = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=64, max_size=96,
                                   trainable_backbone_layers=5)
        return _meta_archs.build("mask_rcnn_fpn"), tv

    detail = gpu_check.check_speed("cpu", runs=1, image_hw=(64, 96), models=small_models)
    assert detail.startswith("inference det ") and "training step det " in detail and detail.endswith("median of 1")
