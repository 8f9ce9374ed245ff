"""Fast mode: an opt-in, inference-only rewrite of a built model for CPU speed.

:func:`fast_mode` changes a model in place (parameter values, not its results' meaning):

- **BN folding**: every det ``Conv2d`` whose ``norm`` is a ``FrozenBatchNorm2d`` (or an eval-mode
  ``nn.BatchNorm2d``) gets the affine transform folded into its weight and bias; the norm is
  dropped. Exact up to float rounding.
- **channels_last** (where the machine's choice says so, see
  :func:`det.core.machine.inference_choices`): convolution weights and activations use the NHWC
  layout oneDNN computes in, which saves a layout reorder around every convolution.
- **fused conv+ReLU**: a det ``Conv2d`` whose ``activation`` is a ReLU (given at construction, or
  moved there by its component's ``fuse_for_inference``, below) runs as one oneDNN convolution with
  a ReLU post-op instead of a convolution and a second pass over the output; where oneDNN's JIT
  kernels do not run (aarch64, the portable level) it is ``F.conv2d`` and an in-place ReLU.
- **bf16** (default: on where the CPU computes bf16 natively, AVX512-BF16, AVX-NE-CONVERT or AMX):
  the backbone runs in bfloat16 end to end, head convolutions and FC layers take bfloat16 inputs
  and weights and return float32; the layers components list in ``float32_layers`` (class scores,
  box/anchor deltas, objectness, mask logits) stay float32, so scores, boxes and thresholds are
  decided in float32. ROI poolers (ROIAlign) pool the bfloat16 features in bfloat16 (box geometry in
  float32) and hand bfloat16 regions to the heads, whose layers take them as they are; layers that
  stay float32 (predictors, convolutions with a norm that cannot be folded, e.g. GN) convert their
  input. ``bf16=True`` on a CPU without oneDNN bf16 kernels (AVX2-only x86) raises ValueError.
- **allocator**: :func:`det.core.allocator.retain_freed_memory_where_chosen` (process-wide).

Components own their rewrites
-----------------------------
Fast mode names no backbone or head class and no attribute of one. It asks each module of the
model (``model.modules()``) two optional things, which a component defines next to its own
``forward``:

``fuse_for_inference(self) -> None``
    Called once on every module that defines it, before any layer is converted, when
    ``fuse_relu`` is on. The component moves each ReLU its ``forward`` applies to the output of one
    of its det ``Conv2d`` layers into that layer's ``activation`` (and its ``forward`` stops
    applying it, e.g. by checking ``conv.activation``), so that fast mode can fuse it. It must leave
    the component's outputs unchanged (it may be called on a model that is never converted) and
    touch only its own layers. det's ResNet blocks and stem do this (det.backbones.resnet).
``float32_layers: tuple[str, ...]``
    Attribute names of the component's own final prediction layers, whose outputs decide scores,
    box edges and thresholds: under bf16 they keep float32 weights and compute in float32. A name
    that is not a submodule is a ValueError. det's RPN, ROI box predictor, mask, keypoint,
    semantic-segmentation and RetinaNet heads declare theirs.

A component without either is converted layer by layer as above (its ReLUs after convolutions stay
separate passes; under bf16 all its layers compute in bfloat16).

The model must be in eval mode and is meant for inference: fast mode drops the BN buffers (the
``state_dict`` no longer matches detectron2's names), converts the weights to the compute dtype and
layout in place (no second copy) and keeps no gradient path. Build and load the model first, then
convert::

    model = build_model(cfg); DetectionCheckpointer(model).load(path)
    model = fast_mode(model.eval())          # bf16 where the CPU computes it natively
    outputs = model([{"image": image}])

``fast_mode(model, bf16=False)`` gives the float32 variant (BN folding, channels_last, fused ReLU),
whose outputs equal the default model's up to float rounding.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from det.core.allocator import retain_freed_memory_where_chosen
from det.core.layers.batch_norm import FrozenBatchNorm2d
from det.core.layers.roi_align import ROIAlign
from det.core.layers.wrappers import Conv2d
from det.core.machine import inference_choices, machine_info
from det.core.modeling.poolers import ROIPooler

FUSE_METHOD = "fuse_for_inference"
"""Name of the optional component method fast mode calls (see "Components own their rewrites")."""

FLOAT32_LAYERS = "float32_layers"
"""Name of the optional component attribute listing its layers that stay float32 under bf16."""


def bf16_supported() -> bool:
    """Whether this CPU computes bf16 convolutions natively (AVX512-BF16, AVX-NE-CONVERT or AMX, as
    :func:`det.core.machine.machine_info` reads it, emulation caps included): fast mode's default."""
    return machine_info().bf16


