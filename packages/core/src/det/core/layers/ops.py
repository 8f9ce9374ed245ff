"""Op dispatch: which implementation of a compute op serves a tensor on a given device type.

detectron2 ships its ops (NMS, ROIAlign, rotated ops, deformable conv) as a compiled extension.
det has none: every op below has a portable *reference* implementation (torchvision's kernel when
torchvision has the op, plain torch otherwise), and a plugin may declare a faster one for a device
type through the ``det_ops`` hook, as ``(op name, device type, "module:attribute")``::

    from det.core.layers.ops import dispatch, op_providers
    keep = dispatch("nms", boxes)(boxes, scores, 0.5)   # the cuda plugin's nms for cuda boxes
    op_providers()["nms"]                               # {"*": "det-core", "cuda": "det-ops-cuda"}

The table is read once, on the first dispatch, and plugin modules are imported only when their op
first runs on their device. A plugin implementation that fails to import is reported (a warning
naming its distribution) and the reference serves instead. ``DET_FORCE_REFERENCE_OPS=1`` in the
environment makes every op use the reference, e.g. to compare a plugin against it.

Signatures every implementation of an op must accept (and results it must give), as the reference:

- ``nms(boxes: (N, 4) XYXY, scores: (N,), iou_threshold: float) -> (K,) int64`` kept indices,
  by decreasing score.
- ``batched_nms(boxes: (N, 4), scores: (N,), idxs: (N,) int, iou_threshold: float) -> (K,) int64``,
  NMS within each ``idxs`` value, kept indices by decreasing score.
- ``roi_align(input: (N, C, H, W), rois: (R, 5) [batch index, x0, y0, x1, y1], output_size: (h, w),
  spatial_scale: float, sampling_ratio: int, aligned: bool) -> (R, C, h, w)``; differentiable in
  ``input``. Same numbers as ``torchvision.ops.roi_align``.
- ``roi_align_rotated(input: (N, C, H, W), rois: (R, 6) [batch index, cx, cy, w, h, angle in
  degrees], output_size: (h, w), spatial_scale: float, sampling_ratio: int) -> (R, C, h, w)``;
  differentiable in ``input``. Same numbers as detectron2's ROIAlignRotated kernel.
- ``nms_rotated(boxes: (N, 5) [cx, cy, w, h, angle in degrees], scores: (N,), iou_threshold: float)
  -> (K,) int64`` kept indices by decreasing score; suppresses at IoU >= threshold (detectron2's
  rotated kernel; ``nms`` suppresses at IoU > threshold, as torchvision).
- ``box_iou_rotated(boxes1: (N, 5), boxes2: (M, 5)) -> (N, M)`` IoU of rotated boxes.
- ``paste_masks(masks: (N, M, M), boxes: (N, 4) XYXY, image_shape: (h, w), threshold: float = 0.5)
  -> (N, h, w)`` bool (uint8 scaled by 255 when threshold < 0), as detectron2's
  ``paste_masks_in_image``.
- ``deform_conv(input, offset, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
  mask=None) -> Tensor``, the arguments and result of ``torchvision.ops.deform_conv2d`` (groups and
  deformable groups inferred from the shapes); differentiable in input, offset, mask, weight, bias.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch

from det.structures.thread_import import import_on_own_thread

REFERENCE_DEVICE = "*"
"""Device key under which :func:`op_providers` lists the reference (it serves every device)."""

REFERENCE_PROVIDER = "det-core"

REFERENCE_OPS: dict[str, str] = {
    "nms": "det.core.layers.nms:_nms_reference",
    "batched_nms": "det.core.layers.nms:_batched_nms_reference",
    "roi_align": "det.core.layers.roi_align:_roi_align_reference",
    "roi_align_rotated": "det.core.layers.roi_align_rotated:_roi_align_rotated_reference",
    "nms_rotated": "det.core.layers.nms:_nms_rotated_reference",
    "box_iou_rotated": "det.core.layers.rotated_boxes:_box_iou_rotated_reference",
    "paste_masks": "det.core.layers.mask_ops:_paste_masks_reference",
    "deform_conv": "det.core.layers.deform_conv:_deform_conv_reference",
}
"""Op name -> "module:attribute" of its portable implementation."""

OP_NAMES: tuple[str, ...] = tuple(REFERENCE_OPS)

FORCE_REFERENCE_ENV = "DET_FORCE_REFERENCE_OPS"


_kernels_loaded = False


def torchvision_kernels() -> Any:
    """``torch.ops.torchvision``: torchvision's compiled kernels, loaded without importing torchvision.

    Inference needs only the kernels (``nms``); importing ``torchvision.ops`` for them costs ~0.8 s of
    a new process's first prediction (it imports torch._dynamo). So the extension library is loaded
    straight from torchvision's folder, as torchvision's own ``extension.py`` does. The kernels'
    autograd formulas are registered by torchvision's Python code: paths that may need gradients
    use :func:`torchvision_ops`. When the library cannot be found this way, torchvision is imported.
    """
    global _kernels_loaded
    if not _kernels_loaded:
        import importlib.machinery
        import importlib.util
        import sys

        library = None
        if "torchvision" not in sys.modules:
            spec = importlib.util.find_spec("torchvision")
            folder = spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else None
            if folder:
                candidates = (
                    os.path.join(folder, stem + suffix)
                    for stem in ("_C_stable", "_C")
                    for suffix in importlib.machinery.EXTENSION_SUFFIXES
                )
                library = next((path for path in candidates if os.path.exists(path)), None)
        try:
            if library is None:
                raise OSError("torchvision's extension library was not found next to its package")
            torch.ops.load_library(library)
        except OSError:
            torchvision_ops()  # torchvision's own import loads it (or says what is wrong)
        _kernels_loaded = True
    return torch.ops.torchvision


_torchvision_ops: Any = None


def torchvision_ops() -> Any:
    """``torchvision.ops``, imported on first use (it costs ~1 s: it pulls in torch._dynamo).

    The import runs on a thread of its own: imported from inside a forward pass (the first NMS),
    its reference cycle would keep the pass's activations alive (see
    ``det.structures.thread_import``).
    """
    global _torchvision_ops
    if _torchvision_ops is None:
        _torchvision_ops = import_on_own_thread("torchvision.ops")
    return _torchvision_ops


class _Provider:
    """One declared implementation: where it lives, who ships it, and the loaded callable."""

    def __init__(self, target: str | Callable, provider: str):
        self.target = target
        self.provider = provider
        self.impl: Callable | None = target if callable(target) else None
        self.failed = False

    def load(self) -> Callable | None:
        if self.impl is None and not self.failed:
            try:
                self.impl = _import_target(str(self.target))
            except Exception as e:  # a broken plugin must not break the reference path
                self.failed = True
                warnings.warn(
                    f"det: the {self.provider!r} implementation {self.target!r} could not be loaded "
                    f"({type(e).__name__}: {e}); using det-core's reference implementation instead",
                    RuntimeWarning,
                    stacklevel=4,
                )
        return self.impl


_table: dict[tuple[str, str], _Provider] | None = None
_reference: dict[str, _Provider] = {
    op: _Provider(target, REFERENCE_PROVIDER) for op, target in REFERENCE_OPS.items()
}
_in_process: dict[tuple[str, str], _Provider] = {}


def _import_target(target: str) -> Callable:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target!r} is not callable")
    return obj


_hooked_reset = False


def _forget_table() -> None:
    global _table
    _table = None


def _plugin_declarations() -> list[tuple[str, str, str, str]]:
    """(op, device type, "module:attr", distribution) from installed plugins; [] if unavailable."""
    global _hooked_reset
    try:
        from det.core import plugins
    except ImportError:
        return []
    if not _hooked_reset:
        # plugins.reset()/disable() rediscover plugins: the table must follow
        plugins.on_reset(_forget_table)
        _hooked_reset = True
    return list(plugins.op_declarations())


def _load_table() -> dict[tuple[str, str], _Provider]:
    global _table
    if _table is None:
        table: dict[tuple[str, str], _Provider] = {}
        for op, device, target, dist in _plugin_declarations():
            if op not in REFERENCE_OPS:
                warnings.warn(
                    f"det: {dist!r} declares an implementation of unknown op {op!r} (known: "
                    f"{', '.join(OP_NAMES)}); ignored",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            key = (op, device)
            if key in table:
                warnings.warn(
                    f"det: op {op!r} on {device!r} is declared by both {table[key].provider!r} and "
                    f"{dist!r}; using {table[key].provider!r} (disable one of the plugins to choose)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            table[key] = _Provider(target, dist)
        _table = table
    return _table


def _force_reference() -> bool:
    return os.environ.get(FORCE_REFERENCE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _device_type(op: str, tensors: tuple[Any, ...]) -> str:
    types = {t.device.type for t in tensors if isinstance(t, torch.Tensor)}
    if len(types) > 1:
        raise ValueError(f"{op}: all tensors must be on one device type, got {sorted(types)}")
    return types.pop() if types else "cpu"


def _check_op(op: str) -> None:
    if op not in REFERENCE_OPS:
        raise ValueError(f"Unknown op {op!r}; det dispatches: {', '.join(OP_NAMES)}")


def dispatch(op: str, *tensors: Any) -> Callable:
    """The implementation of ``op`` for the device type of ``tensors`` (the op's tensor arguments).

    Order: an in-process :func:`register_op`, then a plugin's declaration for that device type, then
    the reference. Non-tensor arguments are ignored; tensors on different device types are an error.
    """
    _check_op(op)
    if _force_reference():
        return _reference[op].load()  # type: ignore[return-value]
    device = _device_type(op, tensors)
    for table in (_in_process, _load_table()):
        provider = table.get((op, device))
        if provider is not None:
            impl = provider.load()
            if impl is not None:
                return impl
    return _reference[op].load()  # type: ignore[return-value]


def op_providers() -> dict[str, dict[str, str]]:
    """For each op, the distribution serving it per device type, without importing any of them.

    ``"*"`` is the reference (det-core), used for every device type not listed. Under
    ``DET_FORCE_REFERENCE_OPS=1`` only the reference is listed. A plugin implementation that failed
    to load is listed as ``"<distribution> (failed to load; reference used)"``.
    """
    result: dict[str, dict[str, str]] = {op: {REFERENCE_DEVICE: REFERENCE_PROVIDER} for op in OP_NAMES}
    if _force_reference():
        return result
    table = _load_table()
    for source in (table, _in_process):  # in-process registrations win, as in dispatch
        for (op, device), provider in source.items():
            name = provider.provider
            if provider.failed:
                name += " (failed to load; reference used)"
            result[op][device] = name
    return result


def register_op(op: str, device: str, impl: Callable | str, provider: str = "<in-process>") -> None:
    """Serve ``op`` on ``device`` (a device type such as "cuda") with ``impl`` in this process.

    ``impl`` is a callable or a "module:attribute" string. It wins over plugins' declarations; for
    code that is not packaged as a plugin (and for tests).
    """
    _check_op(op)
    if not isinstance(device, str) or not device or device == REFERENCE_DEVICE:
        raise ValueError(f"register_op: device must be a device type such as 'cuda', got {device!r}")
    if not (callable(impl) or isinstance(impl, str)):
        raise TypeError(
            f"register_op: impl must be a callable or 'module:attribute', got {type(impl).__name__}"
        )
    _in_process[(op, device)] = _Provider(impl, provider)


def unregister_op(op: str, device: str) -> None:
    """Undo :func:`register_op` for (op, device); no error if nothing was registered."""
    _in_process.pop((op, device), None)


def reset() -> None:
    """Forget the plugin table and in-process registrations; the next dispatch reads plugins again.

    (``det.core.plugins.reset()`` and ``disable()`` also drop the plugin table, not registrations.)
    """
    _forget_table()
    _in_process.clear()
    for provider in _reference.values():
        provider.failed = False


__all__ = [
    "FORCE_REFERENCE_ENV",
    "OP_NAMES",
    "REFERENCE_DEVICE",
    "REFERENCE_OPS",
    "dispatch",
    "op_providers",
    "register_op",
    "reset",
    "unregister_op",
]
