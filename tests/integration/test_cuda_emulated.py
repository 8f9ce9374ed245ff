"""CUDA-correctness without a GPU: every meta-architecture runs a training forward pass and an
inference with model and inputs on "cuda:0" under det.core.emulated_cuda.EmulatedCUDA, which keeps
the real values, checks devices as a GPU does, applies CUDA's float16 autocast and counts host
synchronisations. Planted bugs show that a tensor made on the wrong device and a dtype that float16
autocast breaks are caught here, where a CPU run passes.

det's ops are served by det-core's references under emulation (DET_FORCE_REFERENCE_OPS): Triton's
interpreter needs ~25 s for one 500-box NMS. det-ops-cuda's kernels run on emulated CUDA tensors,
small inputs, in tests/integration/test_gpu_check.py (bench/gpu_check.py's kernel check), and
against the references in tests/ops_cuda.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
import types

import pytest
import torch

from det.core import EventStorage
from det.core.emulated_cuda import (
    DeviceMismatchError,
    EmulatedCUDA,
    autocast,
    emulate_module,
    emulation_active,
    is_emulated,
)
from det.structures import Instances


@pytest.fixture(scope="module")
def meta_archs(repo_root):
    path = repo_root / "bench" / "_meta_archs.py"
    spec = importlib.util.spec_from_file_location("_meta_archs_for_tests", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def reference_ops(monkeypatch):
    monkeypatch.setenv("DET_FORCE_REFERENCE_OPS", "1")


# --- the mode itself --------------------------------------------------------------------------


def test_tensors_on_emulated_cuda_say_cuda_and_hold_the_cpu_values():
    with EmulatedCUDA():
        x = torch.arange(6.0, device="cuda").reshape(2, 3)
        y = torch.tensor([[1.0, 2.0, 3.0]], device="cuda")
        z = x * y + 1
        assert (z.device, z.is_cuda, is_emulated(z)) == (torch.device("cuda", 0), True, True)
        assert z.new_zeros(2).device.type == "cuda" and z.new_tensor([1, 2]).device.type == "cuda"
        assert torch.zeros_like(z).device.type == "cuda"
        assert z[0].device.type == "cuda" and z[:, 1:].device.type == "cuda"
        host = z.cpu()
        assert type(host) is torch.Tensor and host.device.type == "cpu"
        assert host.tolist() == [[1.0, 3.0, 7.0], [4.0, 9.0, 16.0]]
        z.unsqueeze_(0)  # in-place shape changes follow
        assert z.shape == (1, 2, 3) and z.elem.shape == (1, 2, 3)
    assert not emulation_active() and not torch.cuda.is_initialized()


def test_modules_move_to_emulated_cuda_and_record_autograd_but_cannot_run_backward():
    with EmulatedCUDA():
        linear = torch.nn.Linear(3, 2).to("cuda")
        assert isinstance(linear.weight, torch.nn.Parameter) and linear.weight.is_cuda
        loss = linear(torch.ones(4, 3, device="cuda")).sum()
        assert loss.requires_grad and loss.grad_fn is not None
        with pytest.raises(RuntimeError, match="backward\\(\\) needs a GPU"):
            loss.backward()


def test_mixing_devices_fails_as_on_a_gpu_and_names_the_line():
    with EmulatedCUDA():
        x = torch.ones(3, device="cuda")
        with pytest.raises(DeviceMismatchError, match=r"cat got tensors on different devices \(cuda:0 \(3,\), cpu \(2,\)\) at test_cuda_emulated.py:\d+"):
            torch.cat([x, torch.ones(2)])
        with pytest.raises(DeviceMismatchError, match="add got tensors"):
            x + torch.ones(3)
        # what CUDA accepts: CPU scalars (0-dim) in elementwise ops, CPU index tensors, copies
        assert (x * torch.tensor(2.0)).is_cuda
        assert x[torch.tensor([0, 2])].is_cuda
        x.copy_(torch.zeros(3))
        # a CPU tensor indexed with CUDA indices fails on a GPU
        with pytest.raises(DeviceMismatchError, match="index"):
            torch.ones(3)[torch.tensor([0], device="cuda")]


def test_host_synchronisations_are_counted_by_kind():
    with EmulatedCUDA() as mode:
        x = torch.arange(5.0, device="cuda")  # a factory on the device: no copy
        assert mode.count_syncs() == {"item": 0, "to_host": 0, "to_device": 0, "data_dependent": 0}
        x.sum().item()
        bool(x[0] > 1)
        x.tolist()
        x.cpu()
        torch.tensor([1.0], device="cuda")
        torch.ones(2).to("cuda", non_blocking=True)  # asynchronous: not a sync
        x.nonzero()
        x[x > 2]
        x[x > 2] = 0.0  # masked_fill: not a sync
        torch.repeat_interleave(torch.ones(2, dtype=torch.long, device="cuda"))
        assert mode.count_syncs() == {"item": 2, "to_host": 2, "to_device": 1, "data_dependent": 3}
        where = {e.where for e in mode.syncs()}
        assert all(w.startswith("test_cuda_emulated.py:") for w in where)


def test_autocast_casts_as_cuda_does_and_dtype_errors_surface():
    with EmulatedCUDA():
        linear = torch.nn.Linear(4, 4).to("cuda")
        x = torch.rand(2, 4, device="cuda")
        with autocast():
            y = linear(x)
            assert y.dtype == torch.float16 and y.is_cuda
            assert torch.softmax(y, dim=1).dtype == torch.float32  # autocast's float32 list
            with pytest.raises(RuntimeError, match=r"dtype|Half|Float"):
                torch.zeros(2, 4, device="cuda").index_copy_(0, torch.tensor([0, 1], device="cuda"), y)
        assert linear(x).dtype == torch.float32


# --- every meta-architecture ------------------------------------------------------------------

ARCH_NAMES = [
    "faster_rcnn_c4", "faster_rcnn_dc5", "faster_rcnn_fpn", "mask_rcnn_fpn", "keypoint_rcnn_fpn",
    "cascade_mask_rcnn_fpn", "retinanet", "proposal_network", "semantic_fpn", "panoptic_fpn", "rotated_rcnn",
]

# Host synchronisations of one inference of two images (bench/bench_syncs.py prints them and
# bench/README.md explains them); a change that adds one fails here. Lower them freely.
MAX_INFERENCE_SYNCS = {
    "faster_rcnn_c4": 20, "faster_rcnn_dc5": 20, "faster_rcnn_fpn": 21, "mask_rcnn_fpn": 22,
    "keypoint_rcnn_fpn": 24, "cascade_mask_rcnn_fpn": 28, "retinanet": 16, "proposal_network": 12,
    "semantic_fpn": 0, "panoptic_fpn": 38, "rotated_rcnn": 41,
}


def _tensors(output):
    """The tensors of a model output (losses dict, or list of dicts of Instances/tensors), by name."""
    found = {}

    def visit(prefix, value):
        if isinstance(value, torch.Tensor):
            found[prefix] = value
        elif isinstance(value, Instances):
            for k, v in value.get_fields().items():
                visit(f"{prefix}.{k}", v)
        elif hasattr(value, "tensor") and isinstance(value.tensor, torch.Tensor):
            found[prefix] = value.tensor
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(f"{prefix}.{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                visit(f"{prefix}[{i}]", v)

    visit("", output)
    return found


def _train_forward(model, batch):
    torch.manual_seed(0)  # the same ROI/anchor sampling on both sides
    model.train()
    with EventStorage(0):
        return model(batch)


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_meta_architecture_on_emulated_cuda(name, meta_archs, reference_ops):
    model = meta_archs.build(name)
    batch = meta_archs.make_batch(name)
    inputs = meta_archs.inference_inputs(batch)
    cpu_model = copy.deepcopy(model)  # a training forward changes state (RetinaNet's loss normaliser)
    cpu_losses = {k: v.detach() for k, v in _train_forward(cpu_model, batch).items()}
    cpu_model.eval()
    with torch.no_grad():
        cpu_outputs = _tensors(cpu_model(inputs))

    with EmulatedCUDA() as mode:
        emulate_module(model)
        cuda_batch = meta_archs.batch_to(batch, "cuda")
        cuda_inputs = meta_archs.inference_inputs(cuda_batch)

        losses = _train_forward(model, cuda_batch)
        assert sorted(losses) == sorted(cpu_losses)
        for k, v in losses.items():
            assert v.is_cuda and v.requires_grad, k
            torch.testing.assert_close(v.detach().cpu(), cpu_losses[k], rtol=1e-5, atol=1e-6, msg=k)

        model.eval()
        mode.reset()
        with torch.no_grad():
            outputs = _tensors(model(cuda_inputs))
        syncs = sum(mode.count_syncs().values())
        assert syncs <= MAX_INFERENCE_SYNCS[name], mode.sync_summary()
        assert sorted(outputs) == sorted(cpu_outputs) and outputs
        for k, v in outputs.items():
            assert v.is_cuda, k
            # the CPU run takes det's CPU inference routes (separable ROIAlign, channels_last):
            # equal up to float rounding
            if v.dtype == torch.bool:  # pasted masks: a probability within rounding of 0.5 may flip
                assert v.shape == cpu_outputs[k].shape and (v.cpu() != cpu_outputs[k]).float().mean() < 1e-3, k
            else:
                torch.testing.assert_close(v.cpu(), cpu_outputs[k], rtol=1e-4, atol=1e-3, msg=k)

        with autocast():
            amp_losses = _train_forward(model, cuda_batch)
            model.eval()
            with torch.no_grad():
                amp_outputs = _tensors(model(cuda_inputs))
        assert all(torch.isfinite(v).all() for v in amp_losses.values()), amp_losses
        assert sorted(amp_outputs) == sorted(outputs)
        assert all(v.is_cuda for v in amp_outputs.values())


# --- planted bugs -----------------------------------------------------------------------------


class _TorchForgettingDevices(types.ModuleType):
    """``torch`` as a module sees it, except that its factory functions drop ``device=``: the bug of
    a tensor made where the code runs on the CPU only."""

    FACTORIES = ("ones", "zeros", "full", "arange", "empty", "tensor", "as_tensor")

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        value = getattr(torch, name)
        if name in self.FACTORIES:
            return lambda *args, device=None, **kwargs: value(*args, **kwargs)
        return value


@pytest.mark.slow
@pytest.mark.parametrize(
    "module, training, where",
    [
        ("det.heads.roi.proposal_utils", True, "det/heads/roi/proposal_utils.py"),  # gt boxes as proposals
        ("det.core.modeling.poolers", False, "det/core/modeling/poolers.py"),  # image index of each ROI
    ],
)
def test_a_tensor_made_on_the_wrong_device_is_caught(module, training, where, meta_archs, reference_ops, monkeypatch):
    model = meta_archs.build("faster_rcnn_fpn")
    batch = meta_archs.make_batch("faster_rcnn_fpn")
    monkeypatch.setattr(sys.modules[module], "torch", _TorchForgettingDevices())

    def forward(inputs):
        if training:
            return _train_forward(model, inputs)
        model.eval()
        with torch.no_grad():
            return model(meta_archs.inference_inputs(inputs))

    forward(batch)  # on the CPU the bug is invisible
    with EmulatedCUDA():
        emulate_module(model)
        with pytest.raises(DeviceMismatchError, match=f"cat got tensors on different devices .* at .*{where}"):
            forward(meta_archs.batch_to(batch, "cuda"))


@pytest.mark.slow
def test_a_dtype_that_float16_autocast_breaks_is_caught(meta_archs, reference_ops, monkeypatch):
    from det.heads.roi.fast_rcnn import FastRCNNOutputLayers

    original = FastRCNNOutputLayers.forward

    def forward_into_float32_buffer(self, x):
        # the bug: a float32 buffer for outputs whose dtype autocast decides
        scores, deltas = original(self, x)
        buffer = torch.zeros(scores.shape, device=scores.device)
        rows = torch.arange(scores.shape[0], device=scores.device)
        return buffer.index_copy_(0, rows, scores), deltas

    monkeypatch.setattr(FastRCNNOutputLayers, "forward", forward_into_float32_buffer)
    model = meta_archs.build("faster_rcnn_fpn").eval()
    inputs = meta_archs.inference_inputs(meta_archs.make_batch("faster_rcnn_fpn"))
    with torch.no_grad():
        model(inputs)  # float32 on the CPU: no error
    with EmulatedCUDA():
        emulate_module(model)
        cuda_inputs = meta_archs.batch_to(inputs, "cuda")
        with torch.no_grad():
            model(cuda_inputs)  # float32 on CUDA: no error either
            with autocast(), pytest.raises(RuntimeError, match=r"index_copy_.*dtype"):
                model(cuda_inputs)
