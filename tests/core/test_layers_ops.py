"""Values of det.core.layers' ops against hand computations and brute force."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from det.core.layers import (
    DeformConv,
    ModulatedDeformConv,
    ROIAlign,
    ROIAlignRotated,
    batched_nms,
    batched_nms_rotated,
    box_iou_rotated,
    nms,
    nms_rotated,
    paste_masks,
    paste_masks_in_image,
    roi_align,
)

# --- ROIAlign ----------------------------------------------------------------------------------


def _ramp(h=4, w=4):
    # value at pixel (y, x) is 4y + x: bilinear interpolation of it is exact, 4 * y + x
    return torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)


def test_roi_align_single_sample_hand_computed_aligned_vs_legacy():
    x = _ramp()
    rois = torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]])
    # aligned: box shifted by -0.5 -> [0.5, 2.5]^2, one sample at its centre (1.5, 1.5) -> 4*1.5+1.5
    aligned = ROIAlign((1, 1), spatial_scale=1.0, sampling_ratio=1, aligned=True)(x, rois)
    assert aligned.shape == (1, 1, 1, 1) and aligned.item() == pytest.approx(7.5)
    # legacy: no shift, centre (2, 2) -> 10
    legacy = ROIAlign((1, 1), spatial_scale=1.0, sampling_ratio=1, aligned=False)(x, rois)
    assert legacy.item() == pytest.approx(10.0)


def test_roi_align_bins_and_samples_hand_computed():
    # a non-linear map so that bilinear weights matter: v(y, x) = y * x
    x = torch.tensor([[float(y * xx) for xx in range(5)] for y in range(5)]).view(1, 1, 5, 5)
    rois = torch.tensor([[0, 0.5, 1.0, 4.5, 3.0]])  # aligned -> [0, 0.5] .. [4, 2.5] in sample space
    out = ROIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2)(x, rois)

    def bilinear(y, xx):
        y0, x0 = math.floor(y), math.floor(xx)
        ly, lx = y - y0, xx - x0
        v = lambda a, b: float(a * b)  # noqa: E731
        return (
            (1 - ly) * (1 - lx) * v(y0, x0)
            + (1 - ly) * lx * v(y0, x0 + 1)
            + ly * (1 - lx) * v(y0 + 1, x0)
            + ly * lx * v(y0 + 1, x0 + 1)
        )

    x_start, y_start, bw, bh = 0.0, 0.5, 2.0, 1.0
    expected = torch.zeros(2, 2)
    for i in range(2):
        for j in range(2):
            samples = [
                bilinear(y_start + i * bh + (iy + 0.5) * bh / 2, x_start + j * bw + (ix + 0.5) * bw / 2)
                for iy in range(2)
                for ix in range(2)
            ]
            expected[i, j] = sum(samples) / 4
    torch.testing.assert_close(out[0, 0], expected)


def test_roi_align_spatial_scale_batch_index_and_empty():
    x = torch.cat([_ramp(), 100 + _ramp()])
    rois = torch.tensor([[1, 2.0, 2.0, 6.0, 6.0]])  # scale 0.5 -> same box as [1, 1, 3, 3]
    out = ROIAlign((1, 1), spatial_scale=0.5, sampling_ratio=1)(x, rois)
    assert out.item() == pytest.approx(107.5)
    assert ROIAlign((7, 7), 1.0, 0)(x, torch.zeros(0, 5)).shape == (0, 1, 7, 7)
    assert roi_align(x, rois, 1, 0.5, 1, True).item() == pytest.approx(107.5)


def test_roi_align_module_repr_and_bad_input():
    pool = ROIAlign((7, 7), 0.25, 0)
    assert repr(pool) == "ROIAlign(output_size=(7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)"
    with pytest.raises(ValueError, match=r"rois must be an \(R, 5\) tensor .*got \(3, 4\)"):
        pool(torch.zeros(1, 2, 8, 8), torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"input must be an \(N, C, H, W\) tensor, got \(2, 8, 8\)"):
        pool(torch.zeros(2, 8, 8), torch.zeros(3, 5))


# --- ROIAlignRotated ---------------------------------------------------------------------------


def _rotated_kernel_loop(input, rois, output_size, spatial_scale, sampling_ratio):
    """detectron2's ROIAlignRotated CPU kernel written as plain scalar loops (the test oracle),
    returning the output and a function giving the input gradient for an output gradient."""
    ph_n, pw_n = output_size
    n, c, h, w = input.shape
    out = torch.zeros(rois.shape[0], c, ph_n, pw_n, dtype=torch.float64)
    taps = []  # (roi, ph, pw, batch, y, x, weight)
    for r, roi in enumerate(rois.tolist()):
        b = int(roi[0])
        cw, ch = roi[1] * spatial_scale - 0.5, roi[2] * spatial_scale - 0.5
        rw, rh = roi[3] * spatial_scale, roi[4] * spatial_scale
        th = roi[5] * math.pi / 180.0
        ct, st = math.cos(th), math.sin(th)
        bh, bw = rh / ph_n, rw / pw_n
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / ph_n)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / pw_n)
        count = max(gh * gw, 1)
        for ph in range(ph_n):
            for pw in range(pw_n):
                for iy in range(gh):
                    yy = -rh / 2 + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        xx = -rw / 2 + pw * bw + (ix + 0.5) * bw / gw
                        y = yy * ct - xx * st + ch
                        x = yy * st + xx * ct + cw
                        if y < -1.0 or y > h or x < -1.0 or x > w:
                            continue
                        y, x = max(y, 0.0), max(x, 0.0)
                        yl, xl = int(y), int(x)
                        if yl >= h - 1:
                            yh = yl = h - 1
                            y = float(yl)
                        else:
                            yh = yl + 1
                        if xl >= w - 1:
                            xh = xl = w - 1
                            x = float(xl)
                        else:
                            xh = xl + 1
                        ly, lx = y - yl, x - xl
                        for yi, xi, wt in (
                            (yl, xl, (1 - ly) * (1 - lx)),
                            (yl, xh, (1 - ly) * lx),
                            (yh, xl, ly * (1 - lx)),
                            (yh, xh, ly * lx),
                        ):
                            out[r, :, ph, pw] += wt * input[b, :, yi, xi].double() / count
                            taps.append((r, ph, pw, b, yi, xi, wt / count))

    def grad_input(grad_out):
        g = torch.zeros(n, c, h, w, dtype=torch.float64)
        for r, ph, pw, b, yi, xi, wt in taps:
            g[b, :, yi, xi] += wt * grad_out[r, :, ph, pw].double()
        return g

    return out, grad_input


def _random_rotated_rois(gen, num, n, h, w):
    rois = torch.zeros(num, 6)
    rois[:, 0] = torch.randint(0, n, (num,), generator=gen).float()
    rois[:, 1] = torch.rand(num, generator=gen) * (w + 8) - 4  # some centres off the map
    rois[:, 2] = torch.rand(num, generator=gen) * (h + 8) - 4
    rois[:, 3] = torch.rand(num, generator=gen) * w + 0.3
    rois[:, 4] = torch.rand(num, generator=gen) * h + 0.3
    rois[:, 5] = torch.rand(num, generator=gen) * 360 - 180
    return rois


@pytest.mark.parametrize(("sampling_ratio", "scale"), [(0, 1.0), (2, 1.0), (0, 0.5), (3, 0.25)])
def test_roi_align_rotated_matches_kernel_forward_and_backward(sampling_ratio, scale):
    gen = torch.Generator().manual_seed(sampling_ratio * 10 + int(scale * 4))
    n, c, h, w = 2, 3, 9, 11
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    rois = _random_rotated_rois(gen, 12, n, h / scale, w / scale).double()
    pool = ROIAlignRotated((3, 4), spatial_scale=scale, sampling_ratio=sampling_ratio)
    xg = x.clone().requires_grad_(True)
    out = pool(xg, rois)
    expected, grad_fn = _rotated_kernel_loop(x, rois, (3, 4), scale, sampling_ratio)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    grad_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    out.backward(grad_out)
    torch.testing.assert_close(xg.grad, grad_fn(grad_out), rtol=1e-10, atol=1e-10)


def test_roi_align_rotated_at_angle_zero_equals_aligned_roi_align():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 16, 20, generator=gen)
    boxes = torch.tensor(
        [[1.0, 2.0, 9.0, 7.0], [0.0, 0.0, 20.0, 16.0], [-3.0, 4.0, 5.5, 18.0], [4.2, 3.3, 4.9, 3.8]]
    )
    batch = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    rois = torch.cat([batch, boxes], dim=1)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = boxes[:, 2:] - boxes[:, :2]
    rotated = torch.cat([batch, centers, sizes, torch.zeros(4, 1)], dim=1)
    for sr in (0, 2):
        a = ROIAlign((5, 6), 0.5, sr, aligned=True)(x, rois * torch.tensor([1, 2, 2, 2, 2.0]))
        b = ROIAlignRotated((5, 6), 0.5, sr)(x, rotated * torch.tensor([1, 2, 2, 2, 2, 1.0]))
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_roi_align_rotated_90_degrees_is_rotated_output():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 12, 12, generator=gen)
    square = torch.tensor([[0, 6.0, 5.0, 6.0, 6.0, 0.0]])
    turned = square.clone()
    turned[0, 5] = 90.0
    a = ROIAlignRotated((4, 4), 1.0, 2)(x, square)
    b = ROIAlignRotated((4, 4), 1.0, 2)(x, turned)
    # counter-clockwise box rotation: bin (i, j) of the turned box samples bin (3 - j, i) of the upright one
    torch.testing.assert_close(b, torch.rot90(a, k=-1, dims=(2, 3)), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a, b)


def test_roi_align_rotated_fp16_empty_and_errors():
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 4.0, 4.0, 4.0, 2.0, 30.0]])
    pool = ROIAlignRotated(2, 1.0, 0)
    out16 = pool(x.half(), rois.half())
    assert out16.dtype == torch.float16
    torch.testing.assert_close(out16.float(), pool(x, rois), rtol=2e-3, atol=2e-3)
    assert pool(x, torch.zeros(0, 6)).shape == (0, 2, 2, 2)
    assert repr(pool) == "ROIAlignRotated(output_size=2, spatial_scale=1.0, sampling_ratio=0)"
    with pytest.raises(ValueError, match=r"rois must be an \(R, 6\) tensor"):
        pool(x, torch.zeros(1, 5))
    with pytest.raises(ValueError, match="non-negative width and height"):
        pool(x, torch.tensor([[0, 4.0, 4.0, -1.0, 2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"batch indices must be in \[0, 1\)"):
        pool(x, torch.tensor([[3, 4.0, 4.0, 1.0, 2.0, 0.0]]))


# --- NMS ---------------------------------------------------------------------------------------


def _iou_xyxy(a, b):
    lt = torch.max(a[:2], b[:2])
    rb = torch.min(a[2:], b[2:])
    inter = (rb - lt).clamp(min=0).prod()
    area = lambda t: (t[2] - t[0]) * (t[3] - t[1])  # noqa: E731
    return (inter / (area(a) + area(b) - inter)).item()


def _brute_force_nms(boxes, scores, thr, iou=_iou_xyxy):
    order = sorted(range(len(scores)), key=lambda i: -scores[i].item())
    keep = []
    for i in order:
        if all(iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def _random_boxes(gen, n, size=50.0):
    xy = torch.rand(n, 2, generator=gen) * size
    wh = torch.rand(n, 2, generator=gen) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(thr):
    gen = torch.Generator().manual_seed(int(thr * 10))
    boxes = _random_boxes(gen, 60)
    scores = torch.rand(60, generator=gen)
    keep = nms(boxes, scores, thr)
    assert keep.dtype == torch.int64
    assert keep.tolist() == _brute_force_nms(boxes, scores, thr)


def test_batched_nms_matches_per_class_brute_force():
    gen = torch.Generator().manual_seed(3)
    boxes = _random_boxes(gen, 80)
    scores = torch.rand(80, generator=gen)
    idxs = torch.randint(0, 4, (80,), generator=gen)
    expected = []
    for c in range(4):
        members = (idxs == c).nonzero().flatten().tolist()
        kept = _brute_force_nms(boxes[members], scores[members], 0.5)
        expected += [members[k] for k in kept]
    expected.sort(key=lambda i: -scores[i].item())
    assert batched_nms(boxes, scores, idxs, 0.5).tolist() == expected
    # identical boxes of different classes both survive; fp16 boxes are handled in fp32
    same = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    assert batched_nms(same.half(), torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert batched_nms(same, torch.tensor([0.9, 0.8]), torch.tensor([1, 1]), 0.5).tolist() == [0]


def test_nms_empty_and_errors():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).shape == (
        0,
    )
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\), got \(3, 5\)"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(N,\) = \(3,\), got \(2,\)"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="idxs must be a tensor of shape"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2), 0.5)


def _xyxy_to_rotated(boxes):
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    return torch.cat([c, boxes[:, 2:] - boxes[:, :2], torch.zeros(len(boxes), 1)], dim=1)


def test_box_iou_rotated_axis_aligned_and_rotated_square():
    gen = torch.Generator().manual_seed(4)
    a, b = _random_boxes(gen, 6), _random_boxes(gen, 5)
    iou = box_iou_rotated(_xyxy_to_rotated(a), _xyxy_to_rotated(b))
    expected = torch.tensor([[_iou_xyxy(x, y) for y in b] for x in a])
    torch.testing.assert_close(iou, expected, rtol=1e-4, atol=1e-5)
    # a square turned by 45 degrees against itself upright: intersection is the octagon 8(sqrt2-1)
    sq = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]])
    turned = torch.tensor([[0.0, 0.0, 2.0, 2.0, 45.0]])
    inter = 8 * (math.sqrt(2) - 1)
    assert box_iou_rotated(sq, turned).item() == pytest.approx(inter / (8 - inter), rel=1e-4)
    with pytest.raises(ValueError, match=r"boxes2 must be a \(N, 5\) tensor"):
        box_iou_rotated(sq, torch.zeros(2, 4))


def test_nms_rotated_equals_nms_for_upright_boxes_and_ignores_orientation():
    gen = torch.Generator().manual_seed(5)
    boxes = _random_boxes(gen, 50)
    scores = torch.rand(50, generator=gen)
    assert nms_rotated(_xyxy_to_rotated(boxes), scores, 0.5).tolist() == nms(boxes, scores, 0.5).tolist()
    # IoU exactly 0.5 (overlap 2, union 4): rotated NMS suppresses at >=, axis-aligned at >
    half = torch.tensor([[1.5, 0.5, 3.0, 1.0, 0.0], [2.5, 0.5, 3.0, 1.0, 0.0]])
    assert box_iou_rotated(half, half)[0, 1].item() == 0.5
    assert nms_rotated(half, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
    assert nms(torch.tensor([[0, 0, 3, 1.0], [1, 0, 4, 1.0]]), torch.tensor([0.9, 0.8]), 0.5).tolist() == [
        0,
        1,
    ]
    same_region = torch.tensor([[5, 3, 4, 2, -90.0], [5, 3, 4, 2, 90.0]])
    assert nms_rotated(same_region, torch.tensor([0.4, 0.6]), 0.5).tolist() == [1]
    assert nms_rotated(torch.zeros(0, 5), torch.zeros(0), 0.5).shape == (0,)


def test_batched_nms_rotated_separates_classes_incl_negative_coordinates():
    boxes = torch.tensor(
        [[-50, -50, 10, 10, 0.0], [-50, -50, 10, 10, 0.0], [-49, -50, 10, 10, 0.0], [30, 30, 4, 4, 0.0]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    idxs = torch.tensor([0, 1, 0, 1])
    assert batched_nms_rotated(boxes, scores, idxs, 0.5).tolist() == [0, 1, 3]
    assert batched_nms_rotated(torch.zeros(0, 5), torch.zeros(0), torch.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 5\)"):
        batched_nms_rotated(torch.zeros(2, 4), torch.zeros(2), torch.zeros(2), 0.5)


# --- mask pasting ------------------------------------------------------------------------------


def test_paste_masks_hand_computed():
    ones = torch.ones(1, 2, 2)
    out = paste_masks(ones, torch.tensor([[1.0, 1.0, 3.0, 3.0]]), (5, 5))
    assert out.dtype == torch.bool and out.shape == (1, 5, 5)
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[1:3, 1:3] = True
    assert torch.equal(out[0], expected)
    # half-pixel box: edge pixels sample exactly 0.5 (kept: the threshold is >= 0.5), corners
    # 0.5 * 0.5 = 0.25 (dropped)
    out = paste_masks(ones, torch.tensor([[0.5, 0.5, 2.5, 2.5]]), (4, 4))
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[1, 0:3] = True
    expected[0:3, 1] = True
    assert torch.equal(out[0], expected)


def test_paste_masks_soft_values_and_uint8_mode():
    mask = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    soft = paste_masks(mask, box, (4, 4), threshold=-1)
    assert soft.dtype == torch.uint8
    # pixel (0, 1) centre (1.5, 0.5) -> mask coords (0.25, -0.25): 0.75*0.75*0 + 0.75*0.25*1 (zero pad beyond)
    assert soft[0, 0, 1].item() == int(0.75 * 0.75 * 0 * 255 + 0.25 * 0.75 * 255)  # noqa: RUF100
    assert soft[0, 1, 2].item() == int((0.75 * 0.75 + 0.25 * 0.25) * 255)


def _paste_full_image(masks, boxes, h, w):
    """Every image pixel centre mapped into each box's [-1, 1] frame, sampled in one grid_sample."""
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    x0, y0, x1, y1 = boxes.unbind(1)
    gy = (ys[None] - y0[:, None]) / (y1 - y0)[:, None] * 2 - 1  # (N, h)
    gx = (xs[None] - x0[:, None]) / (x1 - x0)[:, None] * 2 - 1  # (N, w)
    grid = torch.stack([gx[:, None, :].expand(-1, h, -1), gy[:, :, None].expand(-1, -1, w)], dim=3)
    return F.grid_sample(masks[:, None], grid, align_corners=False)[:, 0]


