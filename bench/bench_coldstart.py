"""Cold start: a new process, from interpreter start to the first prediction.

    .venv/bin/python bench/bench_coldstart.py [--repeats 3]

Each figure is the median over ``--repeats`` fresh processes of the wall time from the parent's spawn
to the moment the child has its first prediction (the child prints the clock then; interpreter
start-up, imports, plugin discovery, config, build, weight loading and the first 800x1067 inference
all count), with the time to the child's exit next to it (interpreter and library teardown, ~0.5 s
here, which no user waits for before the first result):

- ``det``: ``get_cfg`` + merge the model-zoo YAML + ``build_model`` + ``DetectionCheckpointer.load``
  + first ``model([...])``; ``det_fast`` adds ``fast_mode(model)`` before the first inference.
- ``det_predictor``: ``get_cfg`` + YAML + ``cfg.MODEL.WEIGHTS`` = the checkpoint, then
  ``DefaultPredictor(cfg)`` (builds without random init, assigns the memory-mapped weights) and
  ``predictor(image)`` on the (800, 1067, 3) uint8 BGR numpy image (MIN_SIZE_TEST 800 keeps
  800x1067); ``det_predictor_fast`` adds ``fast_mode(predictor.model)`` before the first call.
- ``tv``: ``import torchvision`` + ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
  box_score_thresh=0)`` + ``load_state_dict(torch.load(...))`` + first ``model([...])``.
- ``det plugins`` (the console script) and the import cost of ``det.structures`` over
  ``import torch`` (same process, after torch), with a check that torchvision was not imported.

Then one more child per det path prints where its time goes (``stages_*``: seconds per stage,
measured inside the process with perf_counter, plus RSS after the load and the peak): ``python``
(interpreter start to ``import torch`` done), ``import_det``, ``cfg`` (get_cfg with plugin
discovery + YAML), ``build``, ``load``, ``fast_mode`` and ``first_inference`` (which loads
torchvision's compiled nms kernel but does not import torchvision: ``torchvision_imported``). ``stages_det`` is the explicit path of ``det``, ``stages_predictor``
does what DefaultPredictor does (skip_init build, ``load(assign=True)``), ``stages_predictor_fast``
adds fast_mode.

Weights come from the calibrated checkpoints that _common.py caches in /tmp/det-bench.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import CACHE, MASK_RCNN_YAML, emit, load_line, machine_line

BENCH = Path(__file__).parent
PY = sys.executable

CHILD_DET = r"""
import sys, time, torch
sys.path.insert(0, {bench!r})
torch.set_num_threads(2)
from det.core import build_model, get_cfg
from det.checkpoint import DetectionCheckpointer
from _common import make_image
cfg = get_cfg(); cfg.merge_from_file({yaml!r}); cfg.MODEL.DEVICE = "cpu"; cfg.MODEL.WEIGHTS = ""
model = build_model(cfg).eval()
DetectionCheckpointer(model).load({ckpt!r})
if {fast}:
    from det.core.fast import fast_mode
    fast_mode(model)
with torch.no_grad():
    out = model([{{"image": make_image()}}])
assert len(out[0]["instances"]) > 0
print("first_prediction_at", time.time(), flush=True)
"""

CHILD_PREDICTOR = r"""
import sys, time, torch
sys.path.insert(0, {bench!r})
torch.set_num_threads(2)
from det.core import DefaultPredictor, get_cfg
from _common import make_image
cfg = get_cfg(); cfg.merge_from_file({yaml!r}); cfg.MODEL.DEVICE = "cpu"; cfg.MODEL.WEIGHTS = {ckpt!r}
predictor = DefaultPredictor(cfg)
if {fast}:
    from det.core.fast import fast_mode
    fast_mode(predictor.model)
out = predictor(make_image().permute(1, 2, 0).numpy())  # (800, 1067, 3) uint8, BGR
assert len(out["instances"]) > 0
print("first_prediction_at", time.time(), flush=True)
"""

CHILD_STAGES = r"""
import sys, time, json
t_start = time.perf_counter()
import torch
sys.path.insert(0, {bench!r})
torch.set_num_threads(2)
from _common import current_rss_mb, make_image, peak_rss_mb
stages = {{"python": time.perf_counter() - t_start}}
t = time.perf_counter()
def stage(name):
    global t
    now = time.perf_counter(); stages[name] = now - t; t = now
