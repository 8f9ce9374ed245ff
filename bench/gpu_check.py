"""One command for the day a GPU is there: does det run right on CUDA?

    python3 dev.py setup
    .venv/bin/python bench/gpu_check.py            # every check, at most ~8 minutes on one GPU
    .venv/bin/python bench/gpu_check.py --only kernel   # the checks whose name contains "kernel"

One line per check, ``PASS <name> (<seconds>s): <detail>``, ``FAIL <name> (<seconds>s): <why>`` or
``SKIP <name>: <why>``; the exit status is 1 if any check failed. On a machine without CUDA it
prints one line saying so and exits 0. The checks:

- ``golden/<case>``: every case of ../shared/golden on the GPU: the model from its config and
  ``model_final.pth``, run on ``inputs.pt``, matches detectron2's ``outputs.pt`` with the CPU
  parity tests' tolerances (tests/conftest.py ``match_golden_instances``: box 0.05 px, score 2e-3,
  mask IoU 0.99, keypoints 0.25 px). TF32 is switched off for this check: with PyTorch's default
  (TF32 convolutions on Ampere and later) boxes move by more than those tolerances.
- ``kernel/<op>``: each Triton kernel of det-ops-cuda against det-core's reference (run on the
  CPU) on real-sized data: RPN-sized NMS, 80-class batched NMS, FPN-sized ROIAlign forward and
  backward, rotated NMS/IoU/ROIAlign, 100 masks pasted into 800x1067.
- ``train/<meta-architecture>``: a training step (forward, backward, SGD) and an inference of every
  meta-architecture of ``_meta_archs.py``: finite losses and gradients, outputs on the GPU, and the
  host synchronisations of the inference counted by ``torch.cuda.set_sync_debug_mode``, next to
  the count ``bench_syncs.py`` makes without a GPU. The backward pass is what EmulatedCUDA cannot
  run (see det.core.emulated_cuda).
- ``amp``: 50 training steps of the demo model (``det demo``'s config, a small shapes dataset)
  with ``SOLVER.AMP.ENABLED`` (float16 autocast and GradScaler): every loss finite and the loss
  falling (mean of the last 10 steps below the mean of the first 10).
- ``ddp``: with 2 or more GPUs, two processes over NCCL (det.engine.train.launch) train the Mask
  R-CNN of ``_meta_archs.py`` for 3 steps; parameters must stay identical on both ranks.
- ``speed``: inference and training step time of det's Mask R-CNN R50-FPN against torchvision's
  on the same GPU and image (bench/_common.py's models, 800x1067).

Every check is a function with a ``device`` argument (and sizes), so tests/integration/
test_gpu_check.py runs them on the CPU (Triton's interpreter for the kernels, gloo for DDP) and
this script cannot rot without a GPU to run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

REPO = HERE.parent
GOLDEN = Path(os.environ.get("DET_SHARED_DIR", REPO.parent / "shared")) / "golden"


def _synchronize(device: str) -> None:
    """Wait for the GPU (a no-op on the CPU and under det.core.emulated_cuda, as in the tests)."""
    import torch

    from det.core.emulated_cuda import emulation_active

    if device.startswith("cuda") and not emulation_active():
        torch.cuda.synchronize()


class CheckFailed(Exception):
    """A check ran and found something wrong (the message says what)."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- golden cases -------------------------------------------------------------------------------


def _golden_matcher() -> Callable:
    """The CPU parity tests' instance matcher (tests/conftest.py), so both use one set of rules."""
    name = "_det_tests_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name].match_golden_instances


def golden_cases(golden_dir: Path = GOLDEN) -> list[str]:
    return sorted(p.name for p in golden_dir.iterdir() if (p / "config.yaml").is_file()) if golden_dir.is_dir() else []


