"""Export det models with ``torch.export`` (``.pt2``) or to ONNX, and run the results with det's contract."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from det.export.flatten import TracingAdapter, flatten_inputs, unflatten_outputs

__all__ = ["STABLE_ONNX_OPSET_VERSION", "ExportedModel", "export_onnx", "export_torch", "load_exported"]

METADATA_KEY = "det_export"
"""Name of the JSON metadata stored with an exported model (a ``.pt2`` extra file / ONNX metadata prop)."""

MAX_IMAGE_SIZE = 4096

STABLE_ONNX_OPSET_VERSION = 18
"""The ONNX opset det exports (``export_onnx``'s default; detectron2.export's name, 11 there).

torch's exporter (``torch.onnx.export``, ``dynamo=True`` by default since torch 2.9) implements
its ops from opset 18: asked for 11, it exports opset 18 and then tries to convert the model down,
which fails for det's models (ONNX has no Pad adapter below 18), leaving opset 18 with warnings.
onnxruntime runs opset 18.
"""


def _adapter(model: Any) -> TracingAdapter:
    if not isinstance(model, TracingAdapter):
        return TracingAdapter(model)
    if model.inputs is not None:
        raise TypeError(
            "export_torch/export_onnx take a det model or TracingAdapter(model); this TracingAdapter was "
            "built with detectron2's (model, inputs, ...): pass its .model, or torch.jit.trace it"
        )
    return model


def _sample_image(model: Any, sample_image: Tensor | None) -> Tensor:
    channels = int(model.pixel_mean.shape[0]) if hasattr(model, "pixel_mean") else 3
    if sample_image is None:
        return torch.zeros(channels, 480, 640)
    if not isinstance(sample_image, Tensor) or sample_image.dim() != 3:
        shape = tuple(sample_image.shape) if isinstance(sample_image, Tensor) else type(sample_image).__name__
        raise ValueError(f"sample_image must be a (C, H, W) tensor, got {shape}")
    if sample_image.shape[0] != channels:
        raise ValueError(f"sample_image has {sample_image.shape[0]} channels, the model expects {channels}")
    # float32 in the graph: a uint8 image converts exactly, and the model computes in float anyway
    return sample_image.to(torch.float32)


def _min_image_size(model: Any) -> int:
    """Smallest image side the exported graph accepts.

    Below one stride of the coarsest feature map that map becomes 1 pixel wide, which torch.export
    treats as a different (broadcasting) program; keeping sizes above it keeps one graph for all.
    """
    try:
        strides = [spec.stride for spec in model.backbone.output_shape().values()]
    except AttributeError:
        strides = [32]
    return int(max(s for s in strides if s)) + 1


def export_torch(
    model: Any | TracingAdapter,
    sample_image: Tensor | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    max_image_size: int = MAX_IMAGE_SIZE,
) -> torch.export.ExportedProgram:
    """``torch.export`` a det model (eval mode) for inference on one image of any size.

    Args:
        model: a det GeneralizedRCNN (Standard, Res5 or Cascade ROI heads), ProposalNetwork,
            PanopticFPN, RetinaNet or SemanticSegmentor (or its TracingAdapter).
        sample_image: a (C, H, W) example image; any values (tracing uses shapes only).
        output: if given, save the program there (``torch.export.save``, with det's metadata).
        max_image_size: largest image height/width the program accepts.

    Returns:
        the ExportedProgram; its ``module()(image)`` returns the adapter's flat tensors.
    """
    adapter = _adapter(model)
    if adapter.model.training:
        raise RuntimeError("export_torch exports inference: call model.eval() first")
    image = _sample_image(adapter.model, sample_image)
    min_size = _min_image_size(adapter.model)
    if min(image.shape[-2:]) < min_size:
        raise ValueError(f"sample_image is {tuple(image.shape)}; export needs height and width >= {min_size}")
    height = torch.export.Dim("height", min=min_size, max=max_image_size)
    width = torch.export.Dim("width", min=min_size, max=max_image_size)
    with torch.no_grad():
        # "args": the adapter's forward takes *args (one image in det's contract)
        program = torch.export.export(
            adapter, (image,), dynamic_shapes={"args": ({1: height, 2: width},)}, strict=False
        )
    if output is not None:
        metadata = {**adapter.metadata(), "min_image_size": min_size, "max_image_size": max_image_size}
        torch.export.save(program, str(output), extra_files={METADATA_KEY: json.dumps(metadata)})
    return program


def export_onnx(
    model: Any | TracingAdapter,
    sample_image: Tensor | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    program: torch.export.ExportedProgram | None = None,
    opset_version: int = STABLE_ONNX_OPSET_VERSION,
    max_image_size: int = MAX_IMAGE_SIZE,
) -> Any:
    """Export a det model to ONNX (the dynamo exporter, from :func:`export_torch`'s program).

    ``torchvision::nms`` becomes ONNX NonMaxSuppression and ``torchvision::roi_align`` RoiAlign;
    the image height and width stay dynamic. Needs ``det-export[onnx]``.

    Args:
        model, sample_image, max_image_size: as in :func:`export_torch`.
        output: the ``.onnx`` file to write (weights embedded), with det's metadata.
        program: an ExportedProgram of the same model, to skip exporting it again.

    Returns:
        the ``torch.onnx.ONNXProgram``.
    """
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs onnx and onnxscript: pip install "det-export[onnx]"') from None
    adapter = _adapter(model)
    if program is None:
        program = export_torch(adapter, sample_image, max_image_size=max_image_size)
    image = _sample_image(adapter.model, sample_image)
    onnx_program = torch.onnx.export(
        program,
        (image,),
        dynamo=True,
        opset_version=opset_version,
        input_names=["image"],
        output_names=list(adapter.output_names),
    )
    if onnx_program is None:  # only the TorchScript exporter returns None
        raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNXProgram")
    metadata = {
        **adapter.metadata(),
        "min_image_size": _min_image_size(adapter.model),
        "max_image_size": max_image_size,
    }
    if output is not None:
        proto = onnx_program.model_proto
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
        onnx.save_model(proto, str(output))
    return onnx_program


class ExportedModel:
    """An exported det model (``.pt2`` or ``.onnx``) behind det's ``list[dict]`` contract.

    Invariant: ``exported(batched_inputs)`` returns what the eager model returns for each input
    run alone (``{"instances": Instances}``, ``{"proposals": Instances}``, ``{"sem_seg": Tensor}``
    or PanopticFPN's ``sem_seg``/``instances``/``panoptic_seg``, at height/width)::

        exported = load_exported("model.onnx")
        outputs = exported([{"image": img, "height": h, "width": w}])
        outputs[0]["instances"].scores

    The graph runs once per image; unflattening (rescaling, mask pasting, keypoint decoding,
    the panoptic merge) runs in torch afterwards.
    """

    def __init__(
        self, run: Callable[[Tensor], Sequence[Tensor]], metadata: dict[str, Any], source: str = ""
    ) -> None:
        for key in ("architecture", "outputs_schema"):
            if key not in metadata:
                raise ValueError(f"exported model metadata lacks {key!r}: was it written by det.export?")
        self._run = run
        self.metadata = metadata
        self.source = source
        self.outputs_schema = tuple(metadata["outputs_schema"])

    def run_flat(self, image: Tensor) -> tuple[Tensor, ...]:
        """The graph's flat outputs for one (C, H, W) image."""
        low, high = (
            self.metadata.get("min_image_size", 1),
            self.metadata.get("max_image_size", MAX_IMAGE_SIZE),
        )
        if min(image.shape[-2:]) < low or max(image.shape[-2:]) > high:
            raise ValueError(
                f"image of shape {tuple(image.shape)}: this exported model takes heights and widths "
                f"in [{low}, {high}]"
            )
        return tuple(self._run(image.to(torch.float32)))

    def __call__(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(batched_inputs, (list, tuple)):
            raise TypeError(f"expected a list of input dicts, got {type(batched_inputs).__name__}")
        results = []
        for inputs in batched_inputs:
            (image,) = flatten_inputs(inputs)
            results.append(
                unflatten_outputs(
                    self.run_flat(image),
                    inputs,
                    self.outputs_schema,
                    panoptic_combine=self.metadata.get("panoptic_combine"),
                )
            )
        return results

    def __repr__(self) -> str:
        return f"ExportedModel({self.metadata['architecture']}, outputs={list(self.outputs_schema)}, source={self.source!r})"


def _load_torch(path: Path) -> ExportedModel:
    import torchvision  # noqa: F401  (the program uses torch.ops.torchvision.*)

    extra_files = {METADATA_KEY: ""}
    program = torch.export.load(str(path), extra_files=extra_files)
    module = program.module()

    def run(image: Tensor) -> Sequence[Tensor]:
        with torch.no_grad():
            return module(image)  # type: ignore[no-any-return]

    return ExportedModel(run, json.loads(extra_files[METADATA_KEY] or "{}"), str(path))


def _load_onnx(path: Path, providers: Sequence[str] | None) -> ExportedModel:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ImportError(
            'running ONNX models needs onnx and onnxruntime: pip install "det-export[onnx]"'
        ) from None
    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    session = onnxruntime.InferenceSession(str(path), providers=list(providers or ["CPUExecutionProvider"]))
    input_name = session.get_inputs()[0].name

    def run(image: Tensor) -> Sequence[Tensor]:
        outputs = session.run(None, {input_name: image.detach().cpu().numpy()})
        return [torch.from_numpy(o) for o in outputs]

    return ExportedModel(run, json.loads(props.get(METADATA_KEY, "{}")), str(path))


def load_exported(path: str | os.PathLike[str], *, providers: Sequence[str] | None = None) -> ExportedModel:
    """Load a ``.pt2`` (torch.export) or ``.onnx`` (onnxruntime, CPU unless ``providers``) model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported model at {path}")
    if path.suffix == ".onnx":
        return _load_onnx(path, providers)
    if path.suffix in (".pt2", ".pt"):
        return _load_torch(path)
    raise ValueError(f"unknown exported model format {path.suffix!r} of {path}: expected .pt2 or .onnx")