from det.core import build_model, get_cfg
from det.core.modeling.skip_init import skip_init
from det.checkpoint import DetectionCheckpointer
stage("import_det")
cfg = get_cfg(); cfg.merge_from_file({yaml!r}); cfg.MODEL.DEVICE = "cpu"; cfg.MODEL.WEIGHTS = {ckpt!r}
stage("cfg")
if {predictor}:
    with skip_init():
        model = build_model(cfg).eval()
else:
    model = build_model(cfg).eval()
stage("build")
checkpointer = DetectionCheckpointer(model)
checkpointer.load(cfg.MODEL.WEIGHTS, assign={predictor})
stage("load")
rss = {{"rss_after_load_mb": current_rss_mb(), "peak_rss_after_load_mb": peak_rss_mb(),
        "assigned": checkpointer.last_load_assigned}}
if {fast}:
    from det.core.fast import fast_mode
    fast_mode(model)
stage("fast_mode")
image = make_image()
t = time.perf_counter()
with torch.no_grad():
    out = model([{{"image": image}}])
stage("first_inference")
assert len(out[0]["instances"]) > 0
rss["peak_rss_mb"] = peak_rss_mb()
rss["torchvision_imported"] = "torchvision" in sys.modules
print(json.dumps({{"stages": stages, **rss}}))
"""

CHILD_TV = r"""
import sys, time, torch
sys.path.insert(0, {bench!r})
torch.set_num_threads(2)
from torchvision.models.detection import maskrcnn_resnet50_fpn
from _common import make_image, tv_inputs
model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, box_score_thresh=0).eval()
model.load_state_dict(torch.load({ckpt!r}, weights_only=True))
with torch.no_grad():
    out = model(tv_inputs(make_image()))
assert len(out[0]["boxes"]) > 0
print("first_prediction_at", time.time(), flush=True)
"""

CHILD_IMPORT = r"""
import sys, time, json
t0 = time.perf_counter(); import torch; t1 = time.perf_counter()
import det.structures; t2 = time.perf_counter()
import det.core, det.core.layers; t3 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "det.structures": t2 - t1, "det.core.layers": t3 - t2,
                  "torchvision_imported": "torchvision" in sys.modules}))