def test_paste_masks_per_box_regions_equal_full_image_sampling():
    gen = torch.Generator().manual_seed(6)
    masks = torch.rand(5, 14, 14, generator=gen)
    boxes = torch.tensor(
        [[3.2, 4.1, 20.7, 30.3], [0, 0, 40, 30], [-5, -5, 8, 9], [35, 25, 60, 50], [10.5, 2, 11.2, 29]]
    )
    pasted = paste_masks(masks, boxes, (30, 40))
    assert torch.equal(pasted, _paste_full_image(masks, boxes, 30, 40) >= 0.5)
    assert torch.equal(paste_masks_in_image(masks, type("B", (), {"tensor": boxes})(), (30, 40)), pasted)


def test_paste_masks_empty_and_errors():
    out = paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), (7, 9))
    assert out.shape == (0, 7, 9) and out.dtype == torch.uint8
    with pytest.raises(
        ValueError, match=r"masks must be an \(N, M, M\) tensor \(square masks\), got \(2, 28, 14\)"
    ):
        paste_masks(torch.zeros(2, 28, 14), torch.zeros(2, 4), (7, 9))
    with pytest.raises(ValueError, match=r"boxes must be an \(2, 4\) XYXY tensor, got \(3, 4\)"):
        paste_masks(torch.zeros(2, 28, 28), torch.zeros(3, 4), (7, 9))