def _fused_op_available() -> bool:
    """oneDNN's conv+post-op kernel, where the machine's choice allows it (x86 with AVX2 or better:
    oneDNN's JIT kernels); elsewhere (aarch64, the portable level) fast mode takes plain F.conv2d."""
    if not inference_choices().fused_conv:
        return False
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


_FUSED = _fused_op_available()


def _is_relu(act: Any) -> bool:
    return isinstance(act, nn.ReLU) or act in (F.relu, F.relu_, torch.relu, torch.relu_)


def fold_batchnorm(conv: nn.Conv2d, norm: nn.Module) -> None:
    """Fold an eval-mode (Frozen)BatchNorm ``norm`` that follows ``conv`` into its weight/bias."""
    if isinstance(norm, nn.BatchNorm2d) and norm.training:
        raise ValueError("fold_batchnorm: a BatchNorm2d in training mode cannot be folded; call model.eval()")
    weight = norm.weight if norm.weight is not None else torch.ones_like(norm.running_var)
    bias = norm.bias if norm.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        # Computed in float64: the folded weight should differ from conv-then-BN by one rounding.
        scale = weight.double() * (norm.running_var.double() + norm.eps).rsqrt()
        shift = bias.double() - norm.running_mean.double() * scale
        new_w = (conv.weight.double() * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype)
        old_b = conv.bias.double() if conv.bias is not None else torch.zeros_like(shift)
        new_b = (old_b * scale + shift).to(conv.weight.dtype)
    conv.weight = nn.Parameter(new_w, requires_grad=False)
    conv.bias = nn.Parameter(new_b, requires_grad=False)


def _set_fast_params(module: nn.Module, dtype: torch.dtype, fmt: torch.memory_format) -> None:
    """Convert weight/bias to the compute dtype and layout, sharing storage with the parameters.

    The parameters themselves are replaced (not copied): keeping float32 originals next to
    prepared copies would add the model's size (~170 MB for R50-FPN) to the peak memory.
    """
    weight = torch.empty_like(module.weight, dtype=dtype, memory_format=fmt).copy_(module.weight.detach())
    module.weight = nn.Parameter(weight, requires_grad=False)
    if module.bias is not None:
        module.bias = nn.Parameter(module.bias.detach().to(dtype, copy=True), requires_grad=False)


def _own_storage(model: nn.Module) -> None:
    """Give the tensors of modules fast mode did not convert (final predictors, anchors, ...) copies
    of their own (converted modules already have fresh ones, see :func:`_set_fast_params`).

    A checkpoint loaded memory-mapped with ``assign=True`` (what DefaultPredictor does) leaves each
    parameter backed by the file's mapping, which stays mapped while any one of them lives; the
    pages that folding and conversion read would stay resident next to their converted copies
    (~170 MB for R50-FPN).
    """
    for module in model.modules():
        if hasattr(module, "_fast_dtype"):
            continue
        for name, tensor in list(module._parameters.items()):
            if tensor is not None:
                module._parameters[name] = nn.Parameter(
                    tensor.detach().clone(memory_format=torch.preserve_format), requires_grad=False
                )
        for name, tensor in list(module._buffers.items()):
            if tensor is not None:
                module._buffers[name] = tensor.clone(memory_format=torch.preserve_format)


def _prepare_conv(
    conv: nn.Conv2d, *, relu: bool, dtype: torch.dtype, out_dtype: torch.dtype | None, channels_last: bool
) -> None:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    _set_fast_params(conv, dtype, fmt)
    conv._fast_dtype = dtype
    conv._fast_out_dtype = out_dtype
    conv._fast_relu = relu
    conv._fast_fmt = fmt
    conv.forward = types.MethodType(_fast_conv_forward, conv)


def _fast_conv_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"Conv2d (fast mode) expects input of shape (N, {self.in_channels}, H, W), got {got}"
        )
    x = x.to(self._fast_dtype).contiguous(memory_format=self._fast_fmt)
    if isinstance(self.padding, str):  # "same"/"valid" are not handled by the fused op
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        y = F.relu_(y) if self._fast_relu else y
    elif _FUSED and x.device.type == "cpu" and x.numel() > 0:
        y = torch.ops.mkldnn._convolution_pointwise(
            x,
            self.weight,
            self.bias,
            list(self.padding),
            list(self.stride),
            list(self.dilation),
            self.groups,
            "relu" if self._fast_relu else "none",
            [],
            "",
        )
    else:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        y = F.relu_(y) if self._fast_relu else y
    if self._fast_out_dtype is not None and y.dtype != self._fast_out_dtype:
        y = y.to(self._fast_out_dtype)
    return y


