"""Run a model's CUDA code path on a machine without a GPU, to find what a GPU would reject.

Invariant: inside :class:`EmulatedCUDA`, a tensor "on cuda:0" is a CPU tensor that reports
``cuda:0`` to Python *and* to PyTorch's C++ code (its dispatch keys are CUDA's, so CUDA autocast
applies to it). Every operator runs its CPU kernel on the real data, so results are real numbers
that can be compared with a CPU run, and the mode checks on the way what a GPU would check:

- **devices**: an operator mixing CUDA tensors with CPU tensors (other than 0-dim CPU scalars, and
  CPU index tensors, which CUDA accepts) raises :class:`DeviceMismatchError` naming the operator,
  the shapes and the det source line, where a GPU would raise "Expected all tensors to be on the
  same device";
- **host synchronisations**: every operator that makes the host wait for the GPU is recorded in
  :attr:`EmulatedCUDA.events` with its kind and source lines: reading a value (``.item()``,
  ``bool(t)``), copies between host and device (``.cpu()``, ``.tolist()``; blocking copies to the
  GPU wait for its stream too), and outputs whose size depends on the data (``nonzero``,
  boolean-mask indexing, NMS, ``unique``);
- **dtypes**: under :func:`autocast` (CUDA's autocast, float16 by default) the model runs with the
  casts CUDA would make, so an operator that cannot take the mixed dtypes fails here as on a GPU.

::

    with EmulatedCUDA() as mode:
        model = emulate_module(build_model(cfg).eval())      # parameters and buffers on "cuda:0"
        inputs = [{"image": to_emulated(image)}]
        outputs = model(inputs)
    print(mode.count_syncs(), mode.sync_summary())

Why not PyTorch's ``FakeTensorMode``: fake tensors hold no values, so every data-dependent size
(NMS survivors, matched proposals, ``nonzero``) becomes an unbacked symbol, and detection code's
control flow on those sizes (``if len(boxes) == 0``, splits by per-image counts) cannot proceed.
This mode keeps the values and borrows the one thing fake tensors do to stay off the CUDA runtime:
it takes the dispatch slot of a fake mode, so PyTorch does not initialise CUDA for "cuda" factory
calls.

Limit: no backward pass. A training forward pass runs as in training (parameters require grad and
autograd records its graph), but PyTorch's autograd engine runs CUDA gradients on a worker thread
that binds the CUDA device, which needs the runtime: ``loss.backward()`` raises (``FakeTensorMode``
fails there too). The backward pass is checked on a real GPU by ``bench/gpu_check.py``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

__all__ = [
    "DeviceEvent",
    "DeviceMismatchError",
    "EmulatedCUDA",
    "EmulatedCUDATensor",
    "autocast",
    "emulate_module",
    "emulation_active",
    "is_emulated",
    "to_emulated",
]

CUDA = torch.device("cuda", 0)
aten = torch.ops.aten

_THIS_FILE = os.path.abspath(__file__)


class DeviceMismatchError(RuntimeError):
    """An operator got tensors on devices a GPU would not combine."""


@dataclass(frozen=True)
class DeviceEvent:
    """One host synchronisation: ``kind`` (see :data:`SYNC_KINDS`), the operator, and the two
    innermost det source lines that caused it, innermost first
    (``"det/structures/instances.py:142 in __getitem__ < det/core/modeling/postprocessing.py:56 in
    detector_postprocess"``; the test's own line when no det code is on the stack)."""

    kind: str
    op: str
    where: str


SYNC_KINDS = {
    "item": "a value read on the host (.item(), bool/int/float of a tensor)",
    "to_host": "a copy from the GPU to the host (.cpu(), .tolist(), .to('cpu'))",
    "to_device": "a blocking copy from the host to the GPU (torch.tensor(..., device=cuda), .to(cuda))",
    "data_dependent": "an output whose size depends on the data (nonzero, boolean-mask indexing, nms, unique)",
}


class EmulatedCUDATensor(torch.Tensor):
    """A CPU tensor that says it is on ``cuda:0``. Made by :func:`to_emulated`; its CPU data is
    ``.elem`` (the same memory). Outside an :class:`EmulatedCUDA` mode it still works, without checks."""

    elem: torch.Tensor

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # type: ignore[override]
        # torch.Tensor's own __torch_function__ minus its conversion of every result to this class
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))

    @staticmethod
    def _wrap(elem: torch.Tensor, requires_grad: bool = False) -> EmulatedCUDATensor:
        t = torch.Tensor._make_subclass(
            EmulatedCUDATensor, elem, requires_grad, dispatch_device=True, device_for_backend_keys=CUDA
        )
        t.elem = elem
        return t

    def backward(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise RuntimeError(
            "EmulatedCUDA: backward() needs a GPU (PyTorch's autograd engine runs CUDA gradients on "
            "a thread that binds the CUDA device); the forward pass, its graph included, runs here"
        )

    def tolist(self) -> Any:
        # PyTorch refuses .tolist() on subclasses; on a GPU it is one copy to the host
        return self.cpu().tolist()

    def __repr__(self, *, tensor_contents: Any = None) -> str:
        return f"EmulatedCUDATensor({self.elem!r}, device='cuda:0')"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):  # type: ignore[override]
        if func is torch.ops.prim.device.default:
            return CUDA
        return _run(func, args, kwargs or {}, None)


