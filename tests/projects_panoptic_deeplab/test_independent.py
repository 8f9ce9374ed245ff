"""Panoptic-DeepLab's distinctive computations against direct implementations written here
(pixel loops and plain numpy, from the paper's definitions): center finding, grouping each thing
pixel to its nearest center after its offset, the panoptic merge, and the training targets."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from det.projects.panoptic_deeplab.post_processing import (
    find_instance_center,
    get_instance_segmentation,
    get_panoptic_segmentation,
    group_pixels,
    merge_semantic_and_instance,
)
from det.projects.panoptic_deeplab.target_generator import PanopticDeepLabTargetGenerator


def reference_centers(heat: np.ndarray, threshold: float, kernel: int, top_k: int | None) -> list[tuple[int, int]]:
    """Pixels above threshold that equal the maximum of their kernel window (below-threshold
    pixels count as -1, outside the image as absent); with top_k, scores above the k-th best."""
    h, w = heat.shape
    t = np.where(heat > threshold, heat, -1.0)
    r = kernel // 2
    keep = []
    for y in range(h):
        for x in range(w):
            window = t[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
            if t[y, x] > 0 and t[y, x] == window.max():
                keep.append((y, x))
    if top_k is not None:
        scores = sorted((t[y, x] if (y, x) in keep else -1.0 for y in range(h) for x in range(w)), reverse=True)
        kth = max(scores[min(top_k, h * w) - 1], 0.0)
        keep = [(y, x) for y, x in keep if t[y, x] > kth]
    return keep


def reference_grouping(centers: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each pixel moved by its offset joins the nearest center (1-based id; the first on ties)."""
    _, h, w = offsets.shape
    ids = np.zeros((h, w), dtype=np.int64)
    for y in range(h):
        for x in range(w):
            py, px = y + offsets[0, y, x], x + offsets[1, y, x]
            d = [(py - cy) ** 2 + (px - cx) ** 2 for cy, cx in centers]
            ids[y, x] = int(np.argmin(d)) + 1
    return ids


def reference_merge(sem: np.ndarray, ins: np.ndarray, thing_mask: np.ndarray, divisor: int, things: set[int],
                    stuff_area: int, void: int) -> np.ndarray:
    pan = np.full(sem.shape, void, dtype=np.int64)
    numbers: Counter = Counter()
    for ins_id in sorted(set(ins.flatten().tolist()) - {0}):
        mask = (ins == ins_id) & (thing_mask > 0)
        if not mask.any():
            continue
        votes = Counter(sem[mask].tolist())
        best = max(votes.values())
        cls = min(c for c, n in votes.items() if n == best)  # majority, the smallest class on ties
        numbers[cls] += 1
        pan[mask] = cls * divisor + numbers[cls]
    for cls in sorted(set(sem.flatten().tolist())):
        if cls in things:
            continue
        mask = (sem == cls) & (ins == 0)
        if mask.sum() >= stuff_area:
            pan[mask] = cls * divisor
    return pan


@pytest.mark.parametrize(("kernel", "top_k"), [(3, None), (5, None), (3, 4), (7, 200)])
def test_center_finding_matches_the_definition(kernel, top_k):
    rng = np.random.default_rng(kernel + (top_k or 0))
    heat = rng.random((13, 17)).astype(np.float32) ** 3
    got = find_instance_center(torch.from_numpy(heat)[None], threshold=0.1, nms_kernel=kernel, top_k=top_k)
    assert sorted(map(tuple, got.tolist())) == sorted(reference_centers(heat, 0.1, kernel, top_k))
    assert len(got) > 0


def test_each_pixel_goes_to_the_nearest_center_after_its_offset():
    rng = np.random.default_rng(0)
    centers = np.array([[2, 3], [9, 12], [5, 7], [11, 1]], dtype=np.int64)
    offsets = (rng.random((2, 12, 14)) * 16 - 8).astype(np.float32)
    got = group_pixels(torch.from_numpy(centers), torch.from_numpy(offsets))
    assert got.shape == (1, 12, 14)
    np.testing.assert_array_equal(got[0].numpy(), reference_grouping(centers.astype(np.float32), offsets))
    # offsets pointing every pixel exactly at one center make one instance of all pixels
    to_first = np.stack(np.meshgrid(np.arange(12), np.arange(14), indexing="ij")).astype(np.float32)
    exact = np.array([9, 12], dtype=np.float32)[:, None, None] - to_first
    assert set(group_pixels(torch.from_numpy(centers), torch.from_numpy(exact)).unique().tolist()) == {2}