def _fast_linear_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    y = F.linear(x.to(self._fast_dtype), self.weight, self.bias)
    return y.to(self._fast_out_dtype)


def _fast_deconv_forward(self: nn.ConvTranspose2d, x: torch.Tensor, output_size=None) -> torch.Tensor:
    if output_size is not None:
        return nn.ConvTranspose2d.forward(self, x, output_size)
    x = x.to(self._fast_dtype).contiguous(memory_format=self._fast_fmt)
    y = F.conv_transpose2d(
        x,
        self.weight,
        self.bias,
        self.stride,
        self.padding,
        self.output_padding,
        self.groups,
        self.dilation,
    )
    return y.to(self._fast_out_dtype)


def _cast_floats(obj: Any, dtype: torch.dtype) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _cast_floats(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast_floats(v, dtype) for v in obj)
    return obj


def _wrap_float32_outputs(module: nn.Module) -> None:
    """Make ``module`` (run in bf16 inside) hand float32 tensors to the rest of the model."""
    inner = module.forward

    def forward(*args, **kwargs):
        return _cast_floats(inner(*args, **kwargs), torch.float32)

    module.forward = forward


def _convert_inputs_to_weight_dtype(module: nn.Module) -> None:
    """Make a layer that keeps its own weights' dtype accept inputs of any float dtype."""
    inner = module.forward

    def forward(x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != module.weight.dtype:
            x = x.to(module.weight.dtype)
        return inner(x, *args, **kwargs)

    module.forward = forward


def _pool_in(pooler: nn.Module, dtype: torch.dtype) -> None:
    """Make a ROIPooler of ROIAlign levels pool ``dtype`` features (converting float32 ones, ~2 ms
    for an FPN at 800x1067): reading bfloat16 windows halves the memory traffic of the separable
    ROIAlign, which is what its time goes into (box pooler: 84 -> 36 ms)."""
    inner = pooler.forward

    def forward(x: list[torch.Tensor], box_lists: Any) -> torch.Tensor:
        return inner([f.to(dtype) if f.is_floating_point() else f for f in x], box_lists)

    pooler.forward = forward


def _float32_layer_ids(model: nn.Module) -> set[int]:
    """The layers the model's components name in their ``float32_layers`` (see the module docs)."""
    ids = set()
    for module in model.modules():
        for name in getattr(module, FLOAT32_LAYERS, ()):
            layer = getattr(module, name, None)
            if not isinstance(layer, nn.Module):
                raise ValueError(
                    f"fast_mode: {type(module).__name__}.{FLOAT32_LAYERS} names {name!r}, which is not "
                    f"a submodule of it; list the attribute names of its final predictor layers"
                )
            ids.add(id(layer))
    return ids


def _fuse_components(model: nn.Module) -> None:
    """Let every component that defines ``fuse_for_inference`` move its activations into its convs."""
    for module in list(model.modules()):
        fuse = getattr(module, FUSE_METHOD, None)
        if callable(fuse):
            fuse()


def fast_mode(
    model: nn.Module,
    *,
    bf16: bool | None = None,
    channels_last: bool | None = None,
    fold_bn: bool = True,
    fuse_relu: bool = True,
) -> nn.Module:
    """Convert ``model`` (built, weights loaded, in eval mode) for fast CPU inference, in place.

    Args:
        bf16: run convolutions/FC layers in bfloat16 (the layers components list in their
            ``float32_layers`` stay float32). ``None`` (default): where this CPU computes bf16
            natively (:func:`bf16_supported`). ``True`` needs oneDNN's bf16 kernels (native, or
            emulated with AVX-512 BW/VL/DQ); on a CPU without them (e.g. AVX2-only) it raises
            ValueError instead of failing inside oneDNN.
        channels_last: NHWC weights and activations for the convolutions. ``None`` (default): what
            the default model uses on this machine (:func:`det.core.machine.inference_choices`).
        fold_bn: fold FrozenBatchNorm2d / eval BatchNorm2d into the preceding det ``Conv2d``.
        fuse_relu: let components move their ReLUs into their convolutions (``fuse_for_inference``)
            and run each det ``Conv2d`` with a ReLU as one oneDNN convolution with a ReLU post-op
            (where oneDNN's JIT kernels run: x86 with AVX2 or better; elsewhere the ReLU follows
            the convolution in place).

    Returns:
        the same ``model`` object, converted; it is marked with ``model.det_fast_mode`` (a dict of
        the options used). Converting twice raises ValueError.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fast_mode expects an nn.Module (a built det model), got {type(model).__name__}")
    if getattr(model, "det_fast_mode", None) is not None:
        raise ValueError("fast_mode: this model is already converted (model.det_fast_mode is set)")
    if model.training:
        raise ValueError("fast_mode is for inference: call model.eval() before fast_mode(model)")
    info = machine_info()
    if bf16 is None:
        bf16 = inference_choices().fast_bf16
    elif bf16 and not info.bf16_kernels:
        raise ValueError(
            f"fast_mode(bf16=True): this CPU has no bfloat16 convolution kernels ({info.describe()}); "
            "oneDNN needs AVX-512 (BW, VL, DQ), AVX-NE-CONVERT or AMX for them. Call fast_mode(model) "
            "to let det choose for this machine, or fast_mode(model, bf16=False)"
        )
    if channels_last is None:
        channels_last = inference_choices().channels_last
    low = torch.bfloat16 if bf16 else torch.float32
    retain_freed_memory_where_chosen()

    # Modules under the backbone stay in bf16 between layers; elsewhere each layer returns float32.
    backbone = getattr(model, "backbone", None)
    in_backbone = set()
    if backbone is not None and bf16:
        in_backbone = {id(m) for m in backbone.modules()}
    float32_ids = _float32_layer_ids(model)
    if fuse_relu:
        _fuse_components(model)

    for module in list(model.modules()):
        keep_fp32 = id(module) in float32_ids
        dtype = torch.float32 if keep_fp32 else low
        out_dtype = None if id(module) in in_backbone else torch.float32
        if isinstance(module, Conv2d):
            norm = module.norm
            if fold_bn and isinstance(norm, (FrozenBatchNorm2d, nn.BatchNorm2d)):
                fold_batchnorm(module, norm)
                module.norm = None
            # The ReLU stays in ``activation`` (a component's forward may read it, see
            # ``fuse_for_inference``); the converted forward applies it as the conv's post-op.
            relu = fuse_relu and module.norm is None and _is_relu(module.activation)
            if module.norm is not None or (module.activation is not None and not relu):
                # a norm/activation that cannot be fused (e.g. GN): keep the plain float32 path
                if bf16 and id(module) not in in_backbone:
                    _convert_inputs_to_weight_dtype(module)
                continue
            _prepare_conv(module, relu=relu, dtype=dtype, out_dtype=out_dtype, channels_last=channels_last)
        elif keep_fp32 and bf16 and isinstance(module, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            _convert_inputs_to_weight_dtype(module)
        elif type(module) is nn.Conv2d and not keep_fp32 and (bf16 or channels_last):
            _prepare_conv(module, relu=False, dtype=dtype, out_dtype=out_dtype, channels_last=channels_last)
        elif isinstance(module, nn.Linear) and not keep_fp32 and bf16:
            _set_fast_params(module, low, torch.contiguous_format)
            module._fast_dtype, module._fast_out_dtype = low, torch.float32
            module.forward = types.MethodType(_fast_linear_forward, module)
        elif type(module) is nn.ConvTranspose2d and not keep_fp32 and bf16:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            _set_fast_params(module, low, fmt)
            module._fast_dtype, module._fast_out_dtype, module._fast_fmt = low, torch.float32, fmt
            module.forward = types.MethodType(_fast_deconv_forward, module)

    if backbone is not None and bf16:
        _wrap_float32_outputs(backbone)
    if bf16:
        for module in model.modules():
            levels = getattr(module, "level_poolers", None)
            if isinstance(module, ROIPooler) and levels and all(type(p) is ROIAlign for p in levels):
                _pool_in(module, low)
    _own_storage(model)
    for p in model.parameters():
        p.requires_grad_(False)
    model.det_fast_mode = {
        "bf16": bool(bf16),
        "channels_last": bool(channels_last),
        "fold_bn": fold_bn,
        "fuse_relu": fuse_relu,
    }
    return model


__all__ = ["FLOAT32_LAYERS", "FUSE_METHOD", "bf16_supported", "fast_mode", "fold_batchnorm"]