def is_emulated(t: object) -> bool:
    """True for a tensor made by :func:`to_emulated` (or computed from one)."""
    return isinstance(t, EmulatedCUDATensor)


def to_emulated(t: torch.Tensor) -> EmulatedCUDATensor:
    """``t`` "on cuda:0": a tensor sharing ``t``'s memory (a leaf, requiring grad as ``t`` does)."""
    if isinstance(t, EmulatedCUDATensor):
        return t
    if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
        raise TypeError(f"to_emulated takes a CPU tensor, got {type(t).__name__} on {getattr(t, 'device', '-')}")
    return EmulatedCUDATensor._wrap(t.detach(), t.requires_grad)


def emulate_module(module: torch.nn.Module) -> torch.nn.Module:
    """Put ``module``'s parameters and buffers "on cuda:0" (in place; returns ``module``).

    The CPU values are shared, not copied; parameters keep ``requires_grad``."""
    for sub in module.modules():
        for name, p in list(sub._parameters.items()):
            if p is not None and not is_emulated(p):
                sub._parameters[name] = torch.nn.Parameter(to_emulated(p.data), requires_grad=p.requires_grad)
        for name, b in list(sub._buffers.items()):
            if b is not None and not is_emulated(b):
                sub._buffers[name] = to_emulated(b)
    return module


def emulation_active() -> bool:
    """True inside a mode that makes device names without touching the device (an
    :class:`EmulatedCUDA` or PyTorch's ``FakeTensorMode``): "cuda" then needs no GPU."""
    return torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE) is not None


@contextlib.contextmanager
def autocast(dtype: torch.dtype = torch.float16) -> Iterator[None]:
    """``torch.autocast("cuda", dtype)`` that also works without a GPU (PyTorch's own context
    manager switches itself off when CUDA is unavailable). Use it inside :class:`EmulatedCUDA`."""
    prev_enabled = torch.is_autocast_enabled("cuda")
    prev_dtype = torch.get_autocast_dtype("cuda")
    prev_cache = torch.is_autocast_cache_enabled()
    torch.set_autocast_enabled("cuda", True)
    torch.set_autocast_dtype("cuda", dtype)
    torch.autocast_increment_nesting()
    torch.set_autocast_cache_enabled(True)
    try:
        yield
    finally:
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()
        torch.set_autocast_enabled("cuda", prev_enabled)
        torch.set_autocast_dtype("cuda", prev_dtype)
        torch.set_autocast_cache_enabled(prev_cache)


