"""DefaultPredictor: one image in, its predictions out, with the config's test-time resize."""

from __future__ import annotations

import logging
from typing import Any, cast

import numpy as np
import torch

from det.core.allocator import retain_freed_memory_where_chosen
from det.core.device import resolve_device
from det.core.transforms import ResizeShortestEdge

__all__ = ["DefaultPredictor", "ResizeShortestEdge"]

logger = logging.getLogger(__name__)


def _build_and_load(cfg: Any, weights: str) -> torch.nn.Module:
    """``build_model(cfg)`` in eval mode with ``weights`` loaded, without the random
    initialisation that the weights would overwrite.

    With weights, the model is built under :func:`~det.core.modeling.skip_init.skip_init` and the
    checkpoint's tensors are assigned to it. The model is kept only if the checkpoint provided
    every parameter and persistent buffer (no missing key, no shape mismatch, assigned so that
    no tensor left uninitialised can still be in the model); otherwise it is dropped and the
    model is built and loaded the usual way (random init, then the checkpoint), so a partial
    checkpoint gives exactly what it gave before. Without weights: the usual build.
    """
    from det.checkpoint import DetectionCheckpointer
    from det.core.modeling.build import build_model
    from det.core.modeling.skip_init import skip_init

    if weights:
        with skip_init() as skipped:
            model = build_model(cfg)
        model.eval()
        checkpointer = DetectionCheckpointer(model)
        # The loader's messages are held back: replayed if this model is kept, dropped if the
        # normal build below loads (and reports) the same file again.
        held = _HeldLogs(checkpointer.logger)
        checkpointer.logger = held.logger
        checkpointer.load(weights, assign=True)
        problem = _uninitialised(model, checkpointer, skipped)
        del skipped
        if problem is None:
            held.replay()
            return model
        logger.info("%s; building the model with its normal initialisation instead", problem)
        del model, checkpointer
    model = build_model(cfg)
    model.eval()
    DetectionCheckpointer(model).load(weights)
    return model


class _HeldLogs(logging.Handler):
    """A stand-in for ``target`` that keeps its records until :meth:`replay` hands them over."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target
        self.records: list[logging.LogRecord] = []
        self.logger = logging.Logger(target.name)  # not in logging's tree: nothing propagates
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def replay(self) -> None:
        for record in self.records:
            if self.target.isEnabledFor(record.levelno):
                self.target.handle(record)
        self.records.clear()


def _uninitialised(model: torch.nn.Module, checkpointer: Any, skipped: list[torch.Tensor]) -> str | None:
    """Why a skip-init ``model`` may still hold uninitialised memory after the load; None if it cannot."""
    report = checkpointer.last_incompatible_keys
    if report is None:
        return "The checkpoint loader reported nothing about what it loaded"
    if report.missing_keys or report.incorrect_shapes:
        return (f"The checkpoint lacks {len(report.missing_keys)} and mismatches "
                f"{len(report.incorrect_shapes)} of the model's parameters/buffers")
    if not checkpointer.last_load_assigned:
        return "The checkpoint was copied into the model, not assigned"
    # Ground truth, independent of the report: every tensor whose init was skipped must have been
    # replaced, i.e. no parameter or buffer (persistent or not) may still use its memory.
    skipped_memory = {t.untyped_storage().data_ptr() for t in skipped if t.numel() > 0}
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.numel() > 0 and tensor.untyped_storage().data_ptr() in skipped_memory:
            return f"{name} was not provided by the checkpoint"
    return None


class DefaultPredictor:
    """A model from a config, ready for single-image inference.

    Invariant: ``predictor(img)`` takes an (H, W, 3) uint8 **BGR** numpy image (as cv2 reads it),
    resizes it with ``ResizeShortestEdge(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)``, feeds the
    channels in ``INPUT.FORMAT`` order, and returns the model's dict for that image at the
    original (H, W).

        predictor = DefaultPredictor(cfg)     # builds the model, loads cfg.MODEL.WEIGHTS, eval mode
        outputs = predictor(cv2.imread("input.jpg"))
        outputs["instances"].pred_boxes

    ``cfg.MODEL.DEVICE`` follows :func:`det.core.device.resolve_device`: ``cuda`` on a machine
    without CUDA runs on the CPU, with one warning that names the key.

    It calls :func:`det.core.allocator.retain_freed_memory_where_chosen` (process-wide, where the
    machine's :func:`~det.core.machine.inference_choices` keep freed memory; ``DET_KEEP_FREED_MEMORY=0``
    opts out), so that each inference reuses the previous one's memory instead of page-faulting it in.
    """

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg.clone()  # building may change the config; keep the caller's intact
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(
                f"DefaultPredictor supports cfg.INPUT.FORMAT 'RGB' or 'BGR', got {self.input_format!r}"
            )
        # a config naming a GPU this machine lacks runs on the CPU, with one warning
        self.device = resolve_device(cfg.MODEL.DEVICE)
        self.model = _build_and_load(self.cfg, cfg.MODEL.WEIGHTS)
        retain_freed_memory_where_chosen()  # a predictor's process runs inference after inference

        self.aug = ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )

    @staticmethod
    def _check_image(original_image: Any) -> None:
        if not isinstance(original_image, np.ndarray):
            raise TypeError(
                "DefaultPredictor expects an (H, W, 3) uint8 BGR numpy array, got "
                f"{type(original_image).__name__}"
                + (
                    " (convert a torch tensor with .permute(1, 2, 0).numpy())"
                    if isinstance(original_image, torch.Tensor)
                    else ""
                )
            )
        if original_image.dtype != np.uint8:
            raise TypeError(
                f"DefaultPredictor expects a uint8 image (values 0-255), got dtype {original_image.dtype}"
            )
        if original_image.ndim != 3 or original_image.shape[2] != 3:
            raise ValueError(
                f"DefaultPredictor expects an (H, W, 3) BGR image, got shape {original_image.shape}"
            )
        if original_image.shape[0] == 0 or original_image.shape[1] == 0:
            raise ValueError(f"DefaultPredictor got an empty image of shape {original_image.shape}")

    def preprocess(self, original_image: np.ndarray) -> dict[str, Any]:
        """The model input for one (H, W, 3) uint8 BGR image: ``{"image": (C, H', W') float32
        tensor in INPUT.FORMAT, resized, on the CPU, "height": H, "width": W}``. What
        :meth:`__call__` feeds the model; batch several with ``predictor.model([...])``."""
        self._check_image(original_image)
        if self.input_format == "RGB":
            # the predictor's input is BGR; the model wants RGB
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        image: Any = self.aug.get_transform(original_image).apply_image(original_image)
        image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
        return {"image": image, "height": height, "width": width}

    def __call__(self, original_image: np.ndarray) -> dict[str, Any]:
        """
        Args:
            original_image: (H, W, 3) uint8 image in BGR order.

        Returns:
            dict: the model's output for this image (e.g. "instances"), at size (H, W).
        """
        with torch.no_grad():
            inputs = self.preprocess(original_image)
            inputs["image"] = inputs["image"].to(self.device)
            predictions = self.model([inputs])[0]
            return cast("dict[str, Any]", predictions)
