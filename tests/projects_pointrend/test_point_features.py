"""PointRend's point sampling against direct implementations written here (loops over pixels and
points, sorting in Python) and against torchvision's ROIAlign."""

from __future__ import annotations

import math

import pytest
import torch

from det.projects.point_rend.mask_head import calculate_uncertainty as mask_uncertainty
from det.projects.point_rend.point_features import (
    generate_regular_grid_point_coords,
    get_point_coords_wrt_image,
    get_uncertain_point_coords_on_grid,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    point_sample_fine_grained_features,
    put_point_logits,
    sample_point_labels,
)
from det.projects.point_rend.semantic_seg import calculate_uncertainty as semseg_uncertainty
from det.structures import BitMasks, Boxes, Instances, PolygonMasks


def bilinear(fmap: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """The (C,) value of a (C, H, W) map at [0, 1]-normalised (x, y): pixel centres at
    (i + 0.5) / W, zero outside the map (grid_sample's align_corners=False, zeros padding)."""
    c, h, w = fmap.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(c, dtype=torch.float64)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * fmap[:, yy, xx].double()
    return out


def test_point_sample_is_bilinear_interpolation_at_normalised_points():
    torch.manual_seed(0)
    fmap = torch.randn(2, 3, 5, 7)
    coords = torch.rand(2, 11, 2) * 1.2 - 0.1  # some points outside: zero padding
    out = point_sample(fmap, coords, align_corners=False)
    assert out.shape == (2, 3, 11)
    for n in range(2):
        for p in range(11):
            expected = bilinear(fmap[n], float(coords[n, p, 0]), float(coords[n, p, 1]))
            torch.testing.assert_close(out[n, :, p].double(), expected, atol=1e-5, rtol=0)
    # the centre of pixel (row 3, col 4) is exactly that pixel
    centre = torch.tensor([[[(4 + 0.5) / 7, (3 + 0.5) / 5]]]).expand(2, 1, 2)
    torch.testing.assert_close(point_sample(fmap, centre, align_corners=False)[:, :, 0], fmap[:, :, 3, 4])
    # a grid of points keeps its layout
    grid = coords.view(2, 1, 11, 2)
    torch.testing.assert_close(point_sample(fmap, grid, align_corners=False)[:, :, 0, :], out)


def test_point_sample_rejects_bad_shapes_clearly():
    with pytest.raises(ValueError, match=r"point_coords must be an \(N, P, 2\) or \(N, H, W, 2\) tensor, got shape \(1, 4, 3\)"):
        point_sample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="input has 2 maps but point_coords has 1 sets of points"):
        point_sample(torch.zeros(2, 1, 4, 4), torch.zeros(1, 4, 2))


def test_regular_grid_is_cell_centres_row_by_row():
    grid = generate_regular_grid_point_coords(3, 4, "cpu")
    assert grid.shape == (3, 16, 2)
    expected = torch.tensor([[(j + 0.5) / 4, (i + 0.5) / 4] for i in range(4) for j in range(4)])
    torch.testing.assert_close(grid[2], expected)
    # the same points as detectron2's construction with affine_grid
    aff = torch.tensor([[[0.5, 0, 0.5], [0, 0.5, 0.5]]])
    ref = torch.nn.functional.affine_grid(aff, [1, 1, 4, 4], align_corners=False).view(-1, 2)
    torch.testing.assert_close(grid[0], ref)


def reference_uncertain_points(logits, uncertainty, num_points, k, beta):
    """The same random stream as the function under test, selection done point by point."""
    n = logits.shape[0]
    num_candidates = int(num_points * k)
    candidates = torch.rand(n, num_candidates, 2)
    num_uncertain = int(beta * num_points)
    out = []
    for i in range(n):
        scored = []
        for j in range(num_candidates):
            x, y = float(candidates[i, j, 0]), float(candidates[i, j, 1])
            value = bilinear(logits[i], x, y)  # (C,)
            scored.append((float(uncertainty(value.view(1, -1, 1).float())[0, 0, 0]), j))
        scored.sort(key=lambda s: -s[0])
        out.append(candidates[i, [j for _, j in scored[:num_uncertain]]])
    coords = torch.stack(out)
    if num_points - num_uncertain > 0:
        coords = torch.cat([coords, torch.rand(n, num_points - num_uncertain, 2)], dim=1)
    return coords


@pytest.mark.parametrize("num_points,k,beta", [(20, 3, 0.75), (9, 2.5, 1.0), (6, 1, 0.0)])
def test_uncertain_points_with_randomness_against_a_direct_selection(num_points, k, beta):
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 6, 6) * 3
    classes = torch.tensor([0, 2, 3])

    def uncertainty(point_logits):
        return mask_uncertainty(point_logits, classes[: point_logits.shape[0]])

    torch.manual_seed(5)
    got = get_uncertain_point_coords_with_randomness(logits, uncertainty, num_points, k, beta)
    # reference: per region, its class's -|logit|, so score each region separately
    torch.manual_seed(5)
    n = logits.shape[0]
    candidates = torch.rand(n, int(num_points * k), 2)
    extra = torch.rand(n, num_points - int(beta * num_points), 2)
    num_uncertain = int(beta * num_points)
    for i in range(n):
        scores = [-abs(float(bilinear(logits[i], float(x), float(y))[classes[i]])) for x, y in candidates[i]]
        order = sorted(range(len(scores)), key=lambda j: -scores[j])[:num_uncertain]
        expected = torch.cat([candidates[i, order], extra[i]])
        assert got.shape == (n, num_points, 2)
        # ties are impossible with continuous random points; the order is by uncertainty
        torch.testing.assert_close(got[i], expected)


