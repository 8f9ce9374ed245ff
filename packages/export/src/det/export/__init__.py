"""Deployment of det models: ``torch.export`` programs and ONNX models with det's contract.

    from det.export import TracingAdapter, export_torch, export_onnx, load_exported

    export_onnx(model.eval(), sample_image, "model.onnx")
    outputs = load_exported("model.onnx")([{"image": img, "height": h, "width": w}])

Importing this package is cheap: torch and the exporters load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import exported, lazy_exports
from det.export.version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily on first use
    from det.export.api import ExportedModel as ExportedModel
    from det.export.api import export_onnx as export_onnx
    from det.export.api import export_torch as export_torch
    from det.export.api import load_exported as load_exported
    from det.export.flatten import TracingAdapter as TracingAdapter
    from det.export.flatten import UnsupportedModelError as UnsupportedModelError
    from det.export.flatten import batched_nms_exportable as batched_nms_exportable
    from det.export.flatten import flatten_inputs as flatten_inputs
    from det.export.flatten import supported_architectures as supported_architectures
    from det.export.flatten import unflatten_outputs as unflatten_outputs


__getattr__, __dir__ = lazy_exports(__name__)  # the names imported under TYPE_CHECKING above

__all__ = ["__version__", *exported(__name__)]
