"""``det eval``: evaluate trained weights on the config's ``DATASETS.TEST``.

    det eval --config-file out/config.yaml --weights out/model_final.pth
    det eval --config-file my.yaml --weights model.pth --output eval/ DATASETS.TEST '("shapes_val",)'
    det eval --config-file mask_rcnn_R_50_FPN_1x.py --weights model.pth dataloader.test.dataset.names=my_val

Prints the results (COCO AP for detection datasets) and writes them to
``<output>/results.json`` (default ``OUTPUT_DIR/inference``).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from det.engine.commands._common import (
    USER_ERRORS,
    CommandError,
    add_config_overrides,
    announce_config,
    report_user_error,
    setup_cfg,
    show_examples,
)

__all__ = ["main", "register", "run"]


def main(config_file: str, weights: str, output: str | None = None, opts: list[str] | None = None) -> Any:
    """Build the model, load ``weights``, evaluate; returns (and writes) the results."""
    from det.checkpoint import DetectionCheckpointer
    from det.engine.train.defaults import DefaultTrainer
    from det.engine.train.logger import setup_logger

    if not weights:
        raise CommandError("--weights is required (a .pth/.pkl checkpoint)")
    if config_file.endswith(".py"):
        return _lazy_main(config_file, weights, output, opts)
    cfg = setup_cfg(config_file, opts, weights=weights)
    if not weights:
        raise CommandError("--weights is required (a .pth/.pkl checkpoint)")
    if not os.path.isfile(weights) and "://" not in weights:
        raise CommandError(f"weights file {weights!r} does not exist")
    output = output or os.path.join(cfg.OUTPUT_DIR, "inference")
    os.makedirs(output, exist_ok=True)
    setup_logger(output, name="det")
    model = DefaultTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(weights)
    evaluators = [DefaultTrainer.build_evaluator(cfg, name, output_folder=output) for name in cfg.DATASETS.TEST]
    results = DefaultTrainer.test(cfg, model, evaluators)
    with open(os.path.join(output, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    return results


def _lazy_main(config_file: str, weights: str, output: str | None, opts: list[str] | None) -> Any:
    """A LazyConfig: ``cfg.dataloader.test`` through ``cfg.dataloader.evaluator``."""
    from det.engine.commands._lazy import build_lazy_model, do_test, setup_lazy_cfg
    from det.engine.train.logger import setup_logger

    if not os.path.isfile(weights) and "://" not in weights:
        raise CommandError(f"weights file {weights!r} does not exist")
    cfg = setup_lazy_cfg(config_file, opts, weights=weights)
    if "dataloader" not in cfg or "evaluator" not in cfg.dataloader:
        raise CommandError(f"{config_file} has no dataloader.evaluator to evaluate with")
    output = output or os.path.join(cfg.train.output_dir, "inference")
    os.makedirs(output, exist_ok=True)
    setup_logger(output, name="det")
    if "output_dir" in cfg.dataloader.evaluator:
        cfg.dataloader.evaluator.output_dir = output
    results = do_test(cfg, build_lazy_model(cfg, load=True))
    with open(os.path.join(output, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    return results


def run(args: argparse.Namespace) -> int:
    try:
        announce_config("eval", args.config_file)
        results = main(args.config_file, args.weights, args.output, args.opts)
    except USER_ERRORS as e:
        return report_user_error("eval", e)
    print(json.dumps(results, indent=2, default=float))
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    parser.add_argument("--weights", required=True, metavar="FILE", help="checkpoint to evaluate (MODEL.WEIGHTS)")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="folder for results.json and evaluator files (default: OUTPUT_DIR/inference)")
    add_config_overrides(parser)
    show_examples(parser, __doc__)
    return run
