"""mmdetection models inside det, as detectron2's ``modeling/mmdet_wrapper.py`` wraps them.

``MMDetBackbone`` turns an mmdet backbone (+ neck) into a det :class:`Backbone` (a dict of named
features); ``MMDetDetector`` turns an mmdet detector into a model that follows det's forward
contract (``list[dict]`` in, losses or ``{"instances": Instances}`` out), so det's trainer,
evaluators and LazyConfigs (detectron2's ``Misc/mmdet_mask_rcnn_R_50_FPN_1x.py``) drive it.

Both take either a built ``nn.Module`` or an mmdet config dict. Building from a dict needs
mmdetection 2.x and mmcv-full 1.x (the API detectron2's wrappers were written for:
``mmdet.models.build_detector``, ``forward_train``/``simple_test``, ``mmdet.core`` masks,
``mmcv.utils.ConfigDict``): ``pip install 'det-mmdet-wrapper[mmdet]'``. Without them, or with an
mmdetection 3.x, the constructors raise an ImportError that says so; nothing of mmdet is imported
before that.
"""

from __future__ import annotations

import importlib
import itertools
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from det.core.events import get_event_storage
from det.core.layers import ShapeSpec
from det.core.modeling.backbone import Backbone
from det.core.modeling.inputs import check_batched_inputs, require_event_storage
from det.structures import BitMasks, Boxes, ImageList, Instances

__all__ = ["MMDET_INSTALL", "MMDetBackbone", "MMDetDetector"]

logger = logging.getLogger(__name__)

MMDET_INSTALL = "pip install 'det-mmdet-wrapper[mmdet]' (mmdetection 2.x with mmcv-full 1.x)"


def _mmdet_attr(module: str, name: str, user: str) -> Any:
    """``module.name`` of mmdetection/mmcv, or an ImportError telling the user what to install.

    mmdet 2.x asserts its mmcv version at import (an AssertionError), so that counts as "cannot
    import" too; a module without the name is an mmdetection 3.x / mmcv 2.x, whose API differs.
    """
    try:
        imported = importlib.import_module(module)
    except (ImportError, AssertionError) as e:
        raise ImportError(
            f"{user} builds mmdetection models from config dicts, which needs mmdetection 2.x and mmcv-full 1.x; "
            f"importing {module} failed ({e}). Install them with {MMDET_INSTALL}, or pass an already built "
            "nn.Module instead of a config dict."
        ) from None
    try:
        return getattr(imported, name)
    except AttributeError:
        top = module.partition(".")[0]
        version = getattr(importlib.import_module(top), "__version__", "of unknown version")
        raise ImportError(
            f"{user} uses {module}.{name}, part of the mmdetection 2.x / mmcv 1.x API that detectron2's wrappers "
            f"(and det's) are written for; the installed {top} {version} does not have it. Install {MMDET_INSTALL}."
        ) from None


