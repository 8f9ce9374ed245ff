"""``det eval``: evaluate trained weights on the config's ``DATASETS.TEST``, or score a COCO
results file without a model.

    det eval --output out/                                      # the run `det train --output out/` made
    det eval --config-file out/config.yaml --weights out/model_final.pth
    det eval --config-file my.yaml --weights model.pth --output eval/ DATASETS.TEST '("shapes_val",)'
    det eval --config-file mask_rcnn_R_50_FPN_1x.py --weights model.pth dataloader.test.dataset.names=my_val
    det eval --results pred/results.json --json data/val.json   # score a results file (no model)
    det eval --results res.json --dataset my_val --datasets-file out/datasets.json --output eval/

Prints the results (COCO AP for detection datasets) and writes them to ``<output>/results.json``
(default ``OUTPUT_DIR/inference``; with --output alone, the run's ``inference/`` folder; with
--results, only when --output is given).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from det.engine.commands._common import (
    CONFIG_FILE,
    DATASETS_FILE,
    FINAL_WEIGHTS,
    USER_ERRORS,
    CommandError,
    add_config_overrides,
    announce_config,
    check_weights,
    register_datasets_file,
    report_user_error,
    require_datasets,
    run_folder_file,
    setup_cfg,
    show_examples,
    split_opts,
)

__all__ = ["evaluate_results_file", "main", "register", "run"]


def _run_weights(output: str) -> str:
    """The weights of a ``det train`` output folder: model_final.pth, else (an interrupted run)
    the last checkpoint."""
    folder = Path(output)
    if (folder / FINAL_WEIGHTS).is_file():
        return str(folder / FINAL_WEIGHTS)
    last = folder / "last_checkpoint"
    if last.is_file() and (folder / last.read_text().strip()).is_file():
        return str(folder / last.read_text().strip())
    raise CommandError(f"{output} has no {FINAL_WEIGHTS} and no last checkpoint: has its training run? "
                       "(give --weights to evaluate other weights)")


def main(config_file: str | None, weights: str | None, output: str | None = None,
         opts: list[str] | None = None) -> Any:
    """Build the model, load ``weights``, evaluate; returns (and writes) the results. With
    ``config_file`` None, ``output`` is a ``det train`` output folder: its config, its final
    weights (unless ``weights``) and its ``inference/`` folder."""
    from det.checkpoint import DetectionCheckpointer
    from det.engine.train.defaults import DefaultTrainer
    from det.engine.train.logger import setup_logger

    split_opts(opts)
    if not config_file:
        if not output:
            raise CommandError("give --config-file and --weights, or --output OUT (a `det train` output folder), "
                               "or --results FILE")
        config_file = str(run_folder_file(output, CONFIG_FILE))
        weights = weights or _run_weights(output)
        if _saved_lazy_config(config_file):  # `det train` of a .py config saved it with LazyConfig.save
            return _lazy_main(config_file, weights, os.path.join(output, "inference"), opts)
        cfg = setup_cfg(config_file, opts, weights=weights)
        cfg.defrost()
        cfg.OUTPUT_DIR = os.path.abspath(output)
        cfg.freeze()
        output = os.path.join(output, "inference")
    else:
        if not weights:
            raise CommandError("--weights is required with --config-file (a .pth/.pkl checkpoint)")
        if config_file.endswith(".py"):
            return _lazy_main(config_file, weights, output, opts)
        cfg = setup_cfg(config_file, opts, weights=weights)
    check_weights(weights)
    names = require_datasets(cfg.DATASETS.TEST, "DATASETS.TEST",
                             hint=f"a {DATASETS_FILE} next to {config_file} (det train writes one)")
    output = output or os.path.join(cfg.OUTPUT_DIR, "inference")
    os.makedirs(output, exist_ok=True)
    setup_logger(output, name="det")
    model = DefaultTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(weights)
    evaluators = [DefaultTrainer.build_evaluator(cfg, name, output_folder=output) for name in names]
    results = DefaultTrainer.test(cfg, model, evaluators)
    with open(os.path.join(output, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    return results


def _saved_lazy_config(config_file: str) -> bool:
    """Whether a run folder's config.yaml is a LazyConfig (top-level ``model`` and ``train``, as
    ``LazyConfig.save`` writes) rather than a yacs dump (``MODEL``, ``SOLVER``, ...)."""
    try:
        with open(config_file) as f:
            keys = {line.split(":", 1)[0] for line in f if line[:1].isalpha() and ":" in line}
    except (OSError, UnicodeDecodeError):
        return False
    return {"model", "train"} <= keys and "MODEL" not in keys


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


def evaluate_results_file(results_file: str, *, json_file: str | None = None, dataset: str | None = None,
                          datasets_file: str | None = None, output: str | None = None) -> dict:
    """COCO AP of a results file (a list of COCO result dicts) against a dataset json given
    directly (``json_file``) or by a registered ``dataset`` name (``datasets_file`` registers
    names first). Scored by det-evaluation's :class:`~det.evaluation.COCOEvaluator`; written to
    ``output/results.json`` when ``output`` is given."""
    from det.data.catalog import DatasetCatalog, MetadataCatalog
    from det.data.datasets.coco import register_coco_instances
    from det.evaluation import COCOEvaluator

    if (json_file is None) == (dataset is None):
        raise CommandError("--results needs the ground truth: --json FILE (a COCO json) or --dataset NAME")
    if not os.path.isfile(results_file):
        raise CommandError(f"results file {results_file!r} does not exist")
    try:
        with open(results_file, "rb") as f:
            results = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CommandError(f"{results_file} is not valid JSON ({e})") from None
    if not isinstance(results, list):
        raise CommandError(f"{results_file} must hold a list of COCO result dicts, got a JSON {type(results).__name__}")
    if datasets_file is not None:
        if not os.path.isfile(datasets_file):
            raise CommandError(f"--datasets-file {datasets_file!r} does not exist")
        register_datasets_file(datasets_file)
    temporary = None
    if json_file is not None:
        if not os.path.isfile(json_file):
            raise CommandError(f"--json {json_file!r} does not exist")
        try:
            with open(json_file, "rb") as f:
                categories = json.load(f).get("categories", [])
            classes = [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError) as e:
            raise CommandError(f"--json {json_file} is not a COCO json ({e})") from None
        temporary = dataset = f"__det_eval_results_{os.getpid()}_{id(results)}"
        register_coco_instances(dataset, {"thing_classes": classes}, os.path.abspath(json_file),
                                os.path.dirname(os.path.abspath(json_file)))
    else:
        assert dataset is not None
        require_datasets([dataset], "--dataset", hint="--datasets-file (det train writes OUT/datasets.json)")
    try:
        meta = MetadataCatalog.get(dataset)
        if not meta.get("json_file"):
            raise CommandError(f"dataset {dataset!r} has no COCO json file (metadata json_file) to score against")
        evaluator = COCOEvaluator(dataset, output_dir=output, distributed=False)
        evaluator.reset()
        evaluator.add_coco_results(results)
        scores = evaluator.evaluate()
    finally:
        if temporary is not None:
            DatasetCatalog.remove(temporary)
            MetadataCatalog.remove(temporary)
    if not scores:
        raise CommandError(f"{results_file} holds no results to score")
    if output:
        os.makedirs(output, exist_ok=True)
        with open(os.path.join(output, "results.json"), "w") as f:
            json.dump(scores, f, indent=2, default=float)
    return dict(scores)


def run(args: argparse.Namespace) -> int:
    try:
        if args.results:
            if args.config_file or args.weights:
                raise CommandError("--results scores a file without a model: drop --config-file/--weights")
            results = evaluate_results_file(args.results, json_file=args.json, dataset=args.dataset,
                                            datasets_file=args.datasets_file, output=args.output)
        else:
            if args.json or args.dataset or args.datasets_file:
                raise CommandError("--json/--dataset/--datasets-file go with --results FILE")
            announce_config("eval", args.config_file or os.path.join(args.output or "", CONFIG_FILE))
            results = main(args.config_file, args.weights, args.output, args.opts)
    except USER_ERRORS as e:
        return report_user_error("eval", e)
    print(json.dumps(results, indent=2, default=float))
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config-file", default=None, metavar="FILE", help="path to config file")
    parser.add_argument("--weights", default=None, metavar="FILE", help="checkpoint to evaluate (MODEL.WEIGHTS)")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="alone: a `det train` output folder to evaluate; else the folder for results.json "
                             "and evaluator files (default: OUTPUT_DIR/inference)")
    parser.add_argument("--results", default=None, metavar="FILE",
                        help="score this COCO results file instead of running a model")
    parser.add_argument("--json", default=None, metavar="FILE", help="with --results: the ground-truth COCO json")
    parser.add_argument("--dataset", default=None, metavar="NAME", help="with --results: a registered dataset")
    parser.add_argument("--datasets-file", default=None, metavar="FILE",
                        help=f"with --dataset: a {DATASETS_FILE} that registers it")
    add_config_overrides(parser)
    show_examples(parser, __doc__)
    return run
