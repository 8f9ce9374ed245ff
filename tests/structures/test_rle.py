"""RLE helpers and the exact mask -> polygons tracer (polygons <-> bitmasks <-> RLE)."""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from det.structures import (
    BitMasks,
    PolygonMasks,
    mask_to_polygons,
    mask_to_rle,
    polygons_to_bitmask,
    polygons_to_rle,
    rle_area,
    rle_to_bbox,
    rle_to_mask,
    rle_to_polygons,
)


def test_rle_round_trip_and_json():
    mask = np.zeros((6, 9), dtype=bool)
    mask[1:4, 2:7] = True
    rle = mask_to_rle(mask)
    assert rle["size"] == [6, 9] and isinstance(rle["counts"], str)
    json.dumps(rle)  # JSON-ready, as written in COCO results
    np.testing.assert_array_equal(rle_to_mask(rle), mask)
    assert rle_area(rle) == 15
    np.testing.assert_array_equal(rle_to_bbox(rle), [2.0, 1.0, 5.0, 3.0])
    # Same bytes as pycocotools' own encoding.
    assert rle["counts"].encode() == mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]


def test_rle_stacks_and_torch_input():
    masks = torch.zeros(3, 5, 5, dtype=torch.bool)
    masks[0, 0, 0] = True
    masks[2] = True
    rles = mask_to_rle(masks)
    assert len(rles) == 3
    assert rle_area(rles).tolist() == [1, 0, 25]
    np.testing.assert_array_equal(rle_to_mask(rles), masks.numpy())
    assert rle_to_bbox(rles).shape == (3, 4)


def test_uncompressed_rle_as_in_coco_json():
    # counts alternate background / foreground runs, column-major.
    rle = {"size": [3, 2], "counts": [1, 3, 2]}
    np.testing.assert_array_equal(rle_to_mask(rle), [[False, True], [True, False], [True, False]])
    assert rle_area(rle) == 3


def test_rle_bad_inputs():
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        mask_to_rle(np.zeros(5))
    with pytest.raises(TypeError, match="COCO RLE dict"):
        rle_to_mask({"counts": "abc"})
    with pytest.raises(ValueError, match="empty list"):
        rle_to_mask([])


def test_polygons_to_rle():
    square = [0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 4.0]
    rle = polygons_to_rle([square, [6, 0, 8, 0, 8, 2, 6, 2]], 5, 10)
    assert rle_area(rle) == 16 + 4
    np.testing.assert_array_equal(
        rle_to_mask(rle), polygons_to_bitmask([np.array(square), np.array([6.0, 0, 8, 0, 8, 2, 6, 2])], 5, 10)
    )
    assert rle_area(polygons_to_rle([], 3, 3)) == 0
    with pytest.raises(ValueError, match="at least 3 points"):
        polygons_to_rle([[0, 0, 1, 1]], 3, 3)


def test_mask_to_polygons_shapes():
    mask = np.zeros((6, 7), dtype=bool)
    mask[1:3, 1:4] = True
    mask[3, 4] = True  # touches the first region only at a corner
    polygons, has_holes = mask_to_polygons(mask)
    assert not has_holes
    assert [p.tolist() for p in polygons] == [
        [1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0],
        [4.0, 3.0, 5.0, 3.0, 5.0, 4.0, 4.0, 4.0],
    ]
    assert mask_to_polygons(np.zeros((3, 3), dtype=bool)) == ([], False)
    ring = np.ones((5, 5), dtype=bool)
    ring[2, 2] = False
    polygons, has_holes = mask_to_polygons(ring)
    assert has_holes
    assert [p.tolist() for p in polygons] == [
        [0.0, 0.0, 5.0, 0.0, 5.0, 5.0, 0.0, 5.0],
        [2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 2.0],
    ]
    with pytest.raises(ValueError, match="one"):
        mask_to_polygons(np.zeros((2, 3, 3), dtype=bool))


@settings(max_examples=80, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 14), st.integers(1, 14))))
def test_polygons_bitmasks_rle_round_trip(mask):
    """mask -> polygons -> PolygonMasks -> BitMasks -> RLE -> mask is lossless without holes."""
    polygons, has_holes = mask_to_polygons(mask)
    h, w = mask.shape
    bitmask = BitMasks.from_polygon_masks(PolygonMasks([polygons]), h, w).tensor[0].numpy()
    filled = polygons_to_bitmask(polygons, h, w)
    np.testing.assert_array_equal(bitmask, filled)
    if not has_holes:
        np.testing.assert_array_equal(bitmask, mask)
    else:
        # The union of outlines covers the holes too: a superset of the mask.
        assert (bitmask | mask).sum() == bitmask.sum()
    rle = mask_to_rle(bitmask)
    np.testing.assert_array_equal(rle_to_mask(rle), bitmask)
    assert rle_area(rle) == bitmask.sum()
    outer, _ = rle_to_polygons(mask_to_rle(mask))
    assert [p.tolist() for p in outer] == [p.tolist() for p in polygons]
