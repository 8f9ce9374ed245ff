"""``det data``: dataset tools. ``det data check`` checks COCO-format datasets before training.

    det data check annotations/train.json --images images/train
    det data check train.json val.json --images images/          # one folder for both
    det data check train.json --images images/ --full --examples 20
    det data check train.json --images images/ --json             # the report as JSON

It reports, per kind of fault, the count, the first offending records by file and id, and what
``det train`` does with them (refuse, skip, fix). Exit status: 0 when training would accept
every dataset, 1 when it would refuse one, 2 when a file cannot be checked at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

__all__ = ["register", "run_check"]


def run_check(args: argparse.Namespace) -> int:
    from det.data.check import DataCheckError, check_coco_json

    images = list(args.images)
    if len(images) not in (1, len(args.json)):
        print(f"det data check: error: give one --images folder, or one per json ({len(args.json)}); "
              f"got {len(images)}", file=sys.stderr)
        return 2
    if args.examples < 0:
        print(f"det data check: error: --examples must be >= 0, got {args.examples}", file=sys.stderr)
        return 2
    reports = []
    for i, json_file in enumerate(args.json):
        image_root = images[0] if len(images) == 1 else images[i]
        try:
            reports.append(check_coco_json(json_file, image_root, full=args.full, max_examples=args.examples))
        except DataCheckError as e:
            print(f"det data check: error: {e}", file=sys.stderr)
            return 2
    if args.json_output:
        print(json.dumps([r.as_dict() for r in reports], indent=1))
    else:
        print("\n\n".join(r.format() for r in reports))
    return 0 if all(r.ok for r in reports) else 1


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.epilog = (__doc__ or "").split("\n\n", 1)[-1]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    check = sub.add_parser("check", help="check COCO-format json files and their images",
                           description=(__doc__ or "").split("\n\n")[0],
                           epilog=(__doc__ or "").split("\n\n", 1)[-1],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("json", nargs="+", metavar="JSON", help="COCO instances/keypoints json file(s)")
    check.add_argument("--images", nargs="+", required=True, metavar="DIR",
                       help="the folder that file_name entries are relative to (one, or one per json)")
    check.add_argument("--full", action="store_true", help="decode every image (slow) instead of headers")
    check.add_argument("--examples", type=int, default=5, metavar="N",
                       help="offending records listed per kind of fault (default 5)")
    check.add_argument("--json", dest="json_output", action="store_true", help="print the report as JSON")
    return run_check