def test_uncertain_points_semantic_uncertainty_is_top2_margin():
    torch.manual_seed(2)
    logits = torch.randn(2, 5, 4, 4)
    got = semseg_uncertainty(logits)
    for n in range(2):
        for y in range(4):
            for x in range(4):
                a, b = sorted(logits[n, :, y, x].tolist(), reverse=True)[:2]
                assert got[n, 0, y, x].item() == pytest.approx(b - a, abs=1e-6)
    torch.manual_seed(9)
    coords = get_uncertain_point_coords_with_randomness(logits, semseg_uncertainty, 8, 3, 0.75)
    torch.manual_seed(9)
    ref = reference_uncertain_points(logits, semseg_uncertainty, 8, 3, 0.75)
    torch.testing.assert_close(coords, ref)


def test_uncertain_points_on_grid_are_the_most_uncertain_cells():
    torch.manual_seed(3)
    umap = torch.randn(2, 1, 3, 5)
    indices, coords = get_uncertain_point_coords_on_grid(umap, 4)
    for n in range(2):
        flat = umap[n, 0].flatten().tolist()
        expected = sorted(range(15), key=lambda i: -flat[i])[:4]
        assert indices[n].tolist() == expected
        for p, i in enumerate(expected):
            row, col = divmod(i, 5)
            assert coords[n, p].tolist() == pytest.approx([(col + 0.5) / 5, (row + 0.5) / 3])
    # asking for more points than cells gives every cell
    indices, coords = get_uncertain_point_coords_on_grid(umap, 100)
    assert indices.shape == (2, 15) and sorted(indices[0].tolist()) == list(range(15))


def test_points_wrt_image_and_fine_grained_features_equal_roialign_with_one_sample():
    from torchvision.ops import roi_align

    torch.manual_seed(4)
    features = [torch.randn(2, 3, 16, 20), torch.randn(2, 2, 8, 10)]
    scales = [1 / 4, 1 / 8]
    boxes = [Boxes(torch.tensor([[8.0, 4.0, 40.0, 30.0], [20.0, 10.0, 70.0, 60.0]])),
             Boxes(torch.tensor([[0.0, 0.0, 79.0, 63.0]]))]
    grid = generate_regular_grid_point_coords(3, 7, "cpu")
    sampled, wrt_image = point_sample_fine_grained_features(features, scales, boxes, grid)
    assert sampled.shape == (3, 5, 49)
    # box 1 of image 0: the grid's first point is its first cell centre, in pixels
    assert wrt_image[1, 0].tolist() == pytest.approx([20 + 50 / 14, 10 + 50 / 14])
    torch.testing.assert_close(get_point_coords_wrt_image(Boxes.cat(boxes).tensor, grid), wrt_image)
    rois = torch.tensor([[0, 8.0, 4.0, 40.0, 30.0], [0, 20.0, 10.0, 70.0, 60.0], [1, 0.0, 0.0, 79.0, 63.0]])
    expected = torch.cat([roi_align(f, rois, 7, spatial_scale=s, sampling_ratio=1, aligned=True)
                          for f, s in zip(features, scales)], dim=1)
    torch.testing.assert_close(sampled.view(3, 5, 7, 7), expected, atol=1e-5, rtol=1e-5)


def test_sample_point_labels_reads_bitmasks_bilinearly():
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:6] = True
    masks[1, 3:, :3] = True
    inst = Instances((6, 8))
    inst.gt_masks = BitMasks(masks)
    empty = Instances((6, 8))
    empty.gt_masks = BitMasks(torch.zeros(0, 6, 8, dtype=torch.bool))
    points = torch.tensor([[[3.0, 2.0], [2.0, 1.0], [0.5, 0.5]], [[1.5, 4.5], [3.0, 3.0], [7.9, 0.1]]])
    labels = sample_point_labels([empty, inst], points)
    expected = torch.tensor([[float(bilinear(masks[i, None].float(), x / 8, y / 6)[0]) for x, y in points[i].tolist()]
                             for i in range(2)])
    torch.testing.assert_close(labels, expected)
    # inside; at the corner of the mask's first pixel (a quarter of it); outside
    assert labels[0].tolist() == pytest.approx([1.0, 0.25, 0.0])

    poly = Instances((6, 8))
    poly.gt_masks = PolygonMasks([[[0.0, 0.0, 4.0, 0.0, 4.0, 4.0]]])
    with pytest.raises(ValueError, match=r"image 0's gt_masks are PolygonMasks; set INPUT\.MASK_FORMAT to 'bitmask'"):
        sample_point_labels([poly], torch.zeros(1, 3, 2))


def test_put_point_logits_writes_at_flat_cells():
    logits = torch.zeros(2, 3, 2, 4)
    indices = torch.tensor([[0, 5], [7, 2]])
    values = torch.arange(12.0).view(2, 3, 2)
    out = put_point_logits(logits, indices, values)
    for n in range(2):
        for p, i in enumerate(indices[n].tolist()):
            assert out[n, :, i // 4, i % 4].tolist() == values[n, :, p].tolist()
    assert out.abs().sum() == values.sum()
