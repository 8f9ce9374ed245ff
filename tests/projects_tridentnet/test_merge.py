"""merge_branch_instances against a direct greedy per-class NMS written here."""

from __future__ import annotations

import pytest
import torch

from det.projects.tridentnet import merge_branch_instances
from det.structures import Boxes, Instances


def greedy_per_class_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, thresh: float) -> list[int]:
    """Indices kept, best score first: a box is dropped when an already kept box of its class
    overlaps it with IoU > thresh."""
    def iou(a, b):
        w = (min(a[2], b[2]) - max(a[0], b[0])).clamp(min=0)
        h = (min(a[3], b[3]) - max(a[1], b[1])).clamp(min=0)
        inter = w * h
        area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
        return float(inter / (area(a) + area(b) - inter))

    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: -float(scores[i])):
        if all(classes[j] != classes[i] or iou(boxes[i], boxes[j]) <= thresh for j in kept):
            kept.append(i)
    return kept


def _detections(g: torch.Generator, n: int, size=(50, 60)) -> Instances:
    xy = torch.rand(n, 2, generator=g) * 30
    wh = torch.rand(n, 2, generator=g) * 15 + 5
    inst = Instances(size)
    inst.pred_boxes = Boxes(torch.cat([xy, xy + wh], dim=1))
    inst.scores = torch.rand(n, generator=g)
    inst.pred_classes = torch.randint(0, 3, (n,), generator=g)
    inst.tag = torch.arange(n)  # any other field follows the kept detections
    return inst


@pytest.mark.parametrize("topk", [5, 100, -1])
def test_merge_is_per_class_nms_over_the_branches_of_each_image(topk):
    g = torch.Generator().manual_seed(0)
    num_images, num_branch = 2, 3
    # branch-major, as the trident heads produce them: [b0 img0, b0 img1, b1 img0, ...]
    per_branch = [_detections(g, n) for n in (12, 9, 15, 0, 7, 11)]
    merged = merge_branch_instances(per_branch, num_branch, 0.5, topk)
    assert len(merged) == num_images
    for i, result in enumerate(merged):
        parts = [per_branch[b * num_images + i] for b in range(num_branch)]
        boxes = torch.cat([p.pred_boxes.tensor for p in parts])
        scores = torch.cat([p.scores for p in parts])
        classes = torch.cat([p.pred_classes for p in parts])
        tags = torch.cat([p.tag for p in parts])
        keep = greedy_per_class_nms(boxes, scores, classes, 0.5)
        if topk >= 0:
            keep = keep[:topk]
        assert 0 < len(keep) < len(scores) or topk == 5
        assert torch.equal(result.pred_boxes.tensor, boxes[keep])
        assert torch.equal(result.scores, scores[keep])
        assert torch.equal(result.pred_classes, classes[keep])
        assert torch.equal(result.tag, tags[keep])
        assert result.image_size == (50, 60)


def test_one_branch_is_returned_as_is_and_a_wrong_count_is_refused():
    g = torch.Generator().manual_seed(1)
    instances = [_detections(g, 4), _detections(g, 5)]
    assert merge_branch_instances(instances, 1, 0.5, 100) is instances
    with pytest.raises(ValueError, match="3 Instances is not a multiple of num_branch=2"):
        merge_branch_instances([*instances, instances[0]], 2, 0.5, 100)
