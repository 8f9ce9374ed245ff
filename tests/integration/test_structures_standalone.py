"""`pip install det-structures` alone works: torch, numpy and pycocotools, nothing else of det."""

from __future__ import annotations

import pytest

SCRIPT = r"""
import importlib.util
import sys

import numpy as np
import torch

import det.structures as S
from det.structures import (
    BitMasks, Boxes, BoxMode, ImageList, Instances, Keypoints, PolygonMasks, ROIMasks, RotatedBoxes,
    heatmaps_to_keypoints, mask_to_polygons, mask_to_rle, pairwise_ioa, pairwise_iou,
    pairwise_iou_rotated, polygons_to_bitmask, rle_area, rle_to_mask,
)

assert "site-packages" in S.__file__, S.__file__  # the installed wheel, not the source tree

# boxes and IoU
boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]]))
iou = pairwise_iou(boxes, boxes)
assert abs(iou[0, 1].item() - 25 / 175) < 1e-6 and iou[0, 0].item() == 1.0
assert pairwise_ioa(boxes, boxes)[0, 1].item() == 0.25
assert BoxMode.convert([0, 0, 4, 2], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) == [0, 0, 4, 2]
rot = RotatedBoxes(torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0], [1.0, 0.0, 2.0, 2.0, 0.0]]))
assert abs(pairwise_iou_rotated(rot, rot)[0, 1].item() - 1 / 3) < 1e-6

# polygons <-> bitmasks <-> RLE
square = np.array([2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0])
polys = PolygonMasks([[square]])
bitmasks = BitMasks.from_polygon_masks(polys, 8, 8)
assert bitmasks.tensor.sum().item() == 16
assert bitmasks.get_bounding_boxes().tensor.tolist() == [[2.0, 2.0, 6.0, 6.0]]
rle = mask_to_rle(bitmasks.tensor[0])
assert rle_area(rle) == 16
assert (rle_to_mask(rle) == bitmasks.tensor[0].numpy()).all()
outline, has_holes = mask_to_polygons(rle_to_mask(rle))
assert not has_holes and (polygons_to_bitmask(outline, 8, 8) == bitmasks.tensor[0].numpy()).all()
box = torch.tensor([[2.0, 2.0, 6.0, 6.0]])
assert polys.crop_and_resize(box, 4).all()
# ROIAlign without torchvision: the pure-torch path
assert bitmasks.crop_and_resize(box, 4).all()
pasted = ROIMasks(torch.ones(1, 28, 28)).to_bitmasks(Boxes(box), 8, 8)
assert pasted.tensor.sum().item() == 16

# Instances, ImageList, Keypoints
inst = Instances((8, 8), gt_boxes=Boxes(box), gt_masks=polys, gt_classes=torch.tensor([3]))
both = Instances.cat([inst, inst])
assert len(both) == 2 and len(both[torch.tensor([False, True])]) == 1
images = ImageList.from_tensors([torch.zeros(3, 5, 7), torch.zeros(3, 9, 2)], 4)
assert tuple(images.tensor.shape) == (2, 3, 12, 8)
kp = Keypoints(torch.tensor([[[3.0, 3.0, 2.0]]]))
assert kp.to_heatmap(box, 4)[0].tolist() == [[5]]
assert heatmaps_to_keypoints(torch.zeros(1, 1, 4, 4), box).shape == (1, 1, 4)

for name in ("torchvision", "yacs", "pluggy", "det.core"):
    assert name not in sys.modules, name
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    assert not found, f"{name} is importable in the child environment"
print("STANDALONE-OK")
"""


@pytest.mark.slow
def test_det_structures_works_alone(repo_root, tmp_path, make_child_venv, wheel_builder):
    wheel = wheel_builder(repo_root / "packages" / "structures", tmp_path)
    venv = make_child_venv(inherit=["torch", "numpy", "pycocotools"])
    venv.pip_install("--no-deps", wheel)
    result = venv.run(SCRIPT)
    assert "STANDALONE-OK" in result.stdout
    # The installed metadata asks for exactly what the code imports.
    requires = venv.run(
        "from importlib import metadata; print(sorted(r.split('>')[0].split('=')[0].strip() "
        "for r in metadata.requires('det-structures')))"
    ).stdout.strip()
    assert requires == "['numpy', 'pycocotools', 'torch']"
