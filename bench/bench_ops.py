"""Time det-ops-cuda's Triton kernels against torchvision's ops and det-core's references.

    python bench/bench_ops.py [--repeat 20] [--device cuda:0]

Needs a CUDA device; without one it says so and exits 0 (the kernels' correctness is tested on
the CPU, in Triton's interpreter, by tests/ops_cuda). For each op it prints the median time of
each implementation and the ratios reference / kernel and torchvision / kernel (> 1: the kernel is
faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable


def _time(fn: Callable[[], object], repeat: int) -> float:
    import torch

    fn()  # compile / warm up
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cases(device):
    """(op, kernel call, reference call, torchvision call or None) on realistic sizes."""
    import torch
    import torchvision

    import det.ops_cuda as k
    from det.core.layers.mask_ops import _paste_masks_reference
    from det.core.layers.nms import _batched_nms_reference, _nms_reference, _nms_rotated_reference
    from det.core.layers.roi_align import _roi_align_reference
    from det.core.layers.roi_align_rotated import _roi_align_rotated_reference
    from det.core.layers.rotated_boxes import _box_iou_rotated_reference

    g = torch.Generator(device="cpu").manual_seed(0)

    def boxes(n, size=800.0):
        xy = torch.rand(n, 2, generator=g) * size
        wh = torch.rand(n, 2, generator=g) * size / 4 + 4
        return torch.cat([xy, xy + wh], 1).to(device)

    def rotated(n, size=800.0):
        xy = torch.rand(n, 2, generator=g) * size
        wh = torch.rand(n, 2, generator=g) * size / 4 + 4
        return torch.cat([xy, wh, torch.rand(n, 1, generator=g) * 180 - 90], 1).to(device)

    b, s = boxes(4000), torch.rand(4000, generator=g).to(device)
    idx = torch.randint(0, 80, (4000,), generator=g).to(device)
    r, rs = rotated(1000), torch.rand(1000, generator=g).to(device)
    feats = torch.rand(2, 256, 200, 336, generator=g).to(device)
    rois = torch.cat([torch.randint(0, 2, (512, 1), generator=g).float().to(device), boxes(512) / 4], 1)
    rrois = torch.cat([rois[:, :1], rotated(512) / 4], 1)
    rrois[:, 5] *= 4
    masks = torch.rand(100, 28, 28, generator=g).to(device)
    mboxes = boxes(100, 600.0)

    yield (
        "nms",
        lambda: k.nms(b, s, 0.7),
        lambda: _nms_reference(b, s, 0.7),
        lambda: torchvision.ops.nms(b, s, 0.7),
    )
    yield (
        "batched_nms",
        lambda: k.batched_nms(b, s, idx, 0.5),
        lambda: _batched_nms_reference(b, s, idx, 0.5),
        lambda: torchvision.ops.batched_nms(b, s, idx, 0.5),
    )
    yield "nms_rotated", lambda: k.nms_rotated(r, rs, 0.5), lambda: _nms_rotated_reference(r, rs, 0.5), None
    yield (
        "box_iou_rotated",
        lambda: k.box_iou_rotated(r, r[:200]),
        lambda: _box_iou_rotated_reference(r, r[:200]),
        None,
    )
    for aligned in (True, False):
        yield (
            f"roi_align(aligned={aligned})",
            lambda a=aligned: k.roi_align(feats, rois, (7, 7), 0.25, 0, a),
            lambda a=aligned: _roi_align_reference(feats, rois, (7, 7), 0.25, 0, a),
            lambda a=aligned: torchvision.ops.roi_align(feats, rois, (7, 7), 0.25, 0, a),
        )
    grad_feats = feats.clone().requires_grad_()

    def backward(fn):
        def run():
            fn(grad_feats).sum().backward()

        return run

    yield (
        "roi_align backward",
        backward(lambda x: k.roi_align(x, rois, (7, 7), 0.25, 0, True)),
        backward(lambda x: _roi_align_reference(x, rois, (7, 7), 0.25, 0, True)),
        backward(lambda x: torchvision.ops.roi_align(x, rois, (7, 7), 0.25, 0, True)),
    )
    yield (
        "roi_align_rotated",
        lambda: k.roi_align_rotated(feats, rrois, (7, 7), 0.25, 2),
        lambda: _roi_align_rotated_reference(feats, rrois, (7, 7), 0.25, 2),
        None,
    )
    yield (
        "roi_align_rotated backward",
        backward(lambda x: k.roi_align_rotated(x, rrois, (7, 7), 0.25, 2)),
        backward(lambda x: _roi_align_rotated_reference(x, rrois, (7, 7), 0.25, 2)),
        None,
    )
    yield (
        "paste_masks",
        lambda: k.paste_masks(masks, mboxes, (800, 1216)),
        lambda: _paste_masks_reference(masks, mboxes, (800, 1216)),
        None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per implementation (median)")
    parser.add_argument("--device", default="cuda", help="CUDA device to time on")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print(
            "bench_ops: skipped, no CUDA device (the Triton kernels are tested on the CPU by tests/ops_cuda)"
        )
        return 0
    device = torch.device(args.device)
    print(
        f"{'op':28} {'kernel ms':>10} {'reference ms':>13} {'torchvision ms':>15} {'ref/kernel':>11} {'tv/kernel':>10}"
    )
    for name, kernel, reference, tv in _cases(device):
        tk = _time(kernel, args.repeat)
        tr = _time(reference, args.repeat)
        tt = _time(tv, args.repeat) if tv is not None else None
        tv_ms = f"{tt * 1e3:15.3f}" if tt is not None else f"{'-':>15}"
        tv_ratio = f"{tt / tk:10.2f}" if tt is not None else f"{'-':>10}"
        print(f"{name:28} {tk * 1e3:10.3f} {tr * 1e3:13.3f} {tv_ms} {tr / tk:11.2f} {tv_ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
