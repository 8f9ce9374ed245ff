"""How inference time and peak memory grow with image size, detections and batch, and mask pasting
on 4K images. Also the peak-RSS comparison with torchvision.

    .venv/bin/python bench/bench_scaling.py [--runs 3] [--only memory|size|dets|batch|paste]

Every configuration runs in its own fresh process (peak RSS = ``ru_maxrss`` of that process, which
includes ~0.3-0.4 GB of torch itself; ``rss_build_mb`` is the RSS after building the model, so the
inference's own peak is ``peak_rss_mb - rss_build_mb``). Time = median of ``--runs`` warm runs.
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

from _common import current_rss_mb, emit, load_line, machine_line, median_time, peak_rss_mb


def child(args) -> None:
    import torch
    from _common import build_det_model, build_tv_model, det_inputs, make_image, set_threads, tv_inputs

    set_threads(2)
    if args.paste:
        return child_paste(args)
    images = [make_image(args.height, args.width, seed=i) for i in range(args.batch)]
    if args.impl in ("predictor", "predictor_fast"):
        from _common import bgr_numpy, build_det_predictor

        if args.batch != 1:
            raise SystemExit("the predictor variants take one image")
        predictor = build_det_predictor(["TEST.DETECTIONS_PER_IMAGE", str(args.dets)])
        if args.impl == "predictor_fast":
            from det.core.fast import fast_mode

            fast_mode(predictor.model)
        image = bgr_numpy(images[0])
        rss_build = current_rss_mb()
        med, _ = median_time(lambda: predictor(image), runs=args.runs, warmup=1)
        n = len(predictor(image)["instances"])
        print(json.dumps({"median_s": med, "peak_rss_mb": peak_rss_mb(), "rss_build_mb": rss_build, "detections": n}))
        return None
    if args.impl == "tv":
        model = build_tv_model()
        model.roi_heads.detections_per_img = args.dets
        inputs = [t for im in images for t in tv_inputs(im)]
    else:
        model = build_det_model(["TEST.DETECTIONS_PER_IMAGE", str(args.dets)])
        if args.impl == "fast":
            from det.core.fast import fast_mode

            fast_mode(model)
        inputs = [d for im in images for d in det_inputs(im)]
    rss_build = current_rss_mb()
    with torch.no_grad():
        med, _ = median_time(lambda: model(inputs), runs=args.runs, warmup=1)
        out = model(inputs)
    n = len(out[0]["boxes"]) if args.impl == "tv" else len(out[0]["instances"])
    print(
        json.dumps(
            {"median_s": med, "peak_rss_mb": peak_rss_mb(), "rss_build_mb": rss_build, "detections": n}
        )
    )


def child_paste(args) -> None:
    import torch

    g = torch.Generator().manual_seed(0)
    n, h, w = args.dets, args.height, args.width
    masks = torch.rand(n, 28, 28, generator=g)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = (torch.rand(n, 2, generator=g) * 0.2 + 0.01) * torch.tensor([w, h])
    boxes = torch.cat([xy, xy + wh], dim=1)
    if args.impl == "tv":
        from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste

        def paste():
            return tv_paste(masks[:, None], boxes, (h, w), padding=1)[:, 0] >= 0.5
    else:
        from det.core.layers import paste_masks_in_image

        def paste():
            return paste_masks_in_image(masks, boxes, (h, w), 0.5)

    # Imports, plugin/op discovery and first-call set-up are not part of the pasting cost.
    small_box = torch.tensor([[1.0, 1.0, 10.0, 10.0]])
    if args.impl == "tv":
        tv_paste(masks[:1, None], small_box, (64, 64), padding=1)
    else:
        paste_masks_in_image(masks[:1], small_box, (64, 64), 0.5)
    rss0 = current_rss_mb()
    times = []
    for _ in range(max(1, args.runs)):
        t0 = time.perf_counter()
        out = paste()
        times.append(time.perf_counter() - t0)
        del out
    out = paste()
    dt = sorted(times)[len(times) // 2]
    print(
        json.dumps(
            {
                "median_s": dt,
                "peak_rss_mb": peak_rss_mb(),
                "rss_build_mb": rss0,
                "detections": int(out.shape[0]),
                "output_mb": out.numel() * out.element_size() / 2**20,
            }
        )
    )


def run(impl, height=800, width=1067, dets=100, batch=1, runs=3, paste=False) -> dict:
    """Run one configuration in a fresh process and print its figures."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--impl",
        impl,
        "--height",
        str(height),
        "--width",
        str(width),
        "--dets",
        str(dets),
        "--batch",
        str(batch),
        "--runs",
        str(runs),
    ] + (["--paste"] if paste else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    rec = {
        "impl": impl,
        "image": f"{height}x{width}",
        "dets": dets,
        "batch": batch,
        "median_s": f"{res['median_s']:.3f}",
        "peak_rss_mb": f"{res['peak_rss_mb']:.0f}",
        "rss_build_mb": f"{res['rss_build_mb']:.0f}",
        "infer_peak_mb": f"{res['peak_rss_mb'] - res['rss_build_mb']:.0f}",
        "got_dets": res["detections"],
    }
    if "output_mb" in res:
        rec["output_mb"] = f"{res['output_mb']:.0f}"
    emit(rec)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--paste", action="store_true")
    ap.add_argument("--impl", default="det", choices=["det", "fast", "tv", "predictor", "predictor_fast"])
    ap.add_argument("--height", type=int, default=800)
    ap.add_argument("--width", type=int, default=1067)
    ap.add_argument("--dets", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="memory,size,dets,batch,paste")
    ap.add_argument("--processes", type=int, default=3, help="fresh processes per variant (memory)")
    args = ap.parse_args()
    if args.child:
        return child(args)

    print(machine_line())
    print(load_line())
    only = set(args.only.split(","))
    if "memory" in only:
        # The peak moves by up to ~80 MB between identical processes (the order in which the
        # threads free memory decides how fragmented malloc's heap gets): --processes of each,
        # interleaved, and the median is compared.
        print(f"# peak RSS of 800x1067 inferences (--runs per process, {args.processes} fresh processes each)")
        impls = ("tv", "det", "fast", "predictor", "predictor_fast")
        peaks: dict[str, list[float]] = {impl: [] for impl in impls}
        for _ in range(args.processes):
            for impl in impls:
                peaks[impl].append(run(impl, runs=args.runs)["peak_rss_mb"])
        tv_peak = statistics.median(peaks["tv"])
        for impl in impls:
            emit(
                {
                    "memory": impl,
                    "median_peak_rss_mb": f"{statistics.median(peaks[impl]):.0f}",
                    "peaks_mb": "/".join(f"{p:.0f}" for p in peaks[impl]),
                    "ratio_to_tv": f"{statistics.median(peaks[impl]) / tv_peak:.3f}",
                }
            )
    if "size" in only:
        print("# image size (100 detections cap, batch 1)")
        for h, w in ((512, 683), (800, 1067), (1200, 1600)):
            for impl in ("det", "fast"):
                run(impl, h, w, runs=args.runs)
    if "dets" in only:
        print("# detections per image (800x1067, batch 1)")
        for n in (10, 50, 100, 300):
            run("det", dets=n, runs=args.runs)
    if "batch" in only:
        print("# batch (512x683, 100 detections cap per image)")
        for b in (1, 2, 4):
            run("det", 512, 683, batch=b, runs=args.runs)
    if "paste" in only:
        print("# pasting 100 28x28 masks (one call, bool output)")
        run("det", 2160, 3840, dets=100, runs=args.runs, paste=True)
        run("det", 1080, 1920, dets=100, runs=args.runs, paste=True)
        # torchvision pastes every mask as a float32 full image (100 x 1080 x 1920 x 4 B = 0.8 GB
        # before thresholding); at 4K that would be 3.3 GB, too much for the shared machine.
        run("tv", 1080, 1920, dets=100, runs=args.runs, paste=True)
    print(load_line())


if __name__ == "__main__":
    main()