class EmulatedCUDA(TorchDispatchMode):
    """The dispatch mode: see the module docstring. ``events`` lists every host synchronisation
    (:class:`DeviceEvent`) since the mode was made or :meth:`reset`; ``check_devices=False``
    records without raising on mixed devices."""

    # The fake-mode slot: PyTorch skips CUDA initialisation for "cuda" factory calls while a mode
    # sits there (torch.zeros(..., device="cuda") would otherwise look for a driver).
    _mode_key = torch._C._TorchDispatchModeKey.FAKE

    def __init__(self, *, check_devices: bool = True) -> None:
        super().__init__()
        self.check_devices = check_devices
        self.events: list[DeviceEvent] = []
        self._saved: list[tuple[Any, ...]] = []

    def __enter__(self) -> EmulatedCUDA:
        if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE) is not None:
            raise RuntimeError("EmulatedCUDA cannot be nested or entered inside FakeTensorMode")
        # torch.tensor(data, device="cuda") then builds on the CPU and calls .to(device) through
        # this mode, instead of copying to the CUDA runtime directly
        self._saved.append((
            torch._C._only_lift_cpu_tensors(),
            torch.__future__.get_overwrite_module_params_on_conversion(),
            torch.backends.cudnn.enabled,
            _sdp_flags(),
        ))
        torch._C._set_only_lift_cpu_tensors(True)
        # module.to("cuda") makes new Parameter objects, which can be emulated tensors (by default
        # it assigns param.data, which keeps the CPU Parameter object)
        torch.__future__.set_overwrite_module_params_on_conversion(True)
        # Composite operators pick CUDA-only kernels for CUDA tensors (cudnn_batch_norm, flash
        # attention) that have no CPU kernel to run; without cuDNN and the fused attention kernels
        # they take the native kernels, which do
        torch.backends.cudnn.enabled = False
        _set_sdp_flags((False, False, False, True))
        # Without a usable CUDA runtime, PyTorch's CUDA device guard becomes a no-op (as under
        # FakeTensorMode, which does the same): indexing and autograd's bookkeeping ask the guard
        # for the current device and stream of every CUDA tensor. Process-wide; nothing changes
        # where CUDA works.
        torch._C._ensureCUDADeviceGuardSet()
        super().__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):  # type: ignore[no-untyped-def]
        try:
            return super().__exit__(exc_type, exc_val, exc_tb)
        finally:
            lift_cpu, overwrite, cudnn, sdp = self._saved.pop()
            torch._C._set_only_lift_cpu_tensors(lift_cpu)
            torch.__future__.set_overwrite_module_params_on_conversion(overwrite)
            torch.backends.cudnn.enabled = cudnn
            _set_sdp_flags(sdp)

    def reset(self) -> None:
        """Forget the recorded events."""
        self.events.clear()

    def syncs(self, kind: str | None = None) -> list[DeviceEvent]:
        return [e for e in self.events if kind is None or e.kind == kind]

    def count_syncs(self) -> dict[str, int]:
        """Number of host synchronisations per kind (every kind of :data:`SYNC_KINDS`, 0 included)."""
        counts = Counter(e.kind for e in self.events)
        return {kind: counts.get(kind, 0) for kind in SYNC_KINDS}

    def sync_summary(self) -> list[tuple[int, str, str, str]]:
        """(count, kind, op, where) per distinct cause, most frequent first."""
        counts = Counter((e.kind, e.op, e.where) for e in self.events)
        return sorted(((n, *key) for key, n in counts.items()), key=lambda r: (-r[0], r[1:]))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        if func is torch.ops.prim.device.default:
            return CUDA if is_emulated(args[0]) else args[0].device
        return _run(func, args, kwargs or {}, self)

    def _record(self, kind: str, func: Any) -> None:
        self.events.append(DeviceEvent(kind, _op_name(func), _det_caller()))


def _sdp_flags() -> tuple[bool, bool, bool, bool]:
    b = torch.backends.cuda
    return (b.flash_sdp_enabled(), b.mem_efficient_sdp_enabled(), b.cudnn_sdp_enabled(), b.math_sdp_enabled())


def _set_sdp_flags(flags: tuple[bool, bool, bool, bool]) -> None:
    b = torch.backends.cuda
    b.enable_flash_sdp(flags[0])
    b.enable_mem_efficient_sdp(flags[1])
    b.enable_cudnn_sdp(flags[2])
    b.enable_math_sdp(flags[3])


