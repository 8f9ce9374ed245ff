"""Model statistics as detectron2's ``utils.analysis``: parameter counts, and FLOPs and activations
per operator type, counted with torch's own :class:`torch.utils.flop_counter.FlopCounterMode`
(no fvcore, no tracing).

    counts = parameter_count(model)            # {"": total, "backbone": ..., "backbone.fpn_lateral2.weight": ...}
    print(parameter_count_table(model, max_depth=2))
    gflops = flop_count_operators(model, [{"image": image}])  # {"conv": 85.3, "linear": 1.2, ...}
    mact = activation_count_operators(model, [{"image": image}])  # {"conv": 110.2, "linear": 1.1}
    flops = FlopCountAnalysis(model, [{"image": image}])  # fvcore's API, per module: flops.by_module()

Conventions are fvcore's, which detectron2 reports: a convolution or matrix product counts its
multiply-adds (one fused multiply-add = one "flop"; torch's ``FlopCounterMode`` counts two, so its
numbers for those ops are halved here), bias additions and element-wise ops count nothing,
batch norm is left out (it folds into the convolution at inference, and detectron2 ignores it),
group/layer norm count 5 per element (4 without affine parameters), nearest upsampling 1 per
output element, bilinear upsampling and ``grid_sample`` 4, adaptive average pooling 1 per input
element. An activation is one element of a convolution's or a linear layer's output.

Operator types are named by the kernel that runs (``FlopCounterMode`` sees dispatched ops, not a
jit graph): ``conv``, ``linear`` (every 2-D matrix product: ``nn.Linear``, and ``matmul``/
``einsum`` that reduce to one), ``bmm`` (batched products), ``group_norm``, ``layer_norm``,
``upsample_nearest2d``, ``upsample_bilinear2d``, ``adaptive_avg_pool2d``, ``grid_sampler``. For a
detectron2 model the totals equal fvcore's; fvcore names a product ``matmul`` or ``addmm`` when
the traced code called those.

The model runs with gradients enabled (in eval mode, every floating-point parameter temporarily
requiring grad) so that det's CPU inference shortcuts (oneDNN linear, separable ROIAlign) step
aside and the counted ops are detectron2's, as under fvcore's jit trace. Counts of a detection
model depend on its input (number of proposals and detections): average over several inputs.
"""

from __future__ import annotations

import difflib
import logging
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils import flop_counter as _fc
from torch.utils._python_dispatch import TorchDispatchMode

from det.engine.train.logger import pipe_table

__all__ = [
    "FlopCountAnalysis",
    "activation_count_operators",
    "flop_count",
    "flop_count_operators",
    "flop_count_table",
    "parameter_count",
    "parameter_count_table",
]

aten = torch.ops.aten
_logger = logging.getLogger(__name__)


# -- parameters -----------------------------------------------------------------------------


def parameter_count(model: nn.Module) -> defaultdict[str, int]:
    """Number of parameter elements under every name prefix of ``model.named_parameters()``:
    ``""`` is the whole model, ``"backbone"`` a submodule, ``"backbone.stem.conv1.weight"`` one
    parameter. A parameter shared by two modules is counted once (where it is first named)."""
    counts: defaultdict[str, int] = defaultdict(int)
    for name, param in model.named_parameters():
        parts = name.split(".")
        for depth in range(len(parts) + 1):
            counts[".".join(parts[:depth])] += param.numel()
    return counts


def _format_size(n: float) -> str:
    """fvcore's short sizes: 44.5M, 2.4K, 64."""
    if n > 1e8:
        return f"{n / 1e9:.1f}G"
    if n > 1e5:
        return f"{n / 1e6:.1f}M"
    if n > 1e2:
        return f"{n / 1e3:.1f}K"
    return str(int(n)) if float(n).is_integer() else f"{n:.1f}"


