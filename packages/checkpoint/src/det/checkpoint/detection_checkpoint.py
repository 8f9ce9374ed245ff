"""DetectionCheckpointer: Checkpointer that also reads detectron2/Detectron1 model-zoo files."""

from __future__ import annotations

from typing import Any

from torch import nn

from det.checkpoint.c2_model_loading import _align
from det.checkpoint.checkpointer import Checkpointer, _IncompatibleKeys
from det.checkpoint.converters import apply_converters
from det.checkpoint.errors import CheckpointLoadError
from det.checkpoint.serialization import load_pickle_file, load_torch_file

__all__ = ["DetectionCheckpointer"]


def _is_main_process() -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return True
    return dist.get_rank() == 0


class DetectionCheckpointer(Checkpointer):
    """A :class:`Checkpointer` that also loads the detectron2 and Detectron1/Caffe2 model zoos.

    Invariant: whatever the file's format, the model receives its weights under the model's own
    names, and ``.pkl``/``.pth`` files are read without running code from them. Usage::

        checkpointer = DetectionCheckpointer(model, save_dir="output")
        checkpointer.load("detectron2://ImageNetPretrained/MSRA/R-50.pkl")   # Caffe2 names, converted
        checkpointer.load("model_final.pth", strict=True)                    # exact names only

    What :meth:`load` does per file:

    - ``.pkl`` with ``"model"`` and ``"__author__"`` (detectron2 model zoo): used as is; its
      ``"matching_heuristics": True`` turns on suffix name matching.
    - other ``.pkl`` (Caffe2 / Detectron1): ``blobs`` unwrapped, ``*_momentum`` dropped, names
      converted by :func:`~det.checkpoint.c2_model_loading.convert_c2_detectron_names` and
      suffix-matched.
    - ``.pyth`` (pycls): ``model_state`` without ``num_batches_tracked``, suffix-matched.
    - ``.pth`` / anything else: ``torch.load(weights_only=True)``; a bare state dict is wrapped;
      names must match exactly (after dropping a DDP ``module.`` prefix).
    - ``.safetensors``: tensors by name, extras from the metadata.

    Registered converters (:func:`~det.checkpoint.register_converter`) are tried on the file
    before any matching. ``save_to_disk=None`` (the default) saves only on the main process of a
    ``torch.distributed`` job.
    """

    def __init__(self, model: nn.Module, save_dir: str = "", *, save_to_disk: bool | None = None,
                 **checkpointables: Any) -> None:
        super().__init__(
            model,
            save_dir,
            save_to_disk=_is_main_process() if save_to_disk is None else save_to_disk,
            **checkpointables,
        )

    def _load_file(self, filename: str) -> dict[str, Any]:
        if filename.endswith(".pkl"):
            data = load_pickle_file(filename)
            if not isinstance(data, dict):
                raise CheckpointLoadError(f"Checkpoint {filename} holds a {type(data).__name__}, expected a dict")
            if "model" in data and "__author__" in data:
                self.logger.info("Reading a file from '%s'", data["__author__"])
                checkpoint = data
            else:
                # Caffe2 / Detectron1: detection models keep weights under "blobs", ImageNet ones don't.
                if "blobs" in data:
                    data = data["blobs"]
                    if not isinstance(data, dict):
                        raise CheckpointLoadError(f"Checkpoint {filename}: 'blobs' is a {type(data).__name__}, expected a dict")
                data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
                checkpoint = {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
        elif filename.endswith(".pyth"):
            data = load_torch_file(filename)
            if not isinstance(data, dict) or "model_state" not in data:
                raise CheckpointLoadError(f"Cannot load .pyth file {filename}; pycls checkpoints must contain 'model_state'.")
            model_state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
            checkpoint = {"model": model_state, "__author__": "pycls", "matching_heuristics": True}
        else:
            checkpoint = super()._load_file(filename)
        checkpoint, converter = apply_converters(checkpoint, filename)
        if converter is not None:
            self.logger.info("Checkpoint %s converted by %r", filename, converter)
        return checkpoint

    def _load_model(self, checkpoint: dict[str, Any]) -> _IncompatibleKeys:
        if checkpoint.get("matching_heuristics", False):
            state_dict = dict(checkpoint["model"])
            self._convert_ndarray_to_tensor(state_dict)
            state_dict, mismatched = _align(self.model.state_dict(), state_dict,
                                            c2_conversion=checkpoint.get("__author__") == "Caffe2")
            checkpoint["model"] = state_dict
            # Reported (and refused in strict mode) by the base class with its own mismatches.
            self._skipped_shapes = [(key_model, shape_ckpt, shape_model)
                                    for key_model, _, shape_ckpt, shape_model in mismatched]
        return super()._load_model(checkpoint)

    def _filter_incompatible(self, incompatible: _IncompatibleKeys) -> _IncompatibleKeys:
        # pixel_mean/std are set from the config, and old checkpoints may lack them; cell anchors
        # were persistent buffers in old checkpoints and are recomputed now.
        own_buffers = dict(self.model.named_buffers(recurse=False))
        missing = [k for k in incompatible.missing_keys if not (k in ("pixel_mean", "pixel_std") and k in own_buffers)]
        unexpected = [k for k in incompatible.unexpected_keys if "anchor_generator.cell_anchors" not in k]
        return _IncompatibleKeys(missing, unexpected, incompatible.incorrect_shapes)
