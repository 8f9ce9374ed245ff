"""DefaultPredictor: one image in, its predictions out, with the config's test-time resize."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch

from det.core.transforms import ResizeShortestEdge

__all__ = ["DefaultPredictor", "ResizeShortestEdge"]


class DefaultPredictor:
    """A model from a config, ready for single-image inference.

    Invariant: ``predictor(img)`` takes an (H, W, 3) uint8 **BGR** numpy image (as cv2 reads it),
    resizes it with ``ResizeShortestEdge(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)``, feeds the
    channels in ``INPUT.FORMAT`` order, and returns the model's dict for that image at the
    original (H, W).

        predictor = DefaultPredictor(cfg)     # builds the model, loads cfg.MODEL.WEIGHTS, eval mode
        outputs = predictor(cv2.imread("input.jpg"))
        outputs["instances"].pred_boxes
    """

    def __init__(self, cfg: Any) -> None:
        from det.checkpoint import DetectionCheckpointer
        from det.core.modeling.build import build_model

        self.cfg = cfg.clone()  # building may change the config; keep the caller's intact
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(
                f"DefaultPredictor supports cfg.INPUT.FORMAT 'RGB' or 'BGR', got {self.input_format!r}"
            )
        self.model = build_model(self.cfg)
        self.model.eval()

        checkpointer = DetectionCheckpointer(self.model)
        checkpointer.load(cfg.MODEL.WEIGHTS)

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

    def __call__(self, original_image: np.ndarray) -> dict[str, Any]:
        """
        Args:
            original_image: (H, W, 3) uint8 image in BGR order.

        Returns:
            dict: the model's output for this image (e.g. "instances"), at size (H, W).
        """
        self._check_image(original_image)
        with torch.no_grad():
            if self.input_format == "RGB":
                # the predictor's input is BGR; the model wants RGB
                original_image = original_image[:, :, ::-1]
            height, width = original_image.shape[:2]
            image: Any = self.aug.get_transform(original_image).apply_image(original_image)
            image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
            image = image.to(self.cfg.MODEL.DEVICE)

            inputs = {"image": image, "height": height, "width": width}
            predictions = self.model([inputs])[0]
            return cast("dict[str, Any]", predictions)