# --- deformable convolution --------------------------------------------------------------------


def test_deform_conv_zero_offset_is_plain_conv():
    torch.manual_seed(0)
    conv = DeformConv(4, 6, 3, padding=1, norm=None, activation=F.relu)
    x = torch.randn(2, 4, 7, 8)
    offset = torch.zeros(2, 18, 7, 8)
    torch.testing.assert_close(
        conv(x, offset), F.relu(F.conv2d(x, conv.weight, padding=1)), rtol=1e-4, atol=1e-5
    )
    assert [n for n, _ in conv.named_parameters()] == ["weight"] and conv.bias is None
    assert conv.weight.shape == (6, 4, 3, 3)


def test_deform_conv_integer_offset_shifts_sampling():
    # every tap displaced by +1 in x == convolving the image shifted left by one (zero beyond)
    conv = DeformConv(1, 1, 1)
    conv.weight.data.fill_(1.0)
    x = torch.arange(12.0).view(1, 1, 3, 4)
    offset = torch.zeros(1, 2, 3, 4)
    offset[:, 1] = 1.0  # (dy, dx) pairs: dx = 1
    expected = torch.zeros_like(x)
    expected[..., :3] = x[..., 1:]
    torch.testing.assert_close(conv(x, offset), expected)


def test_modulated_deform_conv_mask_and_bias():
    torch.manual_seed(1)
    conv = ModulatedDeformConv(4, 6, 3, padding=1, deformable_groups=2)
    conv.bias.data = torch.arange(6.0)
    x = torch.randn(1, 4, 5, 5)
    offset = torch.zeros(1, 2 * 2 * 9, 5, 5)
    mask = torch.full((1, 2 * 9, 5, 5), 0.5)
    expected = 0.5 * F.conv2d(x, conv.weight, padding=1) + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(conv(x, offset, mask), expected, rtol=1e-4, atol=1e-5)
    assert sorted(n for n, _ in conv.named_parameters()) == ["bias", "weight"]
    assert ModulatedDeformConv(4, 6, 3, bias=False).bias is None