# ------------------------------------------------------------------------------------------------
# one operator


def _op_name(func: Any) -> str:
    return str(func.overloadpacket.__name__) if hasattr(func, "overloadpacket") else str(func)


def _det_caller(depth: int = 2) -> str:
    """The innermost ``depth`` frames of det's code (not this module), innermost first:
    "det/<path>:<line> in <function> < det/<path>:<line> in <caller>"."""
    frame = sys._getframe(2)
    found: list[str] = []
    fallback = None
    while frame is not None and len(found) < depth:
        filename = os.path.abspath(frame.f_code.co_filename)
        if filename != _THIS_FILE:
            if "/det/" in filename:
                rel = filename[filename.rfind("/det/") + 1:]
                found.append(f"{rel}:{frame.f_lineno} in {frame.f_code.co_name}")
            elif fallback is None and "/torch/" not in filename and "/torchvision/" not in filename:
                fallback = f"{os.path.basename(filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return " < ".join(found) or fallback or "<unknown>"


@functools.cache
def _device_arg(func: Any) -> int | None:
    """Position of the schema's ``device`` argument, if it has one."""
    for i, arg in enumerate(func._schema.arguments):
        if arg.name == "device":
            return i
    return None


def _get_arg(func: Any, args: tuple, kwargs: dict, index: int) -> Any:
    if index < len(args):
        return args[index]
    return kwargs.get(func._schema.arguments[index].name)


_INDEXING = {
    aten.index.Tensor,
    aten._unsafe_index.Tensor,
    aten.index_put.default,
    aten.index_put_.default,
    aten._index_put_impl_.default,
    aten._unsafe_index_put.default,
}
_COPIES = {aten.copy_.default, aten._copy_from.default, aten._copy_from_and_resize.default}
_DATA_DEPENDENT = {
    aten.nonzero.default,
    aten.masked_select.default,
    aten.unique_consecutive.default,
    aten._unique.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.bincount.default,
    aten.equal.default,
}


def _is_data_dependent(func: Any, args: tuple, kwargs: dict) -> bool:
    if func in _DATA_DEPENDENT:
        return True
    if func is aten.repeat_interleave.Tensor or func is aten.repeat_interleave.self_Tensor:
        return kwargs.get("output_size") is None
    if func in _INDEXING:
        indices = [i for i in (args[1] if len(args) > 1 else kwargs.get("indices", ())) or () if i is not None]
        if not any(i.dtype in (torch.bool, torch.uint8) for i in indices):
            return False
        return not _masked_fill_put(func, args, kwargs, indices)
    name = getattr(func, "name", lambda: "")()
    return name in ("torchvision::nms",)


def _masked_fill_put(func: Any, args: tuple, kwargs: dict, indices: list[torch.Tensor]) -> bool:
    """True for ``t[mask] = scalar``: PyTorch's index_put_ runs it as ``masked_fill_`` (no sync)
    when the one index is a mask on ``t``'s device and the value is one element on the host."""
    if func is aten.index.Tensor or func is aten._unsafe_index.Tensor:
        return False
    value = args[2] if len(args) > 2 else kwargs.get("values")
    accumulate = args[3] if len(args) > 3 else kwargs.get("accumulate", False)
    return (
        not accumulate
        and len(indices) == 1
        and is_emulated(indices[0]) == is_emulated(args[0])
        and isinstance(value, torch.Tensor)
        and value.numel() == 1
        and not is_emulated(value)
    )


def _device_kind(t: torch.Tensor) -> str:
    return "cuda:0" if is_emulated(t) else str(t.device)


def _describe(tensors: list[torch.Tensor]) -> str:
    return ", ".join(f"{_device_kind(t)} {tuple(t.shape)}" for t in tensors)