def check_golden(case: str, device: str, golden_dir: Path = GOLDEN) -> str:
    """``case``'s model on ``device`` reproduces detectron2's outputs (instances of every image)."""
    import torch

    from det.checkpoint import DetectionCheckpointer
    from det.core import build_model, get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(golden_dir / case / "config.yaml"))
    cfg.MODEL.DEVICE = device
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(golden_dir / case / "model_final.pth"), strict=True)
    inputs = torch.load(golden_dir / case / "inputs.pt", weights_only=True)
    golden = torch.load(golden_dir / case / "outputs.pt", weights_only=True)
    match = _golden_matcher()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            outputs = model(inputs)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    matched = []
    for i, (ours, theirs) in enumerate(zip(outputs, golden)):
        if "instances" not in theirs:
            continue
        instances = ours["instances"]
        _require(instances.pred_boxes.tensor.device.type == torch.device(device).type,
                 f"image {i}: outputs on {instances.pred_boxes.tensor.device}, not {device}")
        try:
            pairs = match(instances.to("cpu"), theirs["instances"])
        except AssertionError as e:
            raise CheckFailed(f"image {i}: {str(e).splitlines()[0]}") from None
        matched.append(f"{len(pairs)}/{len(theirs['instances']['scores'])}")
    _require(bool(matched), f"{case}: no instance outputs to compare")
    return f"instances matched {', '.join(matched)}"


# --- det-ops-cuda kernels -----------------------------------------------------------------------

KERNEL_SIZES = {
    # op: number of boxes (or masks / ROIs) at scale 1.0
    "nms": 5000, "batched_nms": 8000, "nms_rotated": 1000, "box_iou_rotated": 1000,
    "roi_align": 1024, "roi_align_rotated": 512, "paste_masks": 100,
}