"""


def wall(cmd: list[str], env=None) -> float:
    """Seconds from spawn to exit of one child process."""
    return timed_child(cmd, env)[1]


def timed_child(cmd: list[str], env=None) -> tuple[float | None, float, float]:
    """(seconds from spawn to the child's first prediction, if it printed ``first_prediction_at``;
    seconds from spawn to exit; user + system CPU seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start_clock, t0 = time.time(), time.perf_counter()
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    first = None
    for line in out.splitlines():
        if line.startswith("first_prediction_at "):
            first = float(line.split()[1]) - start_clock
    return first, elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ensure_checkpoints() -> tuple[Path, Path]:
    """Write the calibrated weights once (det's in checkpoint form, torchvision's as a state dict)."""
    det_ckpt, tv_ckpt = CACHE / "det_checkpoint.pth", CACHE / "tv_maskrcnn_resnet50_fpn.pth"
    if not det_ckpt.exists() or not tv_ckpt.exists():
        import torch
        from _common import build_det_model, build_tv_model

        model = build_det_model()
        torch.save({"model": model.state_dict()}, det_ckpt)
        build_tv_model()  # caches tv_ckpt
    return det_ckpt, tv_ckpt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-models", action="store_true", help="only det plugins and import costs")
    args = ap.parse_args()
    print(machine_line())
    print(load_line())

    det_bin = str(Path(PY).parent / "det")
    plugins = [wall([det_bin, "plugins"]) for _ in range(args.repeats + 1)][1:]
    emit(
        {
            "what": "det_plugins",
            "median_s": f"{statistics.median(plugins):.3f}",
            "min_s": f"{min(plugins):.3f}",
            "repeats": len(plugins),
        }
    )
    py_start = [wall([PY, "-c", "pass"]) for _ in range(args.repeats)]
    emit({"what": "python_startup", "median_s": f"{statistics.median(py_start):.3f}"})

    rows = []
    for _ in range(args.repeats):
        out = subprocess.run([PY, "-c", CHILD_IMPORT], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout))
    emit(
        {
            "what": "imports",
            "torch_s": f"{statistics.median(r['torch'] for r in rows):.3f}",
            "det_structures_over_torch_s": f"{statistics.median(r['det.structures'] for r in rows):.3f}",
            "det_core_layers_after_s": f"{statistics.median(r['det.core.layers'] for r in rows):.3f}",
            "torchvision_imported": any(r["torchvision_imported"] for r in rows),
        }
    )
    if args.skip_models:
        return

    det_ckpt, tv_ckpt = ensure_checkpoints()
    env = dict(os.environ)
    children = {
        "tv": CHILD_TV.format(bench=str(BENCH), ckpt=str(tv_ckpt)),
        "det": CHILD_DET.format(bench=str(BENCH), yaml=str(MASK_RCNN_YAML), ckpt=str(det_ckpt), fast=False),
        "det_fast": CHILD_DET.format(
            bench=str(BENCH), yaml=str(MASK_RCNN_YAML), ckpt=str(det_ckpt), fast=True
        ),
        "det_predictor": CHILD_PREDICTOR.format(
            bench=str(BENCH), yaml=str(MASK_RCNN_YAML), ckpt=str(det_ckpt), fast=False
        ),
        "det_predictor_fast": CHILD_PREDICTOR.format(
            bench=str(BENCH), yaml=str(MASK_RCNN_YAML), ckpt=str(det_ckpt), fast=True
        ),
    }
    firsts: dict[str, list[float]] = {k: [] for k in children}
    times: dict[str, list[float]] = {k: [] for k in children}
    cpu: dict[str, list[float]] = {k: [] for k in children}
    for _ in range(args.repeats):  # interleaved, like bench_inference
        for name, code in children.items():
            f, w, c = timed_child([PY, "-c", code], env=env)
            firsts[name].append(f)
            times[name].append(w)
            cpu[name].append(c)
    tv_first = statistics.median(firsts["tv"])
    tv_med = statistics.median(times["tv"])
    tv_cpu = statistics.median(cpu["tv"])
    for name, ts in times.items():
        first = statistics.median(firsts[name])
        med = statistics.median(ts)
        # CPU seconds (user + system, both threads, to exit) move much less than wall time when
        # other work shares the cores: the ratio to look at when the load average is high.
        emit(
            {
                "what": f"cold_start_{name}",
                "to_first_prediction_s": f"{first:.2f}",
                "ratio_to_tv": f"{first / tv_first:.3f}",
                "to_exit_s": f"{med:.2f}",
                "exit_ratio_to_tv": f"{med / tv_med:.3f}",
                "repeats": len(ts),
                "cpu_s": f"{statistics.median(cpu[name]):.2f}",
                "cpu_ratio_to_tv": f"{statistics.median(cpu[name]) / tv_cpu:.3f}",
            }
        )
    print(load_line())

    for name, predictor, fast in (("det", False, False), ("predictor", True, False),
                                  ("predictor_fast", True, True)):
        code = CHILD_STAGES.format(bench=str(BENCH), yaml=str(MASK_RCNN_YAML), ckpt=str(det_ckpt),
                                   predictor=predictor, fast=fast)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        rec["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        emit(
            {
                "what": f"stages_{name}",
                **{f"{k}_s": f"{v:.3f}" for k, v in rec["stages"].items()},
                "total_s": f"{sum(rec['stages'].values()):.2f}",
                "cpu_s": f"{rec['cpu_s']:.2f}",
                "rss_after_load_mb": f"{rec['rss_after_load_mb']:.0f}",
                "peak_rss_after_load_mb": f"{rec['peak_rss_after_load_mb']:.0f}",
                "peak_rss_mb": f"{rec['peak_rss_mb']:.0f}",
                "assigned": rec["assigned"],
                "torchvision_imported": rec["torchvision_imported"],
            }
        )
    print(load_line())


if __name__ == "__main__":
    main()
