"""Deployment of det models: ``torch.export`` programs and ONNX models with det's contract.

    from det.export import TracingAdapter, export_torch, export_onnx, load_exported

    export_onnx(model.eval(), sample_image, "model.onnx")
    outputs = load_exported("model.onnx")([{"image": img, "height": h, "width": w}])

detectron2's export API is here too: ``TracingAdapter(model, inputs, inference_func)`` for
``torch.jit.trace`` / ``torch.onnx.export``, ``dump_torchscript_IR``, ``STABLE_ONNX_OPSET_VERSION``;
its caffe2 and scripting exports raise :class:`UnsupportedExportMethodError` naming what to use.

Importing this package is cheap: torch and the exporters load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.export.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.export.api import STABLE_ONNX_OPSET_VERSION as STABLE_ONNX_OPSET_VERSION
    from det.export.api import ExportedModel as ExportedModel
    from det.export.api import export_onnx as export_onnx
    from det.export.api import export_torch as export_torch
    from det.export.api import load_exported as load_exported
    from det.export.flatten import Schema as Schema
    from det.export.flatten import TracingAdapter as TracingAdapter
    from det.export.flatten import UnsupportedModelError as UnsupportedModelError
    from det.export.flatten import batched_nms_exportable as batched_nms_exportable
    from det.export.flatten import flatten_inputs as flatten_inputs
    from det.export.flatten import flatten_to_tuple as flatten_to_tuple
    from det.export.flatten import supported_architectures as supported_architectures
    from det.export.flatten import unflatten_outputs as unflatten_outputs
    from det.export.torchscript import Caffe2Model as Caffe2Model
    from det.export.torchscript import Caffe2Tracer as Caffe2Tracer
    from det.export.torchscript import UnsupportedExportMethodError as UnsupportedExportMethodError
    from det.export.torchscript import add_export_config as add_export_config
    from det.export.torchscript import dump_torchscript_IR as dump_torchscript_IR
    from det.export.torchscript import scripting_with_instances as scripting_with_instances


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