def _check_devices(func: Any, args: tuple, kwargs: dict, tensors: list[torch.Tensor]) -> None:
    if func in _COPIES or len(tensors) < 2:
        return
    if func in _INDEXING:
        self_dev = _device_kind(args[0])
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        bad = [i for i in indices or () if isinstance(i, torch.Tensor) and _device_kind(i) not in (self_dev, "cpu")]
        rest = [t for t in tensors[1:] if not any(t is i for i in indices or ())]
        bad += [t for t in rest if _device_kind(t) != self_dev and not (t.dim() == 0 and t.device.type == "cpu")]
        if bad:
            _mismatch(func, [args[0], *bad])
        return
    devices = {_device_kind(t) for t in tensors if not (t.dim() == 0 and not is_emulated(t) and t.device.type == "cpu")}
    if len(devices) > 1:
        _mismatch(func, tensors)


def _mismatch(func: Any, tensors: list[torch.Tensor]) -> None:
    raise DeviceMismatchError(
        f"EmulatedCUDA: {_op_name(func)} got tensors on different devices ({_describe(tensors)}) at "
        f"{_det_caller()}; on a GPU this raises 'Expected all tensors to be on the same device'. "
        "Make the tensor on the device of the others (device=other.device)."
    )


def _result_on_cuda(func: Any, args: tuple, kwargs: dict, tensors: list[torch.Tensor]) -> bool:
    index = _device_arg(func)
    if index is not None:
        device = _get_arg(func, args, kwargs, index)
        if device is not None:
            return torch.device(device).type == "cuda"
    if func in _COPIES:
        return is_emulated(args[0])
    return any(is_emulated(t) for t in tensors)


