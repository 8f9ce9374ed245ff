"""`import det.structures` is light: no torchvision, no pycocotools, no det.core until needed.

How long it takes over `import torch` is a figure of `bench/bench_coldstart.py`, not a test."""

from __future__ import annotations

import subprocess
import sys

import det.structures

PROBE = """
import sys
import det.structures
loaded = sorted(m for m in ("torchvision", "pycocotools", "yacs", "pluggy", "det.core") if m in sys.modules)
print(",".join(loaded) or "-")
"""


def test_import_pulls_in_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    loaded = out.stdout.strip()
    assert loaded == "-", f"import det.structures pulled in {loaded}"


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
