"""``det demo``: generate the synthetic shapes data, train a small Mask R-CNN on the CPU with a
progress bar for as long as the time budget allows, evaluate box and mask AP, save the
checkpoint, draw predictions on held-out images and the training curves, and write a summary.

    det demo                          # ./det-demo-output, the whole job in 10 minutes
    det demo --minutes 5              # a shorter budget: fewer iterations, lower AP
    det demo --quick                  # a one-minute smoke run (tiny data; checks the pipeline)
    det demo --max-iter 2000          # a fixed number of iterations instead of a budget
    det demo --shapes color_by_class=true   # the easy variant: colours follow the class
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from det.engine.commands._common import USER_ERRORS, report_user_error, show_examples

__all__ = ["register", "run"]


def _shapes_value(key: str, value: str) -> Any:
    low = value.lower()
    if low in ("true", "false", "yes", "no"):
        return low in ("true", "yes")
    try:
        return float(value) if any(c in value for c in ".eE") else int(value)
    except ValueError:
        raise ValueError(f"--shapes {key}={value}: the value must be a number or true/false") from None


def run(args: argparse.Namespace) -> int:
    import time

    from det.engine.demo import process_age, run_demo

    started = time.perf_counter() - process_age()  # the budget counts from the command's start

    for flag, value in (("--max-iter", args.max_iter), ("--threads", args.threads), ("--minutes", args.minutes)):
        if value is not None and not value > 0:
            print(f"det demo: error: {flag} must be positive, got {value}", file=sys.stderr)
            return 2
    if args.minutes is not None and args.max_iter is not None:
        print("det demo: error: give --minutes (a time budget) or --max-iter (fixed iterations), not both",
              file=sys.stderr)
        return 2
    shapes = {}
    for item in args.shapes:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"det demo: error: --shapes takes KEY=VALUE items, got {item!r}", file=sys.stderr)
            return 2
        try:
            shapes[key] = _shapes_value(key, value)
        except ValueError as e:
            return report_user_error("demo", e)
    try:
        run_demo(args.output, minutes=args.minutes, max_iter=args.max_iter, quick=args.quick,
                 num_threads=args.threads, progress=not args.no_progress, opts=args.opts, shapes=shapes,
                 config_file=args.config_file, started=started)
    except (TypeError, *USER_ERRORS) as e:
        return report_user_error("demo", e)
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--output", default="./det-demo-output", metavar="DIR",
                        help="output folder (default ./det-demo-output)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="time budget of the whole job in minutes (default 10); training gets what "
                             "data, evaluation and pictures leave, and the LR schedule is fitted to it")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="train exactly this many iterations instead of a time budget")
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run on a tiny dataset")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: measured in the first iterations)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--config-file", default=None, metavar="FILE",
                        help="train this recipe instead of the embedded demo.yaml")
    parser.add_argument("--shapes", nargs="+", default=[], metavar="KEY=VALUE",
                        help="shapes dataset generator parameters (ShapesConfig fields), e.g. num_train=1000 "
                             "or color_by_class=true")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides of the embedded demo config: 'PATH.KEY VALUE' pairs")
    show_examples(parser, __doc__)
    return run