def test_instance_segmentation_keeps_thing_pixels_only():
    rng = np.random.default_rng(1)
    heat = np.zeros((1, 10, 10), dtype=np.float32)
    heat[0, 2, 2], heat[0, 7, 7] = 0.9, 0.8
    offsets = (rng.random((2, 10, 10)) * 4 - 2).astype(np.float32)
    thing = (rng.random((1, 10, 10)) > 0.4).astype(np.int64)
    ins, centers = get_instance_segmentation(torch.zeros(1, 10, 10, dtype=torch.long), torch.from_numpy(heat),
                                             torch.from_numpy(offsets), torch.from_numpy(thing), [1],
                                             threshold=0.1, nms_kernel=3)
    assert centers.tolist() == [[[2, 2], [7, 7]]]
    expected = reference_grouping(np.array([[2, 2], [7, 7]], np.float32), offsets) * thing[0]
    np.testing.assert_array_equal(ins[0].numpy(), expected)
    none, no_centers = get_instance_segmentation(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4),
                                                 torch.zeros(2, 4, 4), torch.ones(1, 4, 4, dtype=torch.long), [1])
    assert no_centers.shape == (1, 0, 2) and not none.any()


def test_panoptic_merge_matches_majority_vote_and_stuff_area():
    rng = np.random.default_rng(2)
    sem = rng.integers(0, 5, (1, 16, 16))
    sem[0, :4, :4] = 3                      # a tie-free thing block
    ins = rng.integers(0, 5, (1, 16, 16))
    ins[0, 12:, 12:] = 0
    things = {1, 3}
    thing_mask = np.isin(sem, list(things)).astype(np.int64)
    for stuff_area in (1, 12, 60):
        got = merge_semantic_and_instance(torch.from_numpy(sem), torch.from_numpy(ins), torch.from_numpy(thing_mask),
                                          1000, things, stuff_area, -1)
        expected = reference_merge(sem[0], ins[0], thing_mask[0], 1000, things, stuff_area, -1)
        np.testing.assert_array_equal(got[0].numpy(), expected)
    # a tie: 2 pixels of class 3 and 2 of class 1 in one instance -> class 1 (the smaller)
    tie = merge_semantic_and_instance(torch.tensor([[[3, 3, 1, 1]]]), torch.tensor([[[1, 1, 1, 1]]]),
                                      torch.ones(1, 1, 4, dtype=torch.long), 1000, {1, 3}, 0, -1)
    assert tie.tolist() == [[[1001, 1001, 1001, 1001]]]


def test_get_panoptic_segmentation_end_to_end_on_a_drawn_scene():
    # two things of class 2 (left, right) on stuff class 0, a small stuff class 1 patch
    sem = torch.zeros(1, 20, 30, dtype=torch.long)
    sem[0, 5:15, 2:12] = 2
    sem[0, 5:15, 18:28] = 2
    sem[0, 0:2, 0:3] = 1
    heat = torch.zeros(1, 20, 30)
    heat[0, 10, 7], heat[0, 10, 23] = 0.9, 0.7
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    left = xs < 15
    offsets = torch.stack([10 - ys, torch.where(left, 7 - xs, 23 - xs)])
    pan, centers = get_panoptic_segmentation(sem, heat, offsets, thing_ids=[2], label_divisor=1000, stuff_area=10,
                                             void_label=-1, threshold=0.1, nms_kernel=7, top_k=200)
    assert centers.tolist() == [[[10, 7], [10, 23]]]
    assert pan.dtype == torch.int64 and pan.shape == (1, 20, 30)
    assert set(pan[0, 5:15, 2:12].unique().tolist()) == {2001}
    assert set(pan[0, 5:15, 18:28].unique().tolist()) == {2002}
    assert set(pan[0, 0:2, 0:3].unique().tolist()) == {-1}          # 6 pixels < stuff_area
    assert int((pan == 0).sum()) == 20 * 30 - 200 - 6
    with pytest.raises(ValueError, match=r"Offset prediction with un-supported shape: \(3, 20, 30\)"):
        get_panoptic_segmentation(sem, heat, torch.zeros(3, 20, 30), [2], 1000, 10, -1)