def _to_cpu_device(func: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    index = _device_arg(func)
    if index is None:
        return args, kwargs
    device = _get_arg(func, args, kwargs, index)
    if device is None or torch.device(device).type != "cuda":
        return args, kwargs
    if index < len(args):
        args = (*args[:index], torch.device("cpu"), *args[index + 1:])
    else:
        kwargs = {**kwargs, "device": torch.device("cpu")}
    return args, kwargs


def _syncs_of(func: Any, args: tuple, kwargs: dict, tensors: list[torch.Tensor], on_cuda: bool) -> list[str]:
    """The kinds of host synchronisation this call makes on a GPU."""
    any_cuda = any(is_emulated(t) for t in tensors)
    if func is aten._local_scalar_dense.default:
        return ["item"] if any_cuda else []
    if func is aten._to_copy.default:
        src = args[0]
        if is_emulated(src) and not on_cuda:
            return ["to_host"]
        if not is_emulated(src) and on_cuda and not kwargs.get("non_blocking", False):
            return ["to_device"]
        return []
    if func in _COPIES:
        dst, src = args[0], args[1]
        if is_emulated(src) and not is_emulated(dst):
            return ["to_host"]
        if is_emulated(dst) and not is_emulated(src) and not (len(args) > 2 and args[2]):
            return ["to_device"]
        return []
    if any_cuda and _is_data_dependent(func, args, kwargs):
        return ["data_dependent"]
    return []


def _run(func: Any, args: tuple, kwargs: dict, mode: EmulatedCUDA | None) -> Any:
    flat, _ = tree_flatten((args, kwargs))
    tensors = [t for t in flat if isinstance(t, torch.Tensor)]
    if mode is not None and mode.check_devices:
        _check_devices(func, args, kwargs, tensors)
    on_cuda = _result_on_cuda(func, args, kwargs, tensors)
    if mode is not None:
        for kind in _syncs_of(func, args, kwargs, tensors, on_cuda):
            mode._record(kind, func)

    originals = {id(t.elem): t for t in tensors if is_emulated(t)}
    cpu_args, cpu_kwargs = tree_map(lambda x: x.elem if is_emulated(x) else x, (args, kwargs))
    cpu_args, cpu_kwargs = _to_cpu_device(func, cpu_args, cpu_kwargs)
    result = _call_on_cpu(func, cpu_args, cpu_kwargs)

    def wrap(x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return x
        original = originals.get(id(x))
        if original is not None:  # an in-place op or out= argument: the caller's tensor
            _follow_metadata(original, x, func)
            return original
        return EmulatedCUDATensor._wrap(x) if on_cuda else x

    return tree_map(wrap, result)


def _follow_metadata(wrapper: EmulatedCUDATensor, elem: torch.Tensor, func: Any) -> None:
    """After an in-place op changed ``elem``'s shape (``unsqueeze_``, ``resize_``, ``set_``), give
    ``wrapper`` the same view of the same memory."""
    if (wrapper.shape, wrapper.stride(), wrapper.storage_offset()) == (
        elem.shape, elem.stride(), elem.storage_offset()
    ) and wrapper.untyped_storage().data_ptr() == elem.untyped_storage().data_ptr():
        return
    # Python dispatch off: the op below is the CUDA key's metadata-only kernel on the wrapper
    # itself (the device guard is a no-op, see EmulatedCUDA.__enter__)
    with torch._C._DisableTorchDispatch():
        if wrapper.untyped_storage().data_ptr() == elem.untyped_storage().data_ptr() and (
            wrapper.untyped_storage().nbytes() == elem.untyped_storage().nbytes()
        ):
            torch.Tensor.as_strided_(wrapper, elem.shape, elem.stride(), elem.storage_offset())
        else:
            torch.Tensor.set_(wrapper, elem.untyped_storage(), elem.storage_offset(), elem.shape, elem.stride())


_HALF_TO_FLOAT = {aten._softmax.default, aten._log_softmax.default}
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _call_on_cpu(func: Any, args: tuple, kwargs: dict) -> Any:
    if _functional_on_low_precision(func, args, kwargs):
        # The CPU's float16 kernels are slow (no AVX-512 FP16 here) and some are missing: compute
        # in float32 and round to the dtypes the operator's meta kernel says CUDA returns, as CUDA's
        # float16 kernels accumulate in float32. The meta kernel also does the dtype checks, so an
        # operator that refuses the mixed dtypes still fails (on the CPU kernel, below).
        dtypes = _meta_output_dtypes(func, args, kwargs)
        if dtypes is not None:
            return _in_float32(func, args, kwargs, dtypes)
    try:
        return func(*args, **kwargs)
    except NotImplementedError as e:
        if "from the 'CPU' backend" in str(e):
            raise NotImplementedError(
                f"EmulatedCUDA: {func} has no CPU kernel to stand in for its CUDA kernel (called at "
                f"{_det_caller()}); the emulation cannot run this operator"
            ) from e
        raise
    except RuntimeError as e:
        if func in _HALF_TO_FLOAT and "half to float" in str(e):
            # CUDA autocast's float32 softmax of a float16 input: the CPU kernel lacks the fused cast
            return func(args[0].float(), *args[1:-1], False)
        raise


def _functional_on_low_precision(func: Any, args: tuple, kwargs: dict) -> bool:
    schema = getattr(func, "_schema", None)
    if schema is None or schema.is_mutable or any(r.alias_info is not None for r in schema.returns):
        return False  # in-place ops and views must act on the tensors they were given
    flat, _ = tree_flatten((args, kwargs))
    return any(isinstance(t, torch.Tensor) and t.dtype in _LOW_PRECISION for t in flat)


def _meta_output_dtypes(func: Any, args: tuple, kwargs: dict) -> list[torch.dtype] | None:
    def to_meta(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
        return x

    try:
        meta_args, meta_kwargs = tree_map(to_meta, (args, kwargs))
        out = func(*meta_args, **meta_kwargs)
    except Exception:
        return None  # no meta kernel, or the dtypes are refused: the CPU kernel decides
    flat, _ = tree_flatten(out)
    return [t.dtype for t in flat if isinstance(t, torch.Tensor)]


def _in_float32(func: Any, args: tuple, kwargs: dict, dtypes: list[torch.dtype]) -> Any:
    up_args, up_kwargs = tree_map(
        lambda x: x.float() if isinstance(x, torch.Tensor) and x.dtype in _LOW_PRECISION else x, (args, kwargs)
    )
    if func in _HALF_TO_FLOAT:
        up_args = (*up_args[:-1], False)  # the input is float32 now; the output's dtype is below
    result = func(*up_args, **up_kwargs)
    flat, spec = tree_flatten(result)
    wanted = iter(dtypes)
    cast = [x.to(next(wanted)) if isinstance(x, torch.Tensor) else x for x in flat]
    return spec.unflatten(cast)
