"""``det demo``: generate the synthetic shapes data, train a small Mask R-CNN on the CPU with a
progress bar, evaluate box and mask AP, save the checkpoint, draw predictions on held-out images
and the training curves, and write a summary.

    det demo                          # ./det-demo-output, about 10 minutes on 2 cores
    det demo --quick                  # a one-minute smoke run (tiny data; checks the pipeline)
    det demo --output out/ --max-iter 2000
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from det.engine.commands._common import show_examples

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    from det.engine.demo import run_demo

    if args.max_iter is not None and args.max_iter <= 0:
        print(f"det demo: error: --max-iter must be positive, got {args.max_iter}", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads <= 0:
        print(f"det demo: error: --threads must be positive, got {args.threads}", file=sys.stderr)
        return 2
    shapes = {}
    for item in args.shapes:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"det demo: error: --shapes takes KEY=VALUE items, got {item!r}", file=sys.stderr)
            return 2
        shapes[key] = value.lower() in ("1", "true", "yes") if value.lower() in ("0", "1", "true", "false", "yes", "no") \
            else (float(value) if "." in value else int(value))
    try:
        run_demo(args.output, max_iter=args.max_iter, quick=args.quick, num_threads=args.threads,
                 progress=not args.no_progress, opts=args.opts, shapes=shapes)
    except (TypeError, ValueError) as e:
        print(f"det demo: error: {e}", file=sys.stderr)
        return 2
    return 0


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--output", default="./det-demo-output", metavar="DIR",
                        help="output folder (default ./det-demo-output)")
    parser.add_argument("--max-iter", type=int, default=None, help="training iterations (default 1200)")
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run on a tiny dataset")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: one per idle core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--shapes", nargs="+", default=[], metavar="KEY=VALUE",
                        help="shapes dataset generator parameters (ShapesConfig fields), e.g. num_train=1000")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="config overrides of the embedded demo config: 'PATH.KEY VALUE' pairs")
    show_examples(parser, __doc__)
    return run
