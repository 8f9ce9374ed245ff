"""Model statistics as detectron2's ``utils.analysis``: parameter counts, and FLOPs and activations
per operator type, counted with torch's own :class:`torch.utils.flop_counter.FlopCounterMode`
(no fvcore, no tracing).

    counts = parameter_count(model)            # {"": total, "backbone": ..., "backbone.fpn_lateral2.weight": ...}
    print(parameter_count_table(model, max_depth=2))
    gflops = flop_count_operators(model, [{"image": image}])  # {"conv": 85.3, "linear": 1.2, ...}
    mact = activation_count_operators(model, [{"image": image}])  # {"conv": 110.2, "linear": 1.1}

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

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils import flop_counter as _fc

from det.engine.train.logger import pipe_table

__all__ = [
    "activation_count_operators",
    "flop_count",
    "flop_count_operators",
    "flop_count_table",
    "parameter_count",
    "parameter_count_table",
]

aten = torch.ops.aten


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


def _conv_macs(x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None, **kwargs):
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
        shape = out_shape[0] if isinstance(out_shape, (tuple, list)) and out_shape and not isinstance(
            out_shape[0], int) else out_shape
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


def _count(model: nn.Module, inputs: Any, formulas: dict[Any, tuple[str, Callable[..., int]]]
           ) -> tuple[dict[str, int], dict[str, int]]:
    """Run ``model(inputs)`` under ``FlopCounterMode``; return (count per operator type, total count
    per module name, ``""`` = the model)."""
    model = _unwrap(model)
    mapping: dict[Any, Callable[..., int]] = {}
    for packet, (_, formula) in formulas.items():
        mapping[packet] = formula
        # FlopCounterMode decomposes an op whose overload is not in its table before counting
        # (upsample_nearest2d would become index ops): list the overloads too
        for overload in packet.overloads():
            mapping[getattr(packet, overload)] = formula
    counter = _fc.FlopCounterMode(display=False, custom_mapping=mapping)
    with _counting_context(model), counter:
        model(inputs)
    by_operator: dict[str, int] = defaultdict(int)
    by_module: dict[str, int] = defaultdict(int)
    root = type(model).__name__
    for scope, per_op in counter.get_flop_counts().items():
        counted = {formulas[op][0]: n for op, n in per_op.items() if op in formulas}
        if scope == "Global":
            for name, n in counted.items():
                by_operator[name] += n
            continue
        if scope != root and not scope.startswith(root + "."):
            continue
        by_module[scope[len(root) + 1:]] += sum(counted.values())
    by_module[""] = sum(by_operator.values())
    return dict(by_operator), dict(by_module)


def flop_count_operators(model: nn.Module, inputs: list[dict]) -> defaultdict[str, float]:
    """GFLOPs (10^9 multiply-adds, fvcore's convention) per operator type of one forward pass of
    ``model`` (a detectron2-style model; run in eval mode) on ``inputs`` (``list[dict]``, the
    standard model input). See the module docstring for what is counted and how it is named.

        flop_count_operators(nn.Sequential(nn.Conv2d(3, 8, 3)), torch.rand(1, 3, 10, 10))
        # {'conv': 1.3824e-05}: 8*8 output positions x 8 channels x 3*3*3 weights each
    """
    by_operator, _ = _count(model, inputs, _FLOP_FORMULAS)
    return defaultdict(float, {k: v / 1e9 for k, v in by_operator.items()})


def flop_count(model: nn.Module, inputs: list[dict]) -> tuple[dict[str, int], dict[str, int]]:
    """FLOPs (multiply-adds, not scaled) of one forward pass: (per operator type, per module name
    with ``""`` = the model), as fvcore's ``FlopCountAnalysis.by_operator()`` and ``by_module()``."""
    return _count(model, inputs, _FLOP_FORMULAS)


def flop_count_table(model: nn.Module, flops_by_module: dict[str, int], max_depth: int = 3) -> str:
    """A table of modules down to ``max_depth`` name components with their parameter count (a
    parameter's shape) and FLOPs (from :func:`flop_count`), as fvcore's ``flop_count_table``."""
    if max_depth < 1:
        raise ValueError(f"max_depth must be at least 1, got {max_depth}")
    params = parameter_count(model)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    rows: list[tuple[str, ...]] = [("model", _format_size(params[""]), _format_size(flops_by_module.get("", 0)))]

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
            rows.append((indent + full, indent + _format_size(params.get(full, 0)),
                         indent + _format_size(flops) if flops else ""))
            walk(child, full + ".", depth + 1)

    walk(_unwrap(model), "", 0)
    return pipe_table(rows, ("module", "#parameters or shape", "#flops"))


def activation_count_operators(model: nn.Module, inputs: list[dict]) -> defaultdict[str, float]:
    """Millions of activations (output elements of convolutions and linear layers) per operator
    type of one forward pass of ``model`` on ``inputs``, as detectron2's namesake (which takes
    one image only; here the counts are the batch's total)."""
    by_operator, _ = _count(model, inputs, _ACTIVATION_FORMULAS)
    return defaultdict(float, {k: v / 1e6 for k, v in by_operator.items()})
