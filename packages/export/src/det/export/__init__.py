"""Deployment of det models: ``torch.export`` programs and ONNX models with det's contract.

    from det.export import TracingAdapter, export_torch, export_onnx, load_exported

    export_onnx(model.eval(), sample_image, "model.onnx")
    outputs = load_exported("model.onnx")([{"image": img, "height": h, "width": w}])

Importing this package is cheap: torch and the exporters load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det.core.lazy import lazy_exports
from det.export.version import __version__

_LAZY = {
    "TracingAdapter": "det.export.flatten",
    "UnsupportedModelError": "det.export.flatten",
    "flatten_inputs": "det.export.flatten",
    "unflatten_outputs": "det.export.flatten",
    "batched_nms_exportable": "det.export.flatten",
    "supported_architectures": "det.export.flatten",
    "export_torch": "det.export.api",
    "export_onnx": "det.export.api",
    "load_exported": "det.export.api",
    "ExportedModel": "det.export.api",
}

if TYPE_CHECKING:
    from det.export.api import ExportedModel, export_onnx, export_torch, load_exported  # noqa: F401
    from det.export.flatten import (  # noqa: F401
        TracingAdapter,
        UnsupportedModelError,
        batched_nms_exportable,
        flatten_inputs,
        supported_architectures,
        unflatten_outputs,
    )


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["__version__", *_LAZY]