def test_targets_match_the_definition():
    sigma = 2
    pan = np.zeros((24, 32), dtype=np.int64)
    pan[:, :] = 5                    # stuff
    pan[3:9, 4:13] = 7               # thing A (small)
    pan[14:24, 20:32] = 9            # thing B, touching the border
    pan[0:2, 28:32] = 11             # crowd thing
    pan[22:24, 0:3] = 0              # unlabeled
    info = [{"id": 5, "category_id": 0, "iscrowd": 0}, {"id": 7, "category_id": 4, "iscrowd": 0},
            {"id": 9, "category_id": 4, "iscrowd": 0}, {"id": 11, "category_id": 4, "iscrowd": 1}]
    gen = PanopticDeepLabTargetGenerator(ignore_label=255, thing_ids={4}, sigma=sigma, ignore_stuff_in_offset=True,
                                         small_instance_area=60, small_instance_weight=3)
    t = gen(pan, info)

    # every thing segment, crowd included, has a center and offsets (crowd only loses the weights)
    centroids = []
    for seg in (7, 9, 11):
        ys, xs = np.nonzero(pan == seg)
        centroids.append((ys.mean(), xs.mean()))
    assert np.allclose(t["center_points"], centroids)
    expected_center = np.zeros((24, 32))
    expected_offset = np.zeros((2, 24, 32))
    for seg, (cy, cx) in zip((7, 9, 11), centroids):
        ry, rx = round(cy), round(cx)
        for y in range(24):
            for x in range(32):
                if abs(y - ry) <= 3 * sigma + 1 and abs(x - rx) <= 3 * sigma + 1:
                    g = np.exp(-((y - ry) ** 2 + (x - rx) ** 2) / (2 * sigma**2))
                    expected_center[y, x] = max(expected_center[y, x], g)
                if pan[y, x] == seg:
                    expected_offset[:, y, x] = (cy - y, cx - x)
    np.testing.assert_allclose(t["center"].numpy(), expected_center, atol=1e-6)
    np.testing.assert_allclose(t["offset"].numpy(), expected_offset, atol=1e-5)

    semantic = np.where(pan == 5, 0, np.where(np.isin(pan, [7, 9, 11]), 4, 255))
    np.testing.assert_array_equal(t["sem_seg"].numpy(), semantic)
    assert t["sem_seg"].dtype == torch.int64
    # things under 60 pixels (A: 54, the crowd: 8) weigh 3 in the semantic loss
    np.testing.assert_array_equal(t["sem_seg_weights"].numpy(), np.where(np.isin(pan, [7, 11]), 3.0, 1.0))
    np.testing.assert_array_equal(t["center_weights"][0].numpy(), np.isin(pan, [5, 7, 9]).astype(np.float32))
    np.testing.assert_array_equal(t["offset_weights"][0].numpy(), np.isin(pan, [7, 9]).astype(np.float32))


def test_model_outputs_one_instance_per_thing_segment_with_its_score(cityscapes_panoptic_metadata):
    """PanopticDeepLab's eval outputs from crafted head outputs: the panoptic ids, and per thing
    segment an instance scored mean-semantic-probability x center-heatmap-at-the-centroid."""
    from det.core import build_model, get_cfg

    from .conftest import SHRINK, YAMLS

    cfg = get_cfg()
    cfg.merge_from_file(str(YAMLS[1]))
    cfg.merge_from_list([*SHRINK, "MODEL.PANOPTIC_DEEPLAB.STUFF_AREA", 4])
    model = build_model(cfg).eval()
    logits = torch.zeros(19, 20, 30)
    logits[0] = 2.0                                 # road everywhere
    logits[13, 4:12, 3:11] = 5.0                    # a car
    logits[11, 10:18, 18:26] = 4.0                  # a person
    center = torch.zeros(1, 20, 30)
    center[0, 7, 6], center[0, 13, 21] = 0.8, 0.6
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    offset = torch.stack([torch.where(xs < 15, 7 - ys, 13 - ys), torch.where(xs < 15, 6 - xs, 21 - xs)])
    things, divisor = model._thing_ids_and_divisor()
    out = model._postprocess(logits, center, offset, {}, (20, 30), things, divisor)
    ids = out["panoptic_seg"][0]
    assert set(ids[4:12, 3:11].unique().tolist()) == {13001}
    assert set(ids[10:18, 18:26].unique().tolist()) == {11001}
    assert set(ids[0:2].unique().tolist()) == {0}
    inst = out["instances"]
    prob = logits.softmax(0)
    order = inst.pred_classes.argsort()
    assert inst.pred_classes[order].tolist() == [11, 13]
    for i, cls, (y0, y1, x0, x1) in zip(order.tolist(), (11, 13), ((10, 18, 18, 26), (4, 12, 3, 11))):
        mask = torch.zeros(20, 30, dtype=torch.bool)
        mask[y0:y1, x0:x1] = True
        assert torch.equal(inst.pred_masks[i], mask)
        cy, cx = int((y0 + y1 - 1) / 2), int((x0 + x1 - 1) / 2)
        expected = prob[cls][mask].mean() * center[0, cy, cx]
        assert inst.scores[i].item() == pytest.approx(expected.item(), rel=1e-6)
        assert inst.pred_boxes.tensor[i].tolist() == [x0, y0, x1, y1]
