"""ViTDet-B and MViTv2-T backbones at 1024 px on the CPU: det's fused attention against the
reference structure, FLOPs and GFLOP/s, and the memory of windowed vs global attention.

    .venv/bin/python bench/bench_backbones_vit.py [--runs 3] [--size 1024] [--only time,memory]

- time: the backbones of ViTDet's mask_rcnn_vitdet_b (ViT-B/16, 14x14 windows in 8 blocks,
  global attention in 4, decomposed relative positions, SimpleFeaturePyramid + p6) and MViTv2's
  mask_rcnn_mvitv2_t_3x (MViT-T + FPN), random weights, eval, no gradients, one 1024x1024 image,
  2 threads. "reference" is the same modules with attention computed as detectron2 writes it
  (logits materialised, relative-position bias added, softmax, @ v:
  ``det.backbones.vit.utils.use_reference_attention``); "det" is det's default
  (``scaled_dot_product_attention`` with the bias as its mask, in row chunks within a 64 MB bias
  budget). Runs interleaved, median reported; both outputs compared.
- flops: FLOPs (2 per multiply-add) counted with torch's FlopCounterMode on the reference path,
  and the GFLOP/s each path reaches.
- memory: peak RSS of one ViT-B block over the 64x64 token grid of a 1024 px image, in a fresh
  process per variant: global attention (det / reference) and 14x14 window attention (det /
  reference), minus the process's RSS before the block runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import current_rss_mb, emit, load_line, machine_line, peak_rss_mb, set_threads


def build(name: str, size: int):
    from functools import partial

    import torch
    from torch import nn

    from det.backbones import FPN, LastLevelMaxPool
    from det.backbones.vit import MViT, SimpleFeaturePyramid, ViT

    torch.manual_seed(0)
    ln = partial(nn.LayerNorm, eps=1e-6)
    if name == "vitdet_b":
        net = ViT(img_size=size, patch_size=16, embed_dim=768, depth=12, num_heads=12, drop_path_rate=0.1,
                  window_size=14, mlp_ratio=4, qkv_bias=True, norm_layer=ln,
                  window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10], use_rel_pos=True)
        model = SimpleFeaturePyramid(net, "last_feat", 256, (4.0, 2.0, 1.0, 0.5), top_block=LastLevelMaxPool(),
                                     norm="LN", square_pad=size)
    else:
        net = MViT(embed_dim=96, depth=10, num_heads=1, last_block_indexes=(0, 2, 7, 9), residual_pooling=True,
                   drop_path_rate=0.2, norm_layer=ln)
        model = FPN(net, ["scale2", "scale3", "scale4", "scale5"], 256, top_block=LastLevelMaxPool())
    # non-zero relative positions, so the bias is real work on both paths
    for p_name, p in model.named_parameters():
        if "rel_pos" in p_name:
            nn.init.trunc_normal_(p, std=0.02)
    return model.eval()


def count_flops(model, x) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from det.backbones.vit.utils import use_reference_attention

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), use_reference_attention(), counter:
        model(x)
    return counter.get_total_flops() / 1e9


def bench_time(args) -> None:
    import torch

    from det.backbones.vit.utils import use_reference_attention

    x = torch.rand(1, 3, args.size, args.size) * 255 - 128
    for name in ("vitdet_b", "mvitv2_t"):
        model = build(name, args.size)
        gflop = count_flops(model, x)
        times: dict[str, list[float]] = {"det": [], "reference": []}
        outputs = {}
        with torch.no_grad():
            for variant in ("det", "reference"):  # warm-up
                with use_reference_attention(variant == "reference"):
                    outputs[variant] = model(x)
            for _ in range(args.runs):
                for variant in ("det", "reference"):
                    with use_reference_attention(variant == "reference"):
                        t0 = time.perf_counter()
                        model(x)
                        times[variant].append(time.perf_counter() - t0)
        diff = max((outputs["det"][k] - outputs["reference"][k]).abs().max().item() for k in outputs["det"])
        med = {k: statistics.median(v) for k, v in times.items()}
        emit({"model": name, "size": args.size, "gflop": round(gflop, 1),
              "det_s": round(med["det"], 3), "reference_s": round(med["reference"], 3),
              "ratio_det_to_reference": round(med["det"] / med["reference"], 3),
              "det_gflops_per_s": round(gflop / med["det"], 1),
              "reference_gflops_per_s": round(gflop / med["reference"], 1),
              "max_abs_diff": f"{diff:.2e}", "runs": args.runs})


def memory_child(variant: str, size: int) -> None:
    """One ViT-B block over the token grid of a ``size`` px image; prints peak RSS growth."""
    import torch

    from det.backbones.vit.utils import use_reference_attention
    from det.backbones.vit.vit import Block

    set_threads(2)
    torch.manual_seed(0)
    kind, path = variant.split("-")
    grid = size // 16
    block = Block(768, 12, window_size=14 if kind == "window" else 0, use_rel_pos=True,
                  input_size=(grid, grid)).eval()
    x = torch.randn(1, grid, grid, 768)
    with torch.no_grad(), use_reference_attention(path == "reference"):
        block(torch.randn(1, 14, 14, 768))  # load kernels before the baseline
        base = current_rss_mb()
        block(x)
    print(json.dumps({"peak_mb": peak_rss_mb() - base}))


def bench_memory(args) -> None:
    for variant in ("global-det", "global-reference", "window-det", "window-reference"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", variant, "--size", str(args.size)],
                             capture_output=True, text=True, check=True)
        peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]
        kind, path = variant.split("-")
        emit({"memory": kind, "attention": path, "tokens": (args.size // 16) ** 2,
              "block_peak_mb": round(peak, 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--only", default="time,memory")
    parser.add_argument("--memory-child", default="")
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.size)
        return
    set_threads(2)
    from det.core.machine import machine_info

    print(machine_info().describe())
    print(machine_line())
    print(load_line())
    only = set(args.only.split(","))
    if "time" in only:
        bench_time(args)
    if "memory" in only:
        bench_memory(args)
    print(load_line())


if __name__ == "__main__":
    main()