def parameter_count_table(model: nn.Module, max_depth: int = 3) -> str:
    """A table of :func:`parameter_count` down to ``max_depth`` name components: one row per
    module (its total, e.g. ``2.4M``) and per parameter (its shape), indented one space per
    level under a first ``model`` row, as fvcore prints it."""
    if max_depth < 1:
        raise ValueError(f"max_depth must be at least 1, got {max_depth}")
    counts = parameter_count(model)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    children: defaultdict[str, list[str]] = defaultdict(list)
    for name in counts:  # insertion order = named_parameters order
        if name:
            children[name.rpartition(".")[0]].append(name)
    rows: list[tuple[str, ...]] = [("model", _format_size(counts[""]))]

    def walk(prefix: str, depth: int) -> None:
        if depth >= max_depth:
            return
        indent = " " * (depth + 1)
        for name in children[prefix]:
            if name in shapes:
                rows.append((indent + name, indent + str(shapes[name])))
            else:
                rows.append((indent + name, indent + _format_size(counts[name])))
                walk(name, depth + 1)

    walk("", 0)
    return pipe_table(rows, ("name", "#elements or shape"))


# -- FLOPs and activations -----------------------------------------------------------------


def _numel(shape: Any) -> int:
    return math.prod(shape) if shape is not None else 0


def _conv_macs(
    x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None, **kwargs
):
    # torch's formula counts 2 per multiply-add; fvcore (and detectron2's numbers) count 1
    return _fc.conv_flop_count(x_shape, w_shape, out_shape, transposed=bool(transposed)) // 2


def _mm_macs(a_shape, b_shape, *args, out_shape=None, **kwargs):
    return _fc.mm_flop(a_shape, b_shape) // 2


def _addmm_macs(_self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs):
    return _fc.mm_flop(a_shape, b_shape) // 2


def _bmm_macs(a_shape, b_shape, *args, out_shape=None, **kwargs):
    return _fc.bmm_flop(a_shape, b_shape) // 2


def _baddbmm_macs(_self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs):
    return _fc.bmm_flop(a_shape, b_shape) // 2


def _onednn_linear_macs(x_shape, w_shape, *args, out_shape=None, **kwargs):
    return _numel(x_shape) * w_shape[0]


def _group_norm_flops(x_shape, weight_shape, *args, out_shape=None, **kwargs):
    return _numel(x_shape) * (5 if weight_shape is not None else 4)


def _layer_norm_flops(x_shape, _normalized_shape, weight_shape=None, *args, out_shape=None, **kwargs):
    return _numel(x_shape) * (5 if weight_shape is not None else 4)


def _output_elements(scale: int) -> Callable[..., int]:
    def count(*args, out_shape=None, **kwargs):
        shape = (
            out_shape[0]
            if isinstance(out_shape, (tuple, list)) and out_shape and not isinstance(out_shape[0], int)
            else out_shape
        )
        return scale * _numel(shape)

    return count


def _input_elements(x_shape, *args, out_shape=None, **kwargs):
    return _numel(x_shape)


# op packet -> (operator-type name, formula on shapes). Only these ops are counted.
_FLOP_FORMULAS: dict[Any, tuple[str, Callable[..., int]]] = {
    aten.convolution: ("conv", _conv_macs),
    aten._convolution: ("conv", _conv_macs),
    aten.mm: ("linear", _mm_macs),
    aten.addmm: ("linear", _addmm_macs),
    aten.bmm: ("bmm", _bmm_macs),
    aten.baddbmm: ("bmm", _baddbmm_macs),
    aten.native_group_norm: ("group_norm", _group_norm_flops),
    aten.native_layer_norm: ("layer_norm", _layer_norm_flops),
    aten.upsample_nearest2d: ("upsample_nearest2d", _output_elements(1)),
    aten.upsample_bilinear2d: ("upsample_bilinear2d", _output_elements(4)),
    aten._adaptive_avg_pool2d: ("adaptive_avg_pool2d", _input_elements),
    aten.grid_sampler_2d: ("grid_sampler", _output_elements(4)),
}
_ACTIVATION_FORMULAS: dict[Any, tuple[str, Callable[..., int]]] = {
    aten.convolution: ("conv", _output_elements(1)),
    aten._convolution: ("conv", _output_elements(1)),
    aten.mm: ("linear", _output_elements(1)),
    aten.addmm: ("linear", _output_elements(1)),
}
if hasattr(torch.ops.mkldnn, "_linear_pointwise"):  # det's CPU inference route of nn.Linear
    _FLOP_FORMULAS[torch.ops.mkldnn._linear_pointwise] = ("linear", _onednn_linear_macs)
    _ACTIVATION_FORMULAS[torch.ops.mkldnn._linear_pointwise] = ("linear", _output_elements(1))


