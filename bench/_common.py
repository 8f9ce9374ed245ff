"""Shared set-up of the det benchmarks: the full-size Mask R-CNN R50-FPN of both det and
torchvision, a deterministic test image, timing and memory helpers.

Every bench script imports this module, so the models, the image and the measurement rules are
the same everywhere::

    from _common import build_det_model, build_tv_model, make_image, median_time
    model = build_det_model()
    t = median_time(lambda: model([{"image": make_image()}]), runs=5)
"""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO.parent / "shared" / "detectron2-configs"
MASK_RCNN_YAML = CONFIGS / "COCO-InstanceSegmentation" / "mask_rcnn_R_50_FPN_3x.yaml"


def load_line() -> str:
    """The 1/5/15-minute load averages: figures taken under load are marked with it."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cpus"


def machine_line() -> str:
    """The machine every figure was taken on: det.core.machine's effective CPU level (emulation caps
    included), det's inference choices for it, and the software versions."""
    import torch

    from det.core.machine import inference_choices, machine_info

    return (
        f"machine: {machine_info().describe()}; choices: {inference_choices().describe()}; "
        f"python {platform.python_version()}, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )


def machine_fields() -> dict[str, str]:
    """The CPU model and capability, as the first fields of every result line (see :func:`emit`)."""
    from det.core.machine import machine_info

    info = machine_info()
    return {"cpu": f'"{info.cpu_model}"', "capability": info.capability}


def set_threads(n: int = 2) -> None:
    import torch

    torch.set_num_threads(n)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def median_time(fn, runs: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def make_image(height: int = 800, width: int = 1067, seed: int = 0):
    """A uint8 (3, H, W) image with smooth structure (random noise would be unrealistic for NMS)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, height // 32), max(2, width // 32), generator=g)
    img = torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)
    img = img + 0.1 * torch.rand(1, 3, height, width, generator=g)
    return (img[0].clamp(0, 1) * 255).to(torch.uint8)


def det_cfg(extra_opts: list | None = None):
    from det.core import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(MASK_RCNN_YAML))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    if extra_opts:
        cfg.merge_from_list(list(extra_opts))
    return cfg


CACHE = Path(os.environ.get("DET_BENCH_CACHE", "/tmp/det-bench"))

# (target output std, bias std) of each re-initialised predictor layer, as golden/README.md does:
# random-init features of PIXEL_STD=1 models are ~1e3 in size, so a fixed init gives either
# all-equal scores (no detections) or exploding boxes.
_TARGETS = {"cls": (2.0, 0.5), "bbox": (0.1, 0.0), "obj": (2.0, 0.0), "deltas": (0.05, 0.0)}


def _predictor_layers(model) -> dict:
    if hasattr(model, "proposal_generator"):  # det / detectron2 names
        rpn = model.proposal_generator.rpn_head
        return {
            "cls": model.roi_heads.box_predictor.cls_score,
            "bbox": model.roi_heads.box_predictor.bbox_pred,
            "obj": rpn.objectness_logits,
            "deltas": rpn.anchor_deltas,
        }
    return {  # torchvision names
        "cls": model.roi_heads.box_predictor.cls_score,
        "bbox": model.roi_heads.box_predictor.bbox_pred,
        "obj": model.rpn.head.cls_logits,
        "deltas": model.rpn.head.bbox_pred,
    }


def calibrate_predictors(model, run, seed: int = 1234, passes: int = 2) -> None:
    """Re-initialise the final predictor layers so that their outputs have the target std.

    ``run()`` does one inference. Each pass measures the bias-free output std of every layer
    with forward hooks and rescales its weight; biases are drawn last. With the calibrated
    layers both models return the 100-detection cap on the bench image, so the mask head and
    mask pasting run at full load.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    layers = _predictor_layers(model)
    with torch.no_grad():
        for layer in layers.values():
            # Tiny first: unscaled deltas would blow the proposals up and leave the ROI heads
            # nothing to measure.
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 1e-6)
            layer.bias.zero_()
        for _ in range(passes):
            stds = {}
            hooks = [
                layer.register_forward_hook(
                    lambda m, i, o, k=k, stds=stds: stds.setdefault(k, []).append(
                        torch.cat([t.flatten() for t in (o if isinstance(o, (list, tuple)) else [o])])
                        .float()
                        .std()
                        .item()
                    )
                )
                for k, layer in layers.items()
            ]
            try:
                run()
            finally:
                for h in hooks:
                    h.remove()
            for k, layer in layers.items():
                stds[k] = [v for v in stds.get(k, []) if math.isfinite(v) and v > 0]
                if stds[k]:
                    layer.weight.mul_(_TARGETS[k][0] / max(statistics.mean(stds[k]), 1e-12))
        for k, layer in layers.items():
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * _TARGETS[k][1])


def _cached_state(name: str, model, run):
    """Calibrate once per machine and keep the weights in CACHE (never in the repository)."""
    import torch

    path = CACHE / f"{name}.pth"
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return path
    calibrate_predictors(model, run)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def build_det_model(extra_opts: list | None = None, train: bool = False):
    """det's full-size Mask R-CNN R50-FPN (3x config), random backbone, calibrated predictors."""
    import torch

    from det.core import build_model

    torch.manual_seed(0)
    model = build_model(det_cfg(extra_opts)).eval()
    image = make_image()
    with torch.no_grad():
        _cached_state("det_mask_rcnn_R_50_FPN", model, lambda: model(det_inputs(image)))
    model.train(train)
    return model


def build_det_predictor(extra_opts: list | None = None):
    """det as a user runs it: ``DefaultPredictor(cfg)`` on the calibrated checkpoint (a build without
    random init, memory-mapped weights assigned to the model, det.core.allocator's setting).
    Call it with ``bgr_numpy(image)``."""
    from det.core import DefaultPredictor

    path = CACHE / "det_mask_rcnn_R_50_FPN.pth"
    if not path.exists():
        build_det_model()  # calibrates and caches the weights
    cfg = det_cfg(extra_opts)
    cfg.MODEL.WEIGHTS = str(path)
    return DefaultPredictor(cfg)


def bgr_numpy(image):
    """make_image's (3, H, W) uint8 tensor as the (H, W, 3) BGR numpy array DefaultPredictor takes."""
    return image.permute(1, 2, 0).contiguous().numpy()


def build_tv_model(train: bool = False):
    """torchvision's maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, box_score_thresh=0)."""
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, box_score_thresh=0).eval()
    image = make_image()
    with torch.no_grad():
        _cached_state("tv_maskrcnn_resnet50_fpn", model, lambda: model(tv_inputs(image)))
    model.train(train)
    return model


def det_inputs(image, height=None, width=None):
    d = {"image": image}
    if height is not None:
        d["height"], d["width"] = height, width
    return [d]


def tv_inputs(image):
    # torchvision takes RGB floats in [0, 1]; its transform normalises and resizes to 800 min side
    # (an 800x1067 image is kept as is, like det which gets it already sized).
    return [image.flip(0).float() / 255.0]


def emit(record: dict) -> None:
    """Print one result line (key=value) that the README tables are built from, led by the CPU
    model and capability it was measured on."""
    print(" ".join(f"{k}={v}" for k, v in {**machine_fields(), **record}.items()), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    print(machine_line())
    print(load_line())


def parse_scalar(text: str) -> object:
    """A command-line value as the int, float or bool it spells, else the string itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