def test_deform_conv_empty_input_and_errors():
    conv = DeformConv(4, 6, 3, stride=2, padding=1)
    assert conv(torch.zeros(0, 4, 9, 9), torch.zeros(0, 18, 5, 5)).shape == (0, 6, 5, 5)
    mconv = ModulatedDeformConv(4, 6, 3, stride=2, padding=1)
    assert mconv(torch.zeros(0, 4, 9, 9), torch.zeros(0, 18, 5, 5), torch.zeros(0, 9, 5, 5)).shape == (
        0,
        6,
        5,
        5,
    )
    with pytest.raises(ValueError, match=r"offset must be .* = \(1, 18, H_out, W_out\), got \(1, 9, 5, 5\)"):
        conv(torch.zeros(1, 4, 9, 9), torch.zeros(1, 9, 5, 5))
    with pytest.raises(ValueError, match=r"mask must be"):
        mconv(torch.zeros(1, 4, 9, 9), torch.zeros(1, 18, 5, 5), torch.zeros(1, 18, 5, 5))
    with pytest.raises(ValueError, match="no bias"):
        DeformConv(4, 6, 3, bias=True)
    with pytest.raises(ValueError, match="in_channels 4 is not divisible by groups 3"):
        DeformConv(4, 6, 3, groups=3)


@pytest.mark.parametrize("num", [300, 1500])  # coordinate trick (<= 4000 numbers) and per-class loop
def test_batched_nms_is_torchvisions_on_both_paths_and_uses_the_dispatched_nms(num):
    from torchvision.ops import batched_nms as tv_batched_nms

    from det.core.layers import ops

    gen = torch.Generator().manual_seed(num)
    boxes = _random_boxes(gen, num, size=200.0)
    scores = torch.rand(num, generator=gen)
    idxs = torch.randint(0, 7, (num,), generator=gen)
    expected = tv_batched_nms(boxes, scores, idxs, 0.6)
    calls = []

    def counting_nms(b, s, t):
        calls.append(b.shape[0])
        return ops._reference["nms"].load()(b, s, t)

    ops.register_op("nms", "cpu", counting_nms)
    try:
        assert batched_nms(boxes, scores, idxs, 0.6).tolist() == expected.tolist()
    finally:
        ops.unregister_op("nms", "cpu")
    assert len(calls) == (1 if num * 4 <= 4000 else 7)