def _counter_mapping(formulas: dict[Any, Callable[..., int]]) -> dict[Any, Callable[..., int]]:
    """``FlopCounterMode``'s ``custom_mapping`` for ``formulas`` (op packet -> formula): each
    packet and all its overloads. ``FlopCounterMode`` decomposes an op whose overload is not in its
    table before counting (upsample_nearest2d would become index ops), hence the overloads; it
    counts an op with the formula of its packet."""
    mapping: dict[Any, Callable[..., int]] = {}
    for packet, formula in formulas.items():
        mapping[packet] = formula
        for overload in packet.overloads():
            mapping[getattr(packet, overload)] = formula
    return mapping


@contextmanager
def _counting_context(model: nn.Module) -> Iterator[None]:
    """Eval mode, gradients enabled and every floating-point parameter requiring grad (restored
    afterwards): det's inference-only kernels step aside, so the ops are detectron2's."""
    was_training = model.training
    frozen = [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    model.eval()
    try:
        for p in frozen:
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for p in frozen:
            p.requires_grad_(False)
        model.train(was_training)


def _unwrap(model: nn.Module) -> nn.Module:
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def _count(model: nn.Module, inputs: Any, formulas: dict[Any, tuple[str, Callable[..., int]]]) -> dict[str, int]:
    """Run ``model(inputs)`` under ``FlopCounterMode``; return the count per operator type."""
    model = _unwrap(model)
    counter = _fc.FlopCounterMode(
        display=False,
        custom_mapping=_counter_mapping({packet: formula for packet, (_, formula) in formulas.items()}),
    )
    with _counting_context(model), counter:
        model(inputs)
    by_operator: dict[str, int] = defaultdict(int)
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        if op in formulas:
            by_operator[formulas[op][0]] += n
    return dict(by_operator)


def flop_count_operators(model: nn.Module, inputs: list[dict]) -> defaultdict[str, float]:
    """GFLOPs (10^9 multiply-adds, fvcore's convention) per operator type of one forward pass of
    ``model`` (a detectron2-style model; run in eval mode) on ``inputs`` (``list[dict]``, the
    standard model input). See the module docstring for what is counted and how it is named.

        flop_count_operators(nn.Sequential(nn.Conv2d(3, 8, 3)), torch.rand(1, 3, 10, 10))
        # {'conv': 1.3824e-05}: 8*8 output positions x 8 channels x 3*3*3 weights each
    """
    by_operator = _count(model, inputs, _FLOP_FORMULAS)
    return defaultdict(float, {k: v / 1e9 for k, v in by_operator.items()})


def flop_count(model: nn.Module, inputs: list[dict]) -> tuple[dict[str, int], dict[str, int]]:
    """FLOPs (multiply-adds, not scaled) of one forward pass: (per operator type, per module name
    with ``""`` = the model; modules that counted nothing are left out), from one
    :class:`FlopCountAnalysis` run."""
    flops = FlopCountAnalysis(model, inputs).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_module = {name: n for name, n in flops.by_module().items() if n or name == ""}
    return dict(flops.by_operator()), by_module


def flop_count_table(model: nn.Module, flops_by_module: dict[str, int], max_depth: int = 3) -> str:
    """A table of modules down to ``max_depth`` name components with their parameter count (a
    parameter's shape) and FLOPs (from :func:`flop_count`), as fvcore's ``flop_count_table``."""
    if max_depth < 1:
        raise ValueError(f"max_depth must be at least 1, got {max_depth}")
    params = parameter_count(model)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    rows: list[tuple[str, ...]] = [
        ("model", _format_size(params[""]), _format_size(flops_by_module.get("", 0)))
    ]

    def walk(module: nn.Module, prefix: str, depth: int) -> None:
        if depth >= max_depth:
            return
        indent = " " * (depth + 1)
        for pname, _ in module.named_parameters(recurse=False):
            full = prefix + pname
            rows.append((indent + full, indent + str(shapes.get(full, "")), ""))
        for cname, child in module.named_children():
            full = prefix + cname
            if full not in params and full not in flops_by_module:
                continue  # no parameter and never ran an op counted here
            flops = flops_by_module.get(full)
            rows.append(
                (
                    indent + full,
                    indent + _format_size(params.get(full, 0)),
                    indent + _format_size(flops) if flops else "",
                )
            )
            walk(child, full + ".", depth + 1)

    walk(_unwrap(model), "", 0)
    return pipe_table(rows, ("module", "#parameters or shape", "#flops"))


def activation_count_operators(model: nn.Module, inputs: list[dict]) -> defaultdict[str, float]:
    """Millions of activations (output elements of convolutions and linear layers) per operator
    type of one forward pass of ``model`` on ``inputs``, as detectron2's namesake (which takes
    one image only; here the counts are the batch's total)."""
    by_operator = _count(model, inputs, _ACTIVATION_FORMULAS)
    return defaultdict(float, {k: v / 1e6 for k, v in by_operator.items()})


# -- FlopCountAnalysis ---------------------------------------------------------------------

Handle = Callable[[list[Any], list[Any]], "int | float | Counter[str]"]
"""A custom operator handle: ``handle(inputs, outputs)`` -> FLOPs (a number, named after the op
without its namespace) or a ``Counter`` of operator-type name -> FLOPs. ``inputs`` are the op's
arguments (tensors as tensors; positional ones, then the values of keyword ones), ``outputs``
its output tensors."""

# Ops that run but are not reported as unsupported: their FLOPs are zero by fvcore's and
# detectron2's convention (the jit ops that fvcore ignores, plus detectron2's ``_IGNORED_OPS``:
# sorting, NMS, max pooling, batch norm, softmax...), named as torch dispatches them. Besides
# these, element-wise ops (``torch.Tag.pointwise``: add, mul, sigmoid, relu, exp...), views and
# ops without a tensor argument (arange, zeros, full...) are free too.
_DATA_MOVEMENT_OPS = (  # indexing, joining, splitting, copying, creating: no arithmetic
    "_index_put_impl_ _to_copy _unsafe_index cat chunk clone constant_pad_nd contiguous copy_ "
    "empty_like fill_ flip full_like gather index index_put index_put_ index_select masked_fill "
    "masked_fill_ masked_scatter masked_select new_empty new_full new_ones new_zeros ones_like "
    "repeat repeat_interleave roll scatter scatter_ scatter_add scatter_add_ split split_with_sizes "
    "stack unbind zero_ zeros_like _local_scalar_dense is_nonzero equal lift_fresh resize_ set_ "
    "zeros ones empty empty_strided full scalar_tensor arange linspace _unsafe_view unsqueeze_ "
    "squeeze_ t_ transpose_ as_strided_ detach_ all any _assert_async"
)
_UNCOUNTED_OPS = (  # sorting, selection, pooling; batch norm (folded at inference), softmax, dropout
    "argmax argmin argsort sort topk max max_pool2d max_pool2d_with_indices min nonzero "
    "nonzero_numpy unique_consecutive _unique2 meshgrid batch_norm native_batch_norm "
    "_native_batch_norm_legit _native_batch_norm_legit_no_training softmax _softmax log_softmax "
    "_log_softmax dropout native_dropout"
)
_FREE_OPS: frozenset[str] = frozenset(
    ["aten::" + name for names in (_DATA_MOVEMENT_OPS, _UNCOUNTED_OPS) for name in names.split()]
    + ["torchvision::nms"]
)


class _UnknownModuleError(KeyError, ValueError):
    """A module name that is not the analysed model's (fvcore raises KeyError, det ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _OpRecorder(TorchDispatchMode):
    """Sees every op that runs below ``FlopCounterMode`` (after its decompositions)."""

    def __init__(self, on_op: Callable[[Any, tuple[Any, ...], dict[str, Any]], None]) -> None:
        super().__init__()
        self.on_op = on_op

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        self.on_op(func, args, kwargs)
        return func(*args, **kwargs)


def _packet_name(packet: Any) -> str:
    return getattr(packet, "_qualified_op_name", str(packet))


def _resolve_op(name: str) -> Any | None:
    """The op packet named ``"namespace::op"`` (``"aten::convolution"``), or None."""
    namespace, sep, op = name.partition("::")
    if not sep or not namespace or not op:
        return None
    try:
        return getattr(getattr(torch.ops, namespace), op)
    except (AttributeError, RuntimeError):
        return None


def _check_model_inputs(inputs: Any) -> None:
    if inputs is None:
        raise TypeError(
            "FlopCountAnalysis needs the model's inputs (for a det model: a list of dicts "
            "[{'image': (C, H, W) tensor}, ...]), got None"
        )
    if isinstance(inputs, dict):
        raise TypeError(
            "FlopCountAnalysis takes what the model takes: a det model takes a list of dicts; "
            f"got one dict (keys {sorted(map(str, inputs))}): pass [inputs]"
        )
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise ValueError(
                "FlopCountAnalysis got empty inputs: give at least one {'image': (C, H, W) tensor}"
            )
        for i, item in enumerate(inputs):
            if not isinstance(item, dict):
                continue
            image = item.get("image")
            if not isinstance(image, torch.Tensor) or image.dim() != 3:
                got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
                raise ValueError(
                    f"inputs[{i}]['image'] must be a (C, H, W) tensor, got {got} "
                    f"(keys: {sorted(map(str, item))})"
                )


class FlopCountAnalysis:
    """detectron2's ``utils.analysis.FlopCountAnalysis`` (an fvcore ``FlopCountAnalysis``) for any
    det model: the FLOPs of one forward pass of ``model(inputs)``, per module and operator type.

        flops = FlopCountAnalysis(model, [{"image": image}])
        flops.total()                    # 85_300_000_000 (multiply-adds)
        flops.by_operator()              # Counter({"conv": ..., "linear": ..., "upsample_nearest2d": ...})
        flops.by_module()["backbone"]    # a module's total, its submodules' included
        print(fvcore.nn.flop_count_table(flops))

    What is counted: exactly what :func:`flop_count_operators` counts (see the module docstring):
    fvcore's formulas (a multiply-add is one flop; batch norm, element-wise ops, pooling,
    sorting, NMS and data movement count nothing, as detectron2 ignores them), for the ops torch
    dispatches, with ``torch.utils.flop_counter.FlopCounterMode``. detectron2 traces the model
    with ``torch.jit.trace`` through its ``TracingAdapter`` and counts the jit graph; det models
    need not be traceable (det's ``det.export.TracingAdapter`` is a ``torch.export`` rewrite of
    inference for one image, not the eager forward), so det runs the eager forward instead. The
    totals are fvcore's; operator types are named by the dispatched kernel (``conv``, ``linear``
    for every 2-D matrix product, ``bmm``, ``group_norm``, ``upsample_nearest2d``...), where
    fvcore may say ``matmul``/``addmm``. The model runs in eval mode with gradients enabled (as
    :func:`flop_count_operators`), and is restored afterwards. Counts depend on the input: average
    over several (``tools/analyze_model.py -n``).

    Module names are ``model.named_modules()``'s: ``""`` is the model, ``"backbone"``,
    ``"backbone.bottom_up.stem.conv1"``; a shared module has one (canonical: its first) name,
    ``canonical_module_name`` maps the others to it. With ``ancestor_mode("owner")`` (default, as
    fvcore) an op belongs to the innermost module running its ``forward`` and to that module's
    parents by name, so a parent's count includes its children's; ``"caller"`` gives it to every
    module whose ``forward`` is running instead. ``uncalled_modules()`` are the modules whose
    ``forward`` never ran (seen with forward hooks, not from a graph; a container counts as
    called when a submodule is). ``unsupported_ops()`` counts the ops that ran without a handle
    and are not free by convention (``torchvision::roi_align``, ``aten::sum``...), named as
    dispatched (``"aten::upsample_bilinear2d"``).

    Like fvcore's, the analysis is lazy (run on the first statistic asked for, again after
    ``set_op_handle``, ``clear_op_handles`` or ``ancestor_mode``), the setters are chainable, and
    ``_model`` is the analysed model (for fvcore's ``flop_count_table`` and ``flop_count_str``).
    Handles are det's: see :meth:`set_op_handle`.
    """

    def __init__(self, model: nn.Module, inputs: Any) -> None:
        """
        Args:
            model: the model (a DataParallel/DistributedDataParallel wrapper is looked through).
            inputs: what ``model`` is called with; for a det model the ``list[dict]`` of its
                standard input (``[{"image": (C, H, W) tensor}, ...]``).
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"FlopCountAnalysis counts a torch.nn.Module, got {type(model).__name__}")
        _check_model_inputs(inputs)
        self._model: nn.Module = _unwrap(model)
        self._inputs = inputs
        self._named_modules: dict[str, nn.Module] = {}
        self._canonical: dict[nn.Module, str] = {}  # module -> its canonical (first) name
        self._aliases: dict[str, str] = {}  # every name -> the canonical name
        for name, module in self._model.named_modules(remove_duplicate=False):
            self._named_modules.setdefault(name, module)
            self._aliases[name] = self._canonical.setdefault(module, name)
        # op packet -> (operator-type name or None for a custom handle, handle, takes raw args)
        self._op_handles: dict[Any, tuple[str | None, Callable[..., Any], bool]] = {
            packet: (type_name, formula, False) for packet, (type_name, formula) in _FLOP_FORMULAS.items()
        }
        self._ignored_ops: set[str] = set(_FREE_OPS)
        self._stats: tuple[dict[str, Counter[str]], dict[str, Counter[str]], set[str]] | None = None
        self._enable_warn_unsupported_ops = True
        self._enable_warn_uncalled_mods = True
        self._warn_trace = "no_tracer_warning"
        self._ancestor_mode = "owner"
        self._owners: dict[str, tuple[str, ...]] = {}  # innermost module -> its owners, cached

    # -- statistics ---------------------------------------------------------------------------

    def total(self, module_name: str = "") -> int:
        """FLOPs of ``module_name`` (default: the whole model), all operator types summed."""
        counts, _, _ = self._analyze()
        return sum(counts[self.canonical_module_name(module_name)].values())

    def by_operator(self, module_name: str = "") -> Counter[str]:
        """FLOPs of ``module_name`` (default: the whole model) per operator type."""
        counts, _, _ = self._analyze()
        return Counter(counts[self.canonical_module_name(module_name)])

    def by_module(self) -> Counter[str]:
        """FLOPs of every module (``""`` = the model), operator types summed."""
        counts, _, _ = self._analyze()
        return Counter({name: sum(per_op.values()) for name, per_op in counts.items()})

    def by_module_and_operator(self) -> dict[str, Counter[str]]:
        """FLOPs of every module per operator type: module name -> Counter."""
        counts, _, _ = self._analyze()
        return {name: Counter(per_op) for name, per_op in counts.items()}

    def unsupported_ops(self, module_name: str = "") -> Counter[str]:
        """How many times each op without a handle ran in ``module_name`` (default: the whole
        model); ops that are free by convention or ignored with ``set_op_handle(name, None)`` are
        not listed."""
        _, unsupported, _ = self._analyze()
        return Counter(unsupported[self.canonical_module_name(module_name)])

    def uncalled_modules(self) -> set[str]:
        """Names of the modules whose ``forward`` never ran (a module called through
        ``.forward()`` or another method is among them; its ops count in its caller)."""
        _, _, uncalled = self._analyze()
        return set(uncalled)

    def canonical_module_name(self, name: str) -> str:
        """The name under which ``name``'s module is reported (a shared module's first name)."""
        if not isinstance(name, str):
            raise TypeError(
                f"module name must be a str (as in model.named_modules()), got {type(name).__name__}"
            )
        if name not in self._aliases:
            close = difflib.get_close_matches(name, list(self._aliases), n=3)
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise _UnknownModuleError(
                f"{name!r} is not a module of the analysed {type(self._model).__name__} "
                f"(names are model.named_modules()'s, '' = the model){hint}"
            )
        return self._aliases[name]

    # -- settings (chainable) -----------------------------------------------------------------

    def set_op_handle(self, *args: Any, **kwargs: Handle | None) -> FlopCountAnalysis:
        """Add or replace operator handles: ``set_op_handle("aten::topk", handle, "aten::sum",
        None)`` or ``set_op_handle(**{"aten::topk": handle})``. Names are the dispatched ops'
        (``unsupported_ops()`` lists them). A ``None`` handle ignores the op (its FLOPs are no
        longer counted and it is not reported as unsupported); otherwise see :data:`Handle`
        (fvcore's handles read jit graph values and do not apply here)."""
        if len(args) % 2:
            raise TypeError("set_op_handle takes pairs of operator name and handle")
        pairs = list(zip(args[::2], args[1::2])) + list(kwargs.items())
        for name, handle in pairs:
            if not isinstance(name, str):
                raise TypeError(f"operator names are strings like 'aten::topk', got {type(name).__name__}")
            if handle is not None and not callable(handle):
                raise TypeError(
                    f"the handle of {name!r} must be callable or None, got {type(handle).__name__}"
                )
            packet = _resolve_op(name)
            if handle is None:
                self._ignored_ops.add(name)
                for known in [p for p in self._op_handles if _packet_name(p) == name]:
                    del self._op_handles[known]
                continue
            if packet is None:
                raise ValueError(
                    f"no operator {name!r}: give a dispatched op as 'namespace::name' "
                    "(e.g. 'aten::topk'; unsupported_ops() lists the ones that ran)"
                )
            self._ignored_ops.discard(name)
            self._op_handles[packet] = (None, handle, True)
        self._stats = None
        return self

    def clear_op_handles(self) -> FlopCountAnalysis:
        """Remove every handle, det's formulas included (nothing is counted until
        :meth:`set_op_handle` adds some); the ops free by convention stay ignored."""
        self._op_handles = {}
        self._ignored_ops = set(_FREE_OPS)
        self._stats = None
        return self

    def unsupported_ops_warnings(self, enabled: bool) -> FlopCountAnalysis:
        """Whether the analysis logs the unsupported ops (default True)."""
        self._enable_warn_unsupported_ops = _check_bool("unsupported_ops_warnings", enabled)
        return self

    def uncalled_modules_warnings(self, enabled: bool) -> FlopCountAnalysis:
        """Whether the analysis logs the uncalled modules that have a ``forward`` (default True)."""
        self._enable_warn_uncalled_mods = _check_bool("uncalled_modules_warnings", enabled)
        return self

    def tracer_warnings(self, mode: str) -> FlopCountAnalysis:
        """Python warnings raised while the model runs: ``"all"`` kept, ``"no_tracer_warning"``
        (default) all but ``torch.jit.TracerWarning``, ``"none"`` silenced."""
        if mode not in ("all", "no_tracer_warning", "none"):
            raise ValueError(
                f"tracer_warnings mode must be 'all', 'no_tracer_warning' or 'none', got {mode!r}"
            )
        self._warn_trace = mode
        return self

    def ancestor_mode(self, mode: str) -> FlopCountAnalysis:
        """Which modules an op counts in: ``"owner"`` (default) the innermost running module and
        its parents by name, ``"caller"`` every module whose ``forward`` is running."""
        if mode not in ("owner", "caller"):
            raise ValueError(f"ancestor_mode must be 'owner' or 'caller', got {mode!r}")
        if mode != self._ancestor_mode:
            self._stats = None
        self._ancestor_mode = mode
        return self

    def copy(self, new_model: nn.Module | None = None, new_inputs: Any = None) -> FlopCountAnalysis:
        """A new analysis with these settings (handles, ignored ops, warnings, ancestor mode), of
        ``new_model`` and/or ``new_inputs`` if given."""
        other = FlopCountAnalysis(
            self._model if new_model is None else new_model,
            self._inputs if new_inputs is None else new_inputs,
        )
        other._op_handles = dict(self._op_handles)
        other._ignored_ops = set(self._ignored_ops)
        other._enable_warn_unsupported_ops = self._enable_warn_unsupported_ops
        other._enable_warn_uncalled_mods = self._enable_warn_uncalled_mods
        other._warn_trace = self._warn_trace
        other._ancestor_mode = self._ancestor_mode
        return other

    # -- the counting run ---------------------------------------------------------------------

    def _ancestors(self, stack: list[str]) -> tuple[str, ...]:
        """The modules an op run with module ``stack`` (outermost first) counts in."""
        if self._ancestor_mode == "caller":
            return tuple({"", *stack})
        innermost = stack[-1] if stack else ""
        owners = self._owners.get(innermost)
        if owners is None:
            parts = innermost.split(".") if innermost else []
            owners = tuple({self._aliases[".".join(parts[:k])]: None for k in range(len(parts) + 1)})
            self._owners[innermost] = owners
        return owners

    def _analyze(self) -> tuple[dict[str, Counter[str]], dict[str, Counter[str]], set[str]]:
        if self._stats is not None:
            return self._stats
        names = list(dict.fromkeys(self._canonical.values()))
        counts: dict[str, Counter[str]] = {name: Counter() for name in names}
        unsupported: dict[str, Counter[str]] = {name: Counter() for name in names}
        called: set[str] = set()
        stack: list[str] = []

        def add(per_type: Counter[str]) -> None:
            for name in self._ancestors(stack):
                counts[name].update(per_type)  # update, not +=: a zero count keeps its key, as in flop_count

        def shape_handle(type_name: str, formula: Callable[..., int]) -> Callable[..., int]:
            def counted(*args: Any, **kwargs: Any) -> int:
                n = formula(*args, **kwargs)
                add(Counter({type_name: n}))
                return n

            return counted

        def raw_handle(packet: Any, handle: Callable[..., Any]) -> Callable[..., Any]:
            default_name = _packet_name(packet).partition("::")[2]

            def counted(*args: Any, out_val: Any = None, **kwargs: Any) -> Any:
                outputs = [t for t in pytree.tree_leaves(out_val) if isinstance(t, torch.Tensor)]
                result = handle([*args, *kwargs.values()], outputs)
                if isinstance(result, Counter):
                    per_type = result
                elif isinstance(result, (int, float)) and not isinstance(result, bool):
                    per_type = Counter({default_name: result})
                else:
                    raise TypeError(
                        f"the handle of {_packet_name(packet)!r} returned {type(result).__name__}; "
                        "it must return a number or a Counter of operator-type name -> count"
                    )
                add(per_type)
                return sum(per_type.values())

            counted._get_raw = True  # type: ignore[attr-defined]  # FlopCounterMode: tensors, not shapes
            return counted

        formulas: dict[Any, Callable[..., Any]] = {}
        for packet, (type_name, handle, raw) in self._op_handles.items():
            formulas[packet] = raw_handle(packet, handle) if raw else shape_handle(type_name or "", handle)
        handled = set(self._op_handles)

        def on_op(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            packet = getattr(func, "_overloadpacket", None)
            if packet is None or packet in handled:
                return
            name = _packet_name(packet)
            if name in self._ignored_ops or torch.Tag.pointwise in func.tags or func.is_view:
                return
            if not any(isinstance(a, torch.Tensor) for a in pytree.tree_leaves((args, kwargs))):
                return  # creates a tensor or computes on scalars
            for owner in self._ancestors(stack):
                unsupported[owner][name] += 1

        def enter(module: nn.Module, args: Any) -> None:
            name = self._canonical[module]
            stack.append(name)
            called.add(name)

        def leave(module: nn.Module, args: Any, output: Any) -> None:
            name = self._canonical[module]
            for i in range(len(stack) - 1, -1, -1):
                if stack[i] == name:
                    del stack[i]
                    break

        hooks = []
        try:
            for module in self._canonical:
                hooks.append(module.register_forward_pre_hook(enter))
                hooks.append(module.register_forward_hook(leave, always_call=True))
            counter = _fc.FlopCounterMode(display=False, custom_mapping=_counter_mapping(formulas))
            with warnings.catch_warnings():
                if self._warn_trace == "none":
                    warnings.simplefilter("ignore")
                elif self._warn_trace == "no_tracer_warning":
                    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                with _counting_context(self._model), _OpRecorder(on_op), counter:
                    self._model(self._inputs)
        finally:
            for hook in hooks:
                hook.remove()

        seen = set(called)
        if self._ancestor_mode == "owner":
            for name in called:
                seen.update(self._ancestors([name]))
        uncalled = set(names) - seen
        self._stats = (counts, unsupported, uncalled)
        self._warn(unsupported[""], uncalled)
        return self._stats

    def _warn(self, unsupported: Counter[str], uncalled: set[str]) -> None:
        if self._enable_warn_unsupported_ops:
            for op, n in unsupported.items():
                _logger.warning("Unsupported operator %s encountered %d time(s)", op, n)
        if self._enable_warn_uncalled_mods:
            containers = {nn.Module.forward, nn.ModuleList.forward, nn.ModuleDict.forward}
            with_forward = sorted(
                name for name in uncalled if type(self._named_modules[name]).forward not in containers
            )
            if with_forward:
                _logger.warning(
                    "These submodules of the model were never called: they may be unused, or called through "
                    ".forward() or another method (then their FLOPs count in their caller): %s",
                    ", ".join(with_forward),
                )


def _check_bool(what: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} takes True or False, got {value!r}")
    return value
