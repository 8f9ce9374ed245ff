"""TorchScript helpers of detectron2's ``export`` API, and its export methods det does not have.

``dump_torchscript_IR`` writes a traced (``torch.jit.trace`` of a :class:`TracingAdapter`) or
scripted model's code and graphs for inspection, as detectron2's does.

Not available, with errors that say what to use instead:

* ``scripting_with_instances`` (``torch.jit.script``): det's models are written for
  ``torch.export``, not for TorchScript's compiler, which rejects their Python (set literals,
  comprehension filters, f-strings of tuples, module-level tables, ``Any``-typed attributes), and
  det has no scriptable stand-in for the dynamic ``Instances`` (detectron2 generates one per field
  list). ``torch.jit.script`` is deprecated in torch 2.14 as well.
* ``Caffe2Tracer`` / ``Caffe2Model``: caffe2 is no longer part of torch.

Use :func:`det.export.export_torch` / :func:`det.export.export_onnx` (``det export``), or
``torch.jit.trace`` of a :class:`TracingAdapter` (export_model.py's ``--export-method tracing``).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

__all__ = [
    "Caffe2Model",
    "Caffe2Tracer",
    "UnsupportedExportMethodError",
    "add_export_config",
    "dump_torchscript_IR",
    "export_torchscript_with_instances",
    "scripting_with_instances",
]

_USE_INSTEAD = (
    "use `det export --format {onnx,torch}` (det.export.export_onnx / export_torch: torch.export and "
    "ONNX), or torch.jit.trace of det.export.TracingAdapter (detectron2's tools/deploy/export_model.py "
    "--export-method tracing --format torchscript|onnx)"
)


class UnsupportedExportMethodError(NotImplementedError):
    """An export method of detectron2 that det does not provide; the message says what to use."""


def scripting_with_instances(model: torch.nn.Module, fields: dict[str, Any]) -> Any:
    """detectron2's ``torch.jit.script`` of a model that uses ``Instances`` with ``fields``.

    det's models cannot be scripted (see the module docstring): this tries ``torch.jit.script``
    (a module that does not use det's models or Instances may script) and raises
    :class:`UnsupportedExportMethodError` with TorchScript's reason and what to use instead.
    """
    if model.training:
        raise RuntimeError("scripting_with_instances exports inference: call model.eval() first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
            return torch.jit.script(model)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedExportMethodError(
            f"det models cannot be exported by TorchScript scripting (torch.jit.script, "
            f"scripting_with_instances / --export-method scripting): TorchScript's compiler rejects det's "
            f"Python, and det has no scriptable Instances (here: {type(e).__name__}: {reason}). Instead, "
            + _USE_INSTEAD
        ) from e


export_torchscript_with_instances = scripting_with_instances  # detectron2's old name


def _caffe2_unavailable(name: str) -> UnsupportedExportMethodError:
    return UnsupportedExportMethodError(
        f"{name}: caffe2 export (--export-method caffe2_tracing, --format caffe2) is not available: "
        "caffe2 is no longer part of torch. Instead, " + _USE_INSTEAD
    )


class Caffe2Tracer:
    """detectron2's caffe2 exporter; constructing it raises :class:`UnsupportedExportMethodError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _caffe2_unavailable("Caffe2Tracer")


class Caffe2Model:
    """detectron2's caffe2 model runner; unavailable like :class:`Caffe2Tracer`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _caffe2_unavailable("Caffe2Model")

    @staticmethod
    def load_protobuf(dir: str) -> Caffe2Model:
        raise _caffe2_unavailable("Caffe2Model.load_protobuf")


def add_export_config(cfg: Any) -> Any:
    """Deprecated no-op kept from detectron2 (export needs no config keys): returns ``cfg``."""
    warnings.warn("add_export_config is deprecated and does nothing", DeprecationWarning, stacklevel=2)
    return cfg


def _script_module(module: Any) -> Any:
    # a traced module's code and graph dumps live on the ScriptModule it wraps
    return getattr(module, "_actual_script_module", module)


def _code(module: Any) -> str | None:
    # the C++ module's code says more than ``module.code`` (which a ScriptFunction has instead)
    for code in (
        getattr(getattr(_script_module(module), "_c", None), "code", None),
        getattr(module, "code", None),
    ):
        if isinstance(code, str):
            return code
    return None


def _write_code(f: Any, prefix: str, module: Any) -> None:
    name = prefix or "root model"
    code = _code(module)
    if code is None:
        f.write(f"Could not find code for {name} (type={module.original_name})\n\n")
    else:
        f.write(f"\nCode for {name}, type={module.original_name}:\n{code}\n{'-' * 80}")
    for child_name, child in module.named_children():
        _write_code(f, f"{prefix}.{child_name}", child)


def _graph(model: Any) -> str:
    try:
        # every submodule's graph, not inlined
        return str(_script_module(model)._c.dump_to_str(True, False, False))
    except AttributeError:
        return str(model.graph)


def dump_torchscript_IR(model: Any, dir: str | os.PathLike[str]) -> None:
    """Write a traced or scripted module's (or ScriptFunction's) TorchScript for inspection.

    Writes, in ``dir`` (created if needed), detectron2's files: ``model_ts_code.txt`` (the code
    of the module and each submodule), ``model_ts_IR.txt`` (their graphs), ``model_ts_IR_inlined.txt``
    (the whole graph, submodules inlined) and, for a module, ``model.txt`` (its ``repr``).
    """
    from det.checkpoint.path_manager import PathManager

    dir = os.path.expanduser(os.fspath(dir))
    PathManager.mkdirs(dir)
    is_function = isinstance(model, torch.jit.ScriptFunction)
    with PathManager.open(os.path.join(dir, "model_ts_code.txt"), "w") as f:
        if is_function:
            f.write(_code(model) or "")
        else:
            _write_code(f, "", model)
    with PathManager.open(os.path.join(dir, "model_ts_IR.txt"), "w") as f:
        f.write(_graph(model))
    with PathManager.open(os.path.join(dir, "model_ts_IR_inlined.txt"), "w") as f:
        f.write(str(model.inlined_graph))
    if not is_function:
        with PathManager.open(os.path.join(dir, "model.txt"), "w") as f:
            f.write(str(model))
