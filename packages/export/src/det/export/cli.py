"""``det export``: write a model as a torch.export program (``.pt2``) or an ONNX model.

    det export --config-file config.yaml --weights model_final.pth --format onnx --output model.onnx
    det export ... --format torch --output model.pt2 --opts MODEL.DEVICE cpu
    det export --config-file mask_rcnn_R_50_FPN_1x.py --weights model.pth --format torch --output m.pt2

The exported model takes one (C, H, W) float32 image in the config's ``INPUT.FORMAT`` at any
size; ``det.export.load_exported(path)`` runs it with det's ``list[dict]`` contract.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """Add ``det export``'s arguments to ``parser``; return the function that runs it."""
    parser.add_argument("--config-file", required=True, metavar="FILE", help="model config (YAML, or a LazyConfig .py file)")
    parser.add_argument(
        "--weights", required=True, metavar="FILE", help="checkpoint (.pth or model-zoo .pkl)"
    )
    parser.add_argument(
        "--format", required=True, choices=("onnx", "torch"), help="onnx or torch (torch.export)"
    )
    parser.add_argument("--output", required=True, metavar="PATH", help="file to write (.onnx / .pt2)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ... (YAML) or key=value ... (.py)")
    return run


def run(args: argparse.Namespace) -> int:
    """Build the model from the config, load the weights, export it; 0 on success, 2 on bad input."""
    config_file, weights, output = Path(args.config_file), Path(args.weights), Path(args.output)
    for what, path in (("config file", config_file), ("weights", weights)):
        if not path.is_file():
            print(f"det export: {what} {path} not found", file=sys.stderr)
            return 2
    suffix = ".onnx" if args.format == "onnx" else ".pt2"
    if output.suffix != suffix:
        print(
            f"det export: --format {args.format} writes a {suffix} file; got --output {output}",
            file=sys.stderr,
        )
        return 2

    import torch

    from det.checkpoint import DetectionCheckpointer
    from det.core import build_model, get_cfg
    from det.core.device import resolve_device
    from det.export.api import export_onnx, export_torch
    from det.export.flatten import UnsupportedModelError

    lazy = config_file.suffix == ".py"
    kind = "a LazyConfig (Python) file" if lazy else "a YAML (yacs) config"
    print(f"det export: reading {kind}: {config_file}", file=sys.stderr)
    if lazy:
        model = _lazy_model(config_file, weights, list(args.opts or []))
        if model is None:
            return 2
        architecture = type(model).__name__
    else:
        cfg = get_cfg()
        cfg.merge_from_file(str(config_file))
        cfg.merge_from_list(list(args.opts or []))
        cfg.MODEL.DEVICE = str(resolve_device(cfg.MODEL.DEVICE))  # cuda without CUDA: the CPU, one warning
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.freeze()
        model = build_model(cfg).eval()
        DetectionCheckpointer(model).load(str(weights))
        architecture = cfg.MODEL.META_ARCHITECTURE
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            if args.format == "onnx":
                export_onnx(model, output=output)
            else:
                export_torch(model, output=output)
    except UnsupportedModelError as e:
        print(f"det export: {e}", file=sys.stderr)
        return 2
    print(f"det export: wrote {output} ({architecture}, {args.format})")
    return 0


def _lazy_model(config_file: Path, weights: Path, opts: list[str]):  # type: ignore[no-untyped-def]
    """``instantiate(cfg.model)`` of a LazyConfig with ``weights`` loaded, on the CPU; None after
    printing the reason when the file or an override is bad."""
    from det.checkpoint import DetectionCheckpointer
    from det.core.config import LazyConfig, instantiate

    bad = [o for o in opts if "=" not in o]
    if bad:
        print(f"det export: {config_file} is a LazyConfig: overrides are key=value, got {' '.join(bad)!r}",
              file=sys.stderr)
        return None
    try:
        cfg = LazyConfig.load(str(config_file))
        LazyConfig.apply_overrides(cfg, opts)
        if "model" not in cfg:
            raise ValueError(f"{config_file} has no 'model' to export")
        model = instantiate(cfg.model)
    except (SyntaxError, ImportError, KeyError, ValueError, TypeError) as e:
        print(f"det export: {str(e).strip()}", file=sys.stderr)
        return None
    model = model.to("cpu").eval()
    DetectionCheckpointer(model).load(str(weights))
    return model