def _kernel_inputs(op: str, n: int, scale: float, g) -> tuple:
    import torch

    def boxes(k: int, extent: float = 800.0):
        xy = torch.rand(k, 2, generator=g) * extent
        wh = torch.rand(k, 2, generator=g) * extent / 4 + 2
        return torch.cat([xy, xy + wh], 1)

    def rotated(k: int):
        b = boxes(k, 400.0)
        return torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2], torch.rand(k, 1, generator=g) * 180 - 90], 1)

    side = max(8, int(200 * math.sqrt(scale)))
    channels = max(4, int(256 * scale))
    if op == "nms":
        return boxes(n), torch.rand(n, generator=g), 0.7
    if op == "batched_nms":
        return boxes(n), torch.rand(n, generator=g), torch.randint(0, 80, (n,), generator=g), 0.5
    if op == "nms_rotated":
        return rotated(n), torch.rand(n, generator=g), 0.7
    if op == "box_iou_rotated":
        return rotated(n), rotated(n // 2 + 1)
    if op == "roi_align":
        features = torch.rand(2, channels, side, side * 4 // 3, generator=g)
        rois = torch.cat([torch.randint(0, 2, (n, 1), generator=g).float(), boxes(n, side * 4.0)], 1)
        return features, rois, (7, 7), 0.25, 0, True
    if op == "roi_align_rotated":
        features = torch.rand(2, channels, side, side * 4 // 3, generator=g)
        r = rotated(n)
        r[:, :4] *= side * 4.0 / 400.0
        return features, torch.cat([torch.randint(0, 2, (n, 1), generator=g).float(), r], 1), (7, 7), 0.25, 2
    if op == "paste_masks":
        h, w = max(16, int(800 * math.sqrt(scale))), max(16, int(1067 * math.sqrt(scale)))
        b = boxes(n, min(h, w) * 0.8)
        return torch.rand(n, 28, 28, generator=g), b, (h, w), 0.5
    raise ValueError(f"unknown op {op!r}")


def check_kernel(op: str, device: str, scale: float = 1.0, gradients: bool = True) -> str:
    """det-ops-cuda's ``op`` on ``device`` against det-core's reference on the CPU, at ``scale``
    times the sizes of :data:`KERNEL_SIZES`; with ``gradients``, the ROIAlign ops' backward too."""
    import torch

    import det.ops_cuda
    from det.core.layers.ops import _reference

    g = torch.Generator().manual_seed(0)
    n = max(8, int(KERNEL_SIZES[op] * scale))
    args = _kernel_inputs(op, n, scale, g)
    kernel, reference = getattr(det.ops_cuda, op), _reference[op].load()
    on_device = [a.to(device) if isinstance(a, torch.Tensor) else a for a in args]
    differentiable = op.startswith("roi_align") and gradients
    if differentiable:  # features as leaves on both sides, for their gradients
        on_device[0] = args[0].detach().clone().to(device).requires_grad_(True)
        args = (args[0].detach().clone().requires_grad_(True), *args[1:])
    t0 = time.perf_counter()
    ours = kernel(*on_device)
    _synchronize(device)
    kernel_ms = (time.perf_counter() - t0) * 1000
    expected = reference(*args)
    unit = "ROIs" if op.startswith("roi_align") else "masks" if op == "paste_masks" else "boxes"
    detail = f"{n} {unit}, {kernel_ms:.1f} ms"
    if "nms" in op:
        ours_list, expected_list = ours.cpu().tolist(), expected.tolist()
        same = sum(a == b for a, b in zip(ours_list, expected_list))
        _require(len(ours_list) == len(expected_list) and same >= len(expected_list) - 2,
                 f"kept {len(ours_list)} vs reference {len(expected_list)}, {same} in the same place")
        return f"{detail}, kept {len(ours_list)} as the reference"
    if op == "paste_masks":
        differ = (ours.cpu() != expected).float().mean().item()
        _require(differ < 1e-4, f"{differ:.2e} of pixels differ from the reference")
        return f"{detail}, {differ:.1e} of pixels differ"
    torch.testing.assert_close(ours.detach().cpu(), expected.detach(), atol=1e-4, rtol=1e-3)
    if differentiable:
        grad = torch.rand(expected.shape, generator=g)
        ours.backward(grad.to(device))
        expected.backward(grad)
        torch.testing.assert_close(on_device[0].grad.cpu(), args[0].grad, atol=1e-4, rtol=1e-3)
        detail += ", gradients match"
    return detail


# --- every meta-architecture: a training step and an inference -----------------------------------


def check_meta_arch(name: str, device: str) -> str:
    """A training step (forward, backward, SGD) and an inference of ``name`` on ``device``; on CUDA
    the inference's host synchronisations, counted by PyTorch, next to bench_syncs.py's count."""
    import warnings

    import _meta_archs
    import torch

    from det.core import EventStorage

    model = _meta_archs.build(name).to(device)
    batch = _meta_archs.batch_to(_meta_archs.make_batch(name), device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    with EventStorage(0):
        losses = model(batch)
    total = sum(losses.values())
    if not torch.isfinite(total):
        raise CheckFailed(f"losses not finite: { {k: float(v) for k, v in losses.items()} }")
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    _require(bool(grads) and all(bool(torch.isfinite(g).all()) for g in grads), "gradients missing or not finite")
    _require(all(g.device.type == torch.device(device).type for g in grads), "gradients on another device")
    optimizer.step()
    model.eval()
    inputs = _meta_archs.inference_inputs(batch)
    detail = f"loss {float(total):.3f}, {len(grads)} gradients"
    with torch.no_grad():
        model(inputs)  # warm-up: lazy initialisation may synchronise once
        if device.startswith("cuda"):
            _synchronize(device)
            torch.cuda.set_sync_debug_mode("warn")
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    model(inputs)
            finally:
                torch.cuda.set_sync_debug_mode(0)
            syncs = sum("synchroniz" in str(w.message) for w in caught)
            detail += f", inference {syncs} host synchronisations on the GPU"
        else:
            model(inputs)
    return detail


# --- AMP training of the demo model ------------------------------------------------------------


def check_amp_training(device: str, steps: int = 50, amp: bool = True, images_per_batch: int = 4) -> str:
    """``steps`` training steps of ``det demo``'s model on a small shapes dataset, with float16
    autocast and a GradScaler when ``amp``: finite losses, falling (last 10 vs first 10 steps)."""
    import torch

    from det.data import build_detection_train_loader
    from det.data.shapes import ShapesConfig, register_shapes
    from det.engine.demo import get_demo_cfg
    from det.engine.train.defaults import DefaultTrainer
    from det.engine.train.train_loop import AMPTrainer, SimpleTrainer

    names = ("gpu_check_shapes_train", "gpu_check_shapes_val")
    with tempfile.TemporaryDirectory() as tmp:
        register_shapes(
            ShapesConfig(num_train=max(8, steps * images_per_batch // 4), num_val=2, min_image_size=128,
                         max_image_size=160, color_by_class=True),
            names=names, root=tmp, replace=True,
        )
        cfg = get_demo_cfg(tmp, opts=[
            "MODEL.DEVICE", device, "SOLVER.AMP.ENABLED", amp, "DATASETS.TRAIN", (names[0],),
            "DATASETS.TEST", (names[1],), "SOLVER.IMS_PER_BATCH", images_per_batch, "SOLVER.MAX_ITER", steps,
            "SOLVER.WARMUP_ITERS", max(1, steps // 10), "SEED", 0,
        ])
        torch.manual_seed(0)
        model = DefaultTrainer.build_model(cfg)
        loader = build_detection_train_loader(cfg)
        optimizer = DefaultTrainer.build_optimizer(cfg, model)
        trainer = (AMPTrainer if amp else SimpleTrainer)(model, loader, optimizer)
        trainer.train(0, steps)
        losses = list(trainer.storage.history("total_loss").values())
    losses = [float(v) for v, _ in losses]
    _require(len(losses) == steps, f"{len(losses)} losses recorded for {steps} steps")
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    _require(not bad, f"non-finite loss at step {bad[0] if bad else -1}")
    window = min(10, steps // 2)
    first, last = statistics.mean(losses[:window]), statistics.mean(losses[-window:])
    _require(last < first, f"loss did not fall: first {window} steps {first:.3f}, last {window} {last:.3f}")
    precision = "float16 autocast + GradScaler" if amp and device.startswith("cuda") else ("bfloat16 autocast" if amp else "float32")
    return f"{steps} steps, {precision}, loss {first:.3f} -> {last:.3f}"


# --- DDP ----------------------------------------------------------------------------------------


def _ddp_worker(device: str, out_dir: str) -> None:
    import _meta_archs
    import torch

    from det.core import EventStorage
    from det.engine.train import comm

    rank = comm.get_rank()
    if device.startswith("cuda"):
        device = f"cuda:{comm.get_local_rank()}"
    model = _meta_archs.build("mask_rcnn_fpn", seed=0).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    losses = []
    for step in range(3):
        batch = _meta_archs.batch_to(_meta_archs.make_batch("mask_rcnn_fpn", seed=10 * rank + step), device)
        torch.manual_seed(step)
        with EventStorage(step):
            loss = sum(ddp(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    flat = torch.cat([p.detach().flatten().cpu().double() for p in model.parameters()])
    torch.save({"losses": losses, "checksum": float(flat.sum()), "first": flat[:1000]}, Path(out_dir) / f"rank{rank}.pt")


def check_ddp(device: str, world_size: int = 2) -> str:
    """``world_size`` processes (NCCL on CUDA, gloo on the CPU) train 3 DDP steps; every rank must
    end with the same parameters."""
    import torch

    from det.engine.train.launch import launch

    with tempfile.TemporaryDirectory() as out:
        launch(_ddp_worker, world_size, dist_url="auto", args=(device, out))
        results = [torch.load(Path(out) / f"rank{r}.pt", weights_only=True) for r in range(world_size)]
    for r, result in enumerate(results[1:], start=1):
        _require(torch.equal(result["first"], results[0]["first"]) and result["checksum"] == results[0]["checksum"],
                 f"rank {r}'s parameters differ from rank 0's after 3 steps")
        _require(all(math.isfinite(v) for v in result["losses"]), f"rank {r}: non-finite loss {result['losses']}")
    backend = "NCCL" if device.startswith("cuda") else "gloo"
    return f"{world_size} ranks over {backend}, 3 steps, parameters identical on every rank"


# --- speed against torchvision -------------------------------------------------------------------


def check_speed(device: str, runs: int = 10, image_hw: tuple[int, int] = (800, 1067),
                models: Callable[[], tuple[object, object]] | None = None) -> str:
    """Median inference and training-step time of det's Mask R-CNN R50-FPN and torchvision's on
    ``device``, same image; ``models()`` gives the (det, torchvision) pair, by default
    bench/_common.py's full-size models with calibrated predictors (as bench_inference.py)."""
    import torch
    from _common import build_det_model, build_tv_model, det_inputs, make_image, tv_inputs

    if models is None:
        def models() -> tuple[object, object]:
            return build_det_model(), build_tv_model()

    def timed(fn: Callable[[], object]) -> float:
        fn()
        times = []
        for _ in range(runs):
            _synchronize(device)
            t0 = time.perf_counter()
            fn()
            _synchronize(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    image = make_image(*image_hw).to(device)
    det_model, tv_model = (m.to(device).eval() for m in models())
    with torch.no_grad():
        det_s = timed(lambda: det_model(det_inputs(image)))
        tv_s = timed(lambda: tv_model(tv_inputs(image)))
    # one training step each: forward with two ground-truth boxes, backward
    boxes = torch.tensor([[100.0, 120.0, 400.0, 500.0], [500.0, 200.0, 700.0, 600.0]], device=device)
    boxes[:, 0::2] *= image_hw[1] / 1067
    boxes[:, 1::2] *= image_hw[0] / 800
    labels = torch.tensor([1, 2], device=device)
    from det.structures import BitMasks, Boxes, Instances

    masks = torch.zeros(2, *image_hw, dtype=torch.bool, device=device)
    for k, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        masks[k, y0:y1, x0:x1] = True
    gt = Instances(image_hw, gt_boxes=Boxes(boxes), gt_classes=labels, gt_masks=BitMasks(masks))
    det_model.train()
    tv_model.train()

    def det_step() -> None:
        from det.core import EventStorage

        with EventStorage(0):
            sum(det_model([{"image": image, "instances": gt}]).values()).backward()

    def tv_step() -> None:
        sum(tv_model(tv_inputs(image), [{"boxes": boxes, "labels": labels, "masks": masks.to(torch.uint8)}]).values()).backward()

    det_train, tv_train = timed(det_step), timed(tv_step)
    return (f"inference det {det_s * 1000:.0f} ms, torchvision {tv_s * 1000:.0f} ms ({det_s / tv_s:.2f}x); "
            f"training step det {det_train * 1000:.0f} ms, torchvision {tv_train * 1000:.0f} ms "
            f"({det_train / tv_train:.2f}x); median of {runs}")


# --- the command ---------------------------------------------------------------------------------


def all_checks(device: str) -> list[tuple[str, Callable[[], str] | None, str]]:
    """(name, check or None, reason when skipped) in the order they run."""
    import _meta_archs
    import torch

    checks: list[tuple[str, Callable[[], str] | None, str]] = []
    for case in golden_cases():
        checks.append((f"golden/{case}", lambda c=case: check_golden(c, device), ""))
    for op in KERNEL_SIZES:
        checks.append((f"kernel/{op}", lambda o=op: check_kernel(o, device), ""))
    for name in _meta_archs.ARCHS:
        checks.append((f"train/{name}", lambda n=name: check_meta_arch(n, device), ""))
    checks.append(("amp", lambda: check_amp_training(device), ""))
    gpus = torch.cuda.device_count()
    if gpus >= 2:
        checks.append(("ddp", lambda: check_ddp(device, 2), ""))
    else:
        checks.append(("ddp", None, f"needs 2 GPUs, this machine has {gpus}"))
    checks.append(("speed", lambda: check_speed(device), ""))
    return checks


def run_checks(checks: list[tuple[str, Callable[[], str] | None, str]], out=sys.stdout) -> int:
    """Run ``checks``, print one line each; the number that failed."""
    failed = 0
    for name, check, reason in checks:
        if check is None:
            print(f"SKIP {name}: {reason}", file=out, flush=True)
            continue
        t0 = time.perf_counter()
        try:
            detail = check()
            print(f"PASS {name} ({time.perf_counter() - t0:.1f}s): {detail}", file=out, flush=True)
        except CheckFailed as e:
            failed += 1
            print(f"FAIL {name} ({time.perf_counter() - t0:.1f}s): {e}", file=out, flush=True)
        except Exception as e:  # a crash is a failure of that check, reported on its line
            failed += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            first_line = (str(e).strip().splitlines() or [""])[0]
            print(f"FAIL {name} ({time.perf_counter() - t0:.1f}s): {type(e).__name__}: {first_line} "
                  f"[{Path(where.filename).name}:{where.lineno}]", file=out, flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run only the checks whose name contains this")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check")
        return 0
    import triton

    props = torch.cuda.get_device_properties(0)
    print(f"gpu_check: {torch.cuda.device_count()} x {props.name} ({props.total_memory / 2**30:.0f} GiB, "
          f"sm_{props.major}{props.minor}), torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"triton {triton.__version__}", flush=True)
    checks = [c for c in all_checks("cuda") if args.only in c[0]]
    t0 = time.perf_counter()
    failed = run_checks(checks)
    print(f"gpu_check: {len(checks) - failed} of {len(checks)} checks passed or skipped, {failed} failed, "
          f"{time.perf_counter() - t0:.0f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
