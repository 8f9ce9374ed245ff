"""The LazyConfig (``.py``) side of the commands: detectron2's ``tools/lazyconfig_train_net.py``.

A ``.py`` config is read with ``LazyConfig.load`` and overridden with ``key=value`` arguments; the
model, data loaders, evaluator, optimizer and LR multiplier are what it describes
(``cfg.model``, ``cfg.dataloader.{train,test,evaluator}``, ``cfg.optimizer``,
``cfg.lr_multiplier``) and ``cfg.train`` holds the rest (``output_dir``, ``init_checkpoint``,
``max_iter``, ``amp.enabled``, ``ddp``, ``checkpointer``, ``eval_period``, ``log_period``,
``device``).

    cfg = setup_lazy_cfg("mask_rcnn_R_50_FPN_1x.py", ["train.max_iter=100"])
    do_train(args, cfg)             # or: print(do_test(cfg, build_lazy_model(cfg, load=True)))
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from det.engine.commands._common import DATASETS_FILE, CommandError, register_datasets_file

__all__ = ["LazyPredictor", "build_lazy_model", "do_test", "do_train", "is_lazy_config", "lazy_device",
           "setup_lazy_cfg"]

logger = logging.getLogger("det")

LAZY_CONFIG_ERRORS = (SyntaxError, ImportError, FileNotFoundError, KeyError, ValueError, TypeError)
"""What reading a LazyConfig raises for a bad file or override (reported as one line)."""


def is_lazy_config(config_file: str | os.PathLike[str]) -> bool:
    """A ``.py`` config is a LazyConfig (detectron2's rule); anything else is read as YAML."""
    return os.fspath(config_file).endswith(".py")


def setup_lazy_cfg(config_file: str, opts: Sequence[str] | None = None, *, weights: str | None = None) -> Any:
    """``LazyConfig.load(config_file)`` + ``key=value`` overrides (+ ``train.init_checkpoint``).

    Raises:
        CommandError: a missing or broken file, an override that is not ``key=value`` or names a
            key the config does not have (the message says which and the closest key).
    """
    from det.core.config import LazyConfig

    if not os.path.isfile(config_file):
        raise CommandError(f"config file {config_file!r} does not exist")
    opts = list(opts or [])
    if opts and opts[0] == "--":
        opts = opts[1:]
    plain = [o for o in opts if "=" not in o]
    if plain:
        raise CommandError(f"{config_file} is a LazyConfig (Python) file: overrides are 'path.key=value' "
                           f"(e.g. train.max_iter=100), got {' '.join(plain)!r}")
    import det.data  # noqa: F401  (registers the built-in datasets named in configs)

    register_datasets_file(Path(config_file).parent / DATASETS_FILE)
    try:
        cfg = LazyConfig.load(config_file)
        LazyConfig.apply_overrides(cfg, opts)
    except LAZY_CONFIG_ERRORS as e:
        raise CommandError(str(e).strip()) from e
    except Exception as e:  # the config's own code raised: name it and where, no traceback
        notes = " ".join(getattr(e, "__notes__", []))
        raise CommandError(f"{type(e).__name__}: {e} {notes}".strip()) from e
    if weights is not None:
        if "train" not in cfg:
            raise CommandError(f"{config_file} has no 'train' section to set train.init_checkpoint in")
        cfg.train.init_checkpoint = weights
    return cfg


def lazy_device(cfg: Any) -> str:
    """``cfg.train.device`` (detectron2's configs say "cuda") for this machine, by det's one rule
    (:func:`det.core.device.resolve_device`: "cpu" with one warning when CUDA is absent)."""
    from det.core.device import resolve_device

    device = str(cfg.train.get("device", "cpu")) if "train" in cfg else "cpu"
    return str(resolve_device(device, key="train.device"))


def build_lazy_model(cfg: Any, *, load: bool = False) -> Any:
    """``instantiate(cfg.model)`` on :func:`lazy_device`; with ``load``, ``train.init_checkpoint``
    loaded into it."""
    from det.checkpoint import DetectionCheckpointer
    from det.core.config import instantiate

    if "model" not in cfg:
        raise CommandError("the LazyConfig has no 'model' to build")
    try:
        model = instantiate(cfg.model)
    except LAZY_CONFIG_ERRORS as e:
        # e.g. Misc/mmdet_mask_rcnn_R_50_FPN_1x.py without mmdetection: the ImportError says what
        # to install, and its note names the config key; no traceback from inside the model
        notes = " ".join(getattr(e, "__notes__", []))
        raise CommandError(f"cannot build cfg.model: {e} {notes}".strip()) from e
    model.to(lazy_device(cfg))
    if load:
        DetectionCheckpointer(model).load(cfg.train.init_checkpoint)
    return model


def do_test(cfg: Any, model: Any) -> Any:
    """Evaluate ``model`` with ``cfg.dataloader.test`` and ``cfg.dataloader.evaluator``; the
    results (None when the config has no evaluator)."""
    from det.core.config import instantiate
    from det.evaluation import inference_on_dataset, print_csv_format

    if "evaluator" not in cfg.dataloader:
        return None
    ret = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
    print_csv_format(ret)
    return ret


def do_train(args: argparse.Namespace, cfg: Any) -> None:
    """detectron2's LazyConfig training: AMP or plain trainer, the LR multiplier, checkpointer,
    evaluation and writer hooks, ``train.init_checkpoint`` or (``--resume``) the last checkpoint."""
    from det.checkpoint import DetectionCheckpointer
    from det.core.config import instantiate
    from det.engine.train import comm, hooks
    from det.engine.train.defaults import create_ddp_model, default_writers
    from det.engine.train.train_loop import AMPTrainer, SimpleTrainer

    model = build_lazy_model(cfg)
    logger.info("Model:\n%s", model)
    cfg.optimizer.params.model = model
    optim = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    model = create_ddp_model(model, **cfg.train.ddp)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, train_loader, optim)
    checkpointer = DetectionCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
        hooks.EvalHook(cfg.train.eval_period, lambda: do_test(cfg, model)),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
        if comm.is_main_process() else None,
    ])
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    # the checkpoint holds the iteration that just finished: start at the next one
    start_iter = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, cfg.train.max_iter)


class LazyPredictor:
    """DefaultPredictor for a LazyConfig model: one BGR (H,W,3) uint8 image in, the model's output
    dict out, after the test loader's augmentations (``cfg.dataloader.test.mapper.augmentations``,
    e.g. ResizeShortestEdge) and in the model's ``input_format``."""

    def __init__(self, cfg: Any, model: Any) -> None:
        from det.core.config import instantiate

        self.model = model.eval()
        mapper = cfg.dataloader.test.mapper if "dataloader" in cfg and "test" in cfg.dataloader else {}
        self.augmentations = list(instantiate(mapper.get("augmentations", []))) if mapper else []
        self.input_format = getattr(model, "input_format", "BGR")

    def __call__(self, original_image: Any) -> dict:
        import torch

        from det.data import transforms as T

        with torch.no_grad():
            if self.input_format == "RGB":
                original_image = original_image[:, :, ::-1]
            height, width = original_image.shape[:2]
            aug_input = T.AugInput(original_image)
            T.AugmentationList(self.augmentations)(aug_input)
            image = torch.as_tensor(aug_input.image.astype("float32").transpose(2, 0, 1))
            return self.model([{"image": image, "height": height, "width": width}])[0]
