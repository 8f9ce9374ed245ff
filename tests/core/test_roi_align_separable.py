"""The separable ROIAlign that serves CPU inference equals torchvision's kernel up to float rounding,
for every rule of that kernel (out-of-range samples, border clamping, legacy alignment, adaptive and
fixed sampling, batch index), and the dispatch keeps torchvision's kernel wherever gradients flow."""

import importlib

import pytest
import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)

from det.core.layers import ROIAlign, roi_align

roi_align_module = importlib.import_module("det.core.layers.roi_align")
roi_align_separable = roi_align_module.roi_align_separable


def _features(channels_last: bool, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 37, 53, generator=g, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _rois(dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    corner = torch.rand(200, 2, generator=g) * torch.tensor([230.0, 160.0]) - 10
    size = torch.rand(200, 2, generator=g) * 120 + 0.5
    batch = torch.randint(0, 2, (200, 1), generator=g).float()
    rois = torch.cat([batch, corner, corner + size], dim=1)
    rois[:6, 1:] = torch.tensor(
        [
            [-500.0, -500.0, -400.0, -400.0],  # entirely outside: zeros
            [10.0, 10.0, 10.0, 10.0],  # empty box
            [50.0, 50.0, 40.0, 40.0],  # inverted box
            [180.0, 120.0, 900.0, 900.0],  # runs past the bottom-right border
            [-3.0, -3.0, 214.0, 150.0],  # the whole map and a little more
            [0.0, 0.0, 3.0, 200.0],  # one column wide, taller than the map
        ]
    )
    return rois.to(dtype)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 1, 2, 3])
@pytest.mark.parametrize("channels_last", [True, False])
def test_equals_torchvision_kernel(aligned, sampling_ratio, channels_last):
    x, rois = _features(channels_last), _rois()
    expected = torch.ops.torchvision.roi_align(x.contiguous(), rois, 0.25, 7, 5, sampling_ratio, aligned)
    got = roi_align_separable(x, rois, (7, 5), 0.25, sampling_ratio, aligned)
    assert got.shape == expected.shape == (200, 8, 7, 5)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(got[0], torch.zeros(8, 7, 5))


def test_float64_is_exact_to_double_rounding():
    x, rois = _features(False, torch.float64), _rois(torch.float64)
    expected = torch.ops.torchvision.roi_align(x, rois, 0.25, 14, 14, 0, True)
    got = roi_align_separable(x, rois, (14, 14), 0.25, 0, True)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_small_window_budget_gives_the_same_result(monkeypatch):
    x, rois = _features(True), _rois()
    whole = roi_align_separable(x, rois, (7, 7), 0.25, 0, True)
    monkeypatch.setattr(roi_align_module, "_WINDOW_BUDGET", 1)  # one box per group
    torch.testing.assert_close(roi_align_separable(x, rois, (7, 7), 0.25, 0, True), whole, rtol=1e-6, atol=1e-6)


def test_no_boxes():
    out = roi_align_separable(_features(True), torch.zeros(0, 5), (7, 7), 0.25, 0, True)
    assert out.shape == (0, 8, 7, 7)


def test_dispatch_uses_separable_for_inference_and_torchvision_where_gradients_flow():
    x, rois = _features(False), _rois()
    pool = ROIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)
    exact = torch.ops.torchvision.roi_align(x, rois, 0.25, 7, 7, 0, True)
    with torch.no_grad():
        inferred = pool(x, rois)
    assert inferred.is_contiguous(memory_format=torch.channels_last)  # the separable path
    torch.testing.assert_close(inferred, exact, rtol=1e-5, atol=1e-5)

    trained = pool(x.clone().requires_grad_(), rois)
    assert trained.requires_grad and trained.is_contiguous()
    assert torch.equal(trained.detach(), exact)  # training losses stay bit-identical
    trained.sum().backward()

    assert torch.equal(roi_align(x, rois, (7, 7), 0.25, 0, True), inferred)  # grad on, no grad needed


def test_huge_boxes_go_to_torchvision_kernel_and_non_finite_boxes_are_refused():
    x = _features(False)
    pool = ROIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)
    huge = torch.tensor([[0.0, 0.0, 0.0, 1e7, 10.0]])  # ~360,000 samples per bin side
    with torch.no_grad():
        got = pool(x, huge)
        assert got.is_contiguous()  # torchvision's kernel (NCHW), not the separable form
        assert torch.equal(got, torch.ops.torchvision.roi_align(x, huge, 0.25, 7, 7, 0, True))
        with pytest.raises(ValueError, match="NaN or infinite"):
            pool(x, torch.tensor([[0.0, float("nan"), 0.0, 10.0, 10.0]]))


def test_bfloat16_features_pool_in_bfloat16_with_float32_geometry():
    features, rois = _features(channels_last=True), _rois()
    rois[6:] += torch.tensor([0.0, 800.0, 600.0, 800.0, 600.0])  # far from the origin: bf16 would round them
    big = torch.nn.functional.pad(features, (0, 200, 0, 200)).contiguous(memory_format=torch.channels_last)
    expected = roi_align_separable(big, rois, (7, 7), 0.25, 0, True)
    with torch.no_grad():
        pooled = ROIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0)(big.to(torch.bfloat16), rois)
    assert pooled.dtype == torch.bfloat16 and pooled.shape == expected.shape
    # the features and weights are rounded to bf16 (8 bits); the geometry is not
    torch.testing.assert_close(pooled.float(), expected, rtol=0.02, atol=0.03)
    # boxes too large for the separable form pool through torchvision's kernel in float32
    huge = torch.tensor([[0.0, 0.0, 0.0, 2000.0, 2000.0]])
    torch.testing.assert_close(
        roi_align(big.to(torch.bfloat16), huge, (2, 2), 1.0, 0, True).float(),
        roi_align(big.to(torch.bfloat16).float(), huge, (2, 2), 1.0, 0, True), rtol=0.01, atol=0.01)
