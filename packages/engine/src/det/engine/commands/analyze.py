"""``det analyze``: a model's parameters, structure, FLOPs and activations (detectron2's
``tools/analyze_model.py``).

    det analyze --config-file out/config.yaml --tasks parameter structure
    det analyze --config-file out/config.yaml --tasks flop activation -n 20 MODEL.WEIGHTS out/model_final.pth

FLOPs and activations depend on the input (proposals, detections): they are averaged over the
first ``-n`` images of ``DATASETS.TEST[0]``, in fvcore's units (GFLOPs count multiply-adds; see
:mod:`det.engine.analysis`). The parameter table goes ``--max-depth`` module levels deep
(default 5; the FLOP table, computed on the first image, 3).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from det.engine.commands._common import (
    USER_ERRORS,
    CommandError,
    add_config_overrides,
    report_user_error,
    require_datasets,
    setup_cfg,
    show_examples,
)

__all__ = ["TASKS", "main", "register", "run"]

TASKS = ("flop", "activation", "parameter", "structure")


def _model(cfg: Any, load_weights: bool) -> Any:
    from det.checkpoint import DetectionCheckpointer
    from det.core.modeling.build import build_model

    model = build_model(cfg)
    if load_weights and cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model.eval()


def _inputs(cfg: Any, num_inputs: int, progress: bool, desc: str):
    """The first ``num_inputs`` batches (one image each) of the test loader, with a progress bar."""
    from tqdm import tqdm

    from det.data.build import build_detection_test_loader

    name = require_datasets(cfg.DATASETS.TEST, "DATASETS.TEST")[0]
    loader = build_detection_test_loader(cfg, name)
    total = min(num_inputs, len(loader))
    with tqdm(total=total, desc=desc, unit="image", leave=False, disable=not progress) as bar:
        for idx, batch in enumerate(loader):
            if idx == num_inputs:
                break
            yield batch
            bar.update()


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


def do_flop(cfg: Any, num_inputs: int, *, max_depth: int = 3, progress: bool = True, out=None) -> dict[str, Any]:
    """Average GFLOPs per operator type and in total over ``num_inputs`` test images."""
    from det.engine.analysis import flop_count, flop_count_table

    model = _model(cfg, load_weights=True)
    counts: Counter[str] = Counter()
    totals: list[float] = []
    table = ""
    for batch in _inputs(cfg, num_inputs, progress, "flops"):
        by_operator, by_module = flop_count(model, batch)
        if not totals:
            table = flop_count_table(model, by_module, max_depth=max_depth)
        counts.update(by_operator)
        totals.append(sum(by_operator.values()) / 1e9)
    if not totals:
        raise CommandError("the test dataset has no images")
    n = len(totals)
    average = {k: v / n / 1e9 for k, v in counts.items()}
    mean, std = _mean_std(totals)
    print("Flops table computed from only one input sample:\n" + table, file=out)
    print("Average GFlops for each type of operators:\n"
          + str([(k, round(v, 6)) for k, v in average.items()]), file=out)
    print(f"Total GFlops: {mean:.3f}±{std:.3f} (over {n} images)", file=out)
    return {"gflops_by_operator": average, "gflops_mean": mean, "gflops_std": std, "num_inputs": n}


def do_activation(cfg: Any, num_inputs: int, *, progress: bool = True, out=None) -> dict[str, Any]:
    """Average millions of activations per operator type and in total over ``num_inputs`` images."""
    from det.engine.analysis import activation_count_operators

    model = _model(cfg, load_weights=True)
    counts: Counter[str] = Counter()
    totals: list[float] = []
    for batch in _inputs(cfg, num_inputs, progress, "activations"):
        count = activation_count_operators(model, batch)
        counts.update(count)
        totals.append(sum(count.values()))
    if not totals:
        raise CommandError("the test dataset has no images")
    n = len(totals)
    average = {k: v / n for k, v in counts.items()}
    mean, std = _mean_std(totals)
    print("(Million) Activations for Each Type of Operators:\n"
          + str([(k, round(v, 6)) for k, v in average.items()]), file=out)
    print(f"Total (Million) Activations: {mean:.3f}±{std:.3f} (over {n} images)", file=out)
    return {"mactivations_by_operator": average, "mactivations_mean": mean, "mactivations_std": std,
            "num_inputs": n}


def do_parameter(cfg: Any, *, max_depth: int = 5, out=None) -> dict[str, Any]:
    from det.engine.analysis import parameter_count, parameter_count_table

    model = _model(cfg, load_weights=False)
    print("Parameter Count:\n" + parameter_count_table(model, max_depth=max_depth), file=out)
    return {"parameters": parameter_count(model)[""]}


def do_structure(cfg: Any, *, out=None) -> dict[str, Any]:
    model = _model(cfg, load_weights=False)
    print(f"Model Structure:\n{model}", file=out)
    return {"structure": str(model)}


def main(config_file: str, tasks: Sequence[str], *, num_inputs: int = 100, max_depth: int | None = None,
         opts: Sequence[str] | None = None, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Run ``tasks`` (any of :data:`TASKS`) on the config's model; print each report and return
    their numbers, keyed by task."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise CommandError(f"unknown task(s) {unknown or list(tasks)}: choose among {', '.join(TASKS)}")
    if num_inputs <= 0:
        raise CommandError(f"--num-inputs must be positive, got {num_inputs}")
    if max_depth is not None and max_depth < 1:
        raise CommandError(f"--max-depth must be at least 1, got {max_depth}")
    # one image per batch in a single process, as detectron2's script
    cfg = setup_cfg(config_file, [*(opts or []), "DATALOADER.NUM_WORKERS", "0"])
    results: dict[str, dict[str, Any]] = {}
    for task in dict.fromkeys(tasks):
        if task == "flop":
            results[task] = do_flop(cfg, num_inputs, max_depth=max_depth or 3, progress=progress)
        elif task == "activation":
            results[task] = do_activation(cfg, num_inputs, progress=progress)
        elif task == "parameter":
            results[task] = do_parameter(cfg, max_depth=max_depth or 5)
        else:
            results[task] = do_structure(cfg)
    return results


def run(args: argparse.Namespace) -> int:
    try:
        main(args.config_file, args.tasks, num_inputs=args.num_inputs, max_depth=args.max_depth, opts=args.opts,
             progress=not args.no_progress)
    except USER_ERRORS as e:
        return report_user_error("analyze", e)
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to config file")
    parser.add_argument("--tasks", nargs="+", required=True, choices=TASKS, metavar="TASK",
                        help=f"what to report, one or more of: {', '.join(TASKS)}")
    parser.add_argument("-n", "--num-inputs", type=int, default=100,
                        help="test images to average FLOPs/activations over (both depend on the input; default 100)")
    parser.add_argument("--max-depth", type=int, default=None,
                        help="module levels in the tables (default 5 for parameters, 3 for flops)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_overrides(parser)
    show_examples(parser, __doc__)
    return run
