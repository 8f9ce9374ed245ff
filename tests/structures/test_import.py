"""`import det.structures` is light: no torchvision, no pycocotools until needed, and fast."""

from __future__ import annotations

import compileall
import os
import subprocess
import sys
from pathlib import Path

import det.structures

PROBE = """
import sys, time
import torch
times = []
for _ in range(3):
    for name in [m for m in sys.modules if m == "det.structures" or m.startswith("det.structures.")]:
        del sys.modules[name]
    start = time.perf_counter()
    import det.structures
    times.append(time.perf_counter() - start)
loaded = sorted(m for m in ("torchvision", "pycocotools", "yacs", "pluggy", "det.core") if m in sys.modules)
print(min(times), ",".join(loaded) or "-")
"""


def test_import_pulls_in_nothing_heavy_and_takes_under_50ms():
    # Measure as an installed package runs, with bytecode cached (the dev environment may disable
    # writing it; __pycache__ is git-ignored).
    compileall.compile_dir(Path(det.structures.__file__).parent, quiet=1)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    elapsed, loaded = out.stdout.split()
    assert loaded == "-", f"import det.structures pulled in {loaded}"
    assert float(elapsed) < 0.050, f"import det.structures took {float(elapsed) * 1000:.1f} ms over torch"


def test_public_names_are_detectron2s():
    expected = {
        "Boxes", "BoxMode", "RotatedBoxes", "Instances", "ImageList", "BitMasks", "PolygonMasks",
        "ROIMasks", "Keypoints", "pairwise_iou", "pairwise_ioa", "pairwise_iou_rotated",
        "pairwise_point_box_distance", "polygons_to_bitmask", "heatmaps_to_keypoints",
        "matched_boxlist_iou", "pairwise_intersection", "polygon_area", "rasterize_polygons_within_box",
    }  # fmt: skip
    assert expected <= set(det.structures.__all__)
    for name in det.structures.__all__:
        assert getattr(det.structures, name) is not None
    assert det.structures.__version__ == "0.1.0"