def _to_container(cfg: Mapping[str, Any], user: str) -> Any:
    """An mmcv ``ConfigDict`` of ``cfg``: mmdet checks for real dicts/lists, so omegaconf
    containers are converted (interpolations resolved) first."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    config_dict = _mmdet_attr("mmcv.utils", "ConfigDict", user)
    return config_dict(cfg)


class MMDetBackbone(Backbone):
    """An mmdet backbone (and optional neck) as a det Backbone.

    Invariant: ``forward`` returns ``{output_names[i]: outputs[i]}`` for the sequence of tensors
    the backbone (or the neck, when given) produces, which must have one entry per
    ``output_shapes``; ``output_shape()`` pairs the same names with ``output_shapes``::

        backbone = MMDetBackbone(
            backbone=dict(type="DetectoRS_ResNet", depth=50, ...), neck=dict(type="FPN", ...),
            output_shapes=[ShapeSpec(channels=256, stride=s) for s in (4, 8, 16, 32, 64)],
            output_names=["p2", "p3", "p4", "p5", "p6"])
    """

    def __init__(
        self,
        backbone: nn.Module | Mapping[str, Any],
        neck: nn.Module | Mapping[str, Any] | None = None,
        *,
        output_shapes: Sequence[ShapeSpec],
        output_names: Sequence[str] | None = None,
    ):
        """
        Args:
            backbone: a module taking an (N, C, H, W) tensor and returning a sequence of tensors,
                or an mmdet config dict of one.
            neck: a module (or mmdet config dict) applied to the backbone's outputs; None: none.
            output_shapes: channels and stride of every output.
            output_names: names of the outputs; default "out0", "out1", ...
        """
        super().__init__()
        # mmdet modules (init_weights, forward_train, ...) are typed Any: mmdet has no type information
        if isinstance(backbone, Mapping):
            backbone = _mmdet_attr("mmdet.models", "build_backbone", "MMDetBackbone")(
                _to_container(backbone, "MMDetBackbone"))
        self.backbone: Any = cast(Any, backbone)
        if isinstance(neck, Mapping):
            neck = _mmdet_attr("mmdet.models", "build_neck", "MMDetBackbone")(_to_container(neck, "MMDetBackbone"))
        self.neck: Any = cast(Any, neck)

        # mmdet modules initialise their weights (and neck weights are the neck's own) only when
        # asked, and their train() does more than set a flag (frozen stages, norm_eval)
        logger.info("Initializing mmdet backbone weights...")
        self.backbone.init_weights()
        self.backbone.train()
        if self.neck is not None:
            logger.info("Initializing mmdet neck weights ...")
            parts: list[Any] = list(self.neck) if isinstance(self.neck, nn.Sequential) else [self.neck]
            for part in parts:
                part.init_weights()
            self.neck.train()

        self._output_shapes = list(output_shapes)
        names = list(output_names) if output_names else [f"out{i}" for i in range(len(self._output_shapes))]
        if len(names) != len(self._output_shapes):
            raise ValueError(
                f"MMDetBackbone: {len(names)} output_names for {len(self._output_shapes)} output_shapes"
            )
        self._output_names = names

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outs = self.backbone(x)
        if self.neck is not None:
            outs = self.neck(outs)
        if not isinstance(outs, (list, tuple)):
            raise TypeError(
                f"MMDetBackbone: the mmdet backbone{' and neck' if self.neck is not None else ''} must return a "
                f"list/tuple of tensors, got {type(outs).__name__}"
            )
        if len(outs) != len(self._output_shapes):
            raise ValueError(
                "Length of output_shapes does not match outputs from the mmdet backbone: "
                f"{len(outs)} != {len(self._output_shapes)}"
            )
        return dict(zip(self._output_names, outs))

    def output_shape(self) -> dict[str, ShapeSpec]:
        return dict(zip(self._output_names, self._output_shapes))


class MMDetDetector(nn.Module):
    """An mmdet detector (detection and instance segmentation) following det's forward contract.

    Invariant: images are normalised with ``pixel_mean``/``pixel_std`` and padded to a multiple
    of ``size_divisibility`` before the detector sees them, with mmdet's per-image metadata
    (``img_shape``, ``ori_shape``, ``scale_factor``, ``pad_shape``, ``flip``); training returns the
    detector's losses (entries whose name has no "loss" go to the EventStorage as scalars),
    inference returns ``{"instances": Instances}`` at each input's ``height``/``width`` (inputs
    must all have them or all lack them)::

        model = MMDetDetector(detector=dict(type="MaskRCNN", ...),
                              pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    """

    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(
        self,
        detector: nn.Module | Mapping[str, Any],
        *,
        size_divisibility: int = 32,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
    ):
        """
        Args:
            detector: an mmdet detector module, or an mmdet config dict of one.
            size_divisibility: pad images to a multiple of this (mmdet's datasets use 32).
            pixel_mean, pixel_std: per-channel normalisation of the input images.
        """
        super().__init__()
        if isinstance(detector, Mapping):
            detector = _mmdet_attr("mmdet.models", "build_detector", "MMDetDetector")(
                _to_container(detector, "MMDetDetector"))
        self.detector: Any = cast(Any, detector)
        self.detector.init_weights()
        self.size_divisibility = size_divisibility

        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        if self.pixel_mean.shape != self.pixel_std.shape:
            raise ValueError(f"MMDetDetector: pixel_mean {list(pixel_mean)} and pixel_std {list(pixel_std)} differ in length")

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        check_batched_inputs(batched_inputs, self.pixel_mean.shape[0], ("instances",) if self.training else ())
        if self.training:
            require_event_storage(type(self).__name__)
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        padded = ImageList.from_tensors(images, size_divisibility=self.size_divisibility).tensor

        rescale_flags = {"height" in x for x in batched_inputs}
        if len(rescale_flags) != 1:
            raise ValueError("Some inputs have original height/width, but some don't!")
        rescale = rescale_flags.pop()
        metas, output_shapes = [], []
        for x in batched_inputs:
            c, h, w = x["image"].shape
            meta: dict[str, Any] = {"img_shape": (h, w, c), "ori_shape": (h, w, c), "flip": False,
                                    "pad_shape": (padded.shape[-2], padded.shape[-1], c)}
            if rescale:
                meta["scale_factor"] = np.array([w / x["width"], h / x["height"]] * 2, dtype="float32")
                meta["ori_shape"] = (x["height"], x["width"], c)
                output_shapes.append((x["height"], x["width"]))
            else:
                meta["scale_factor"] = 1.0
                output_shapes.append((h, w))
            metas.append(meta)

        if self.training:
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            extra = {}
            if gt_instances[0].has("gt_masks"):
                extra["gt_masks"] = [_to_mmdet_masks(x.gt_masks, x.image_size) for x in gt_instances]
            losses_and_metrics = self.detector.forward_train(
                padded, metas, [x.gt_boxes.tensor for x in gt_instances], [x.gt_classes for x in gt_instances],
                **extra,
            )
            return _parse_losses(losses_and_metrics)
        results = self.detector.simple_test(padded, metas, rescale=rescale)
        return [{"instances": _convert_mmdet_result(r, shape)} for r, shape in zip(results, output_shapes)]


def _to_mmdet_masks(masks: Any, shape: tuple[int, int]) -> Any:
    """det's BitMasks/PolygonMasks as mmdet's BitmapMasks/PolygonMasks of an image of ``shape``."""
    if isinstance(masks, BitMasks):
        bitmap_masks = _mmdet_attr("mmdet.core", "BitmapMasks", "MMDetDetector (masks)")
        return bitmap_masks(masks.tensor.cpu().numpy(), shape[0], shape[1])
    polygon_masks = _mmdet_attr("mmdet.core", "PolygonMasks", "MMDetDetector (masks)")
    return polygon_masks(masks.polygons, shape[0], shape[1])


def _convert_mmdet_result(result: Any, shape: tuple[int, int]) -> Instances:
    """One image's mmdet result (per-class (n, 5) box arrays [x0, y0, x1, y1, score], optionally
    with per-class mask lists) as Instances of image size ``shape``."""
    if isinstance(result, tuple):
        bbox_result, segm_result = result
        if isinstance(segm_result, tuple):  # (masks, mask scores) of some mmdet heads
            segm_result = segm_result[0]
    else:
        bbox_result, segm_result = result, None

    bboxes = torch.from_numpy(np.vstack(bbox_result))  # (N, 5)
    labels = torch.cat([torch.full((len(b),), i, dtype=torch.int32) for i, b in enumerate(bbox_result)])
    inst = Instances(shape)
    inst.pred_boxes = Boxes(bboxes[:, :4])
    inst.scores = bboxes[:, -1]
    inst.pred_classes = labels
    if segm_result is not None and len(labels) > 0:
        masks = [torch.from_numpy(m) if isinstance(m, np.ndarray) else m for m in itertools.chain(*segm_result)]
        inst.pred_masks = torch.stack(masks, dim=0)
    return inst


def _parse_losses(losses: Mapping[str, Any]) -> dict[str, Tensor]:
    """mmdet's loss dict as det's: tensors are averaged, lists of tensors summed (after averaging
    each); entries without "loss" in their name are metrics, put into the EventStorage instead."""
    log_vars: dict[str, Tensor] = OrderedDict()
    for name, value in losses.items():
        if isinstance(value, Tensor):
            log_vars[name] = value.mean()
        elif isinstance(value, list):
            log_vars[name] = sum(v.mean() for v in value)  # type: ignore[assignment]
        else:
            raise TypeError(f"{name} is not a tensor or list of tensors")
        if "loss" not in name:
            get_event_storage().put_scalar(name, log_vars.pop(name).cpu().item())
    return log_vars
