"""Keypoints, their heatmap targets, and heatmaps_to_keypoints against detectron2's golden output."""

from __future__ import annotations

import pytest
import torch

from det.structures import Keypoints, heatmaps_to_keypoints


def test_keypoints_container():
    kp = Keypoints([[[1, 2, 2], [3, 4, 1]], [[5, 6, 0], [7, 8, 2]]])
    assert kp.tensor.dtype == torch.float32 and kp.tensor.shape == (2, 2, 3)
    assert len(kp) == 2
    assert kp[1].tensor.shape == (1, 2, 3) and kp[1].tensor[0, 0, 0] == 5
    assert len(kp[torch.tensor([True, False])]) == 1
    assert len(kp[0:2]) == 2
    assert len(Keypoints.cat([kp, kp[0]])) == 3
    assert kp.to(torch.float64).tensor.dtype == torch.float32  # always float32, as detectron2
    assert repr(kp) == "Keypoints(num_instances=2)"
    assert Keypoints(torch.zeros(0, 17, 3)).tensor.shape == (0, 17, 3)
    with pytest.raises(ValueError, match=r"\(N, K, 3\)"):
        Keypoints(torch.zeros(2, 17, 2))
    with pytest.raises(ValueError, match="non-empty"):
        Keypoints.cat([])


def test_to_heatmap_indices_and_validity():
    kp = Keypoints(
        torch.tensor(
            [
                [[10.0, 20.0, 2.0], [0.0, 0.0, 0.0], [56.0, 56.0, 1.0], [57.0, 3.0, 2.0]],
                [[15.0, 15.0, 2.0], [10.0, 10.0, 2.0], [19.99, 10.0, 2.0], [9.0, 12.0, 2.0]],
            ]
        )
    )
    boxes = torch.tensor([[0.0, 0.0, 56.0, 56.0], [10.0, 10.0, 20.0, 20.0]])
    heatmaps, valid = kp.to_heatmap(boxes, 56)
    # (10, 20) -> 20 * 56 + 10; unlabeled -> 0 and invalid; exactly on the far edge -> last cell;
    # outside the box -> invalid.
    assert valid.tolist() == [[1, 0, 1, 0], [1, 1, 1, 0]]
    assert heatmaps.tolist() == [[1130, 0, 55 * 56 + 55, 0], [28 * 56 + 28, 0, 0 * 56 + 55, 0]]
    assert heatmaps.dtype == torch.long
    empty_heatmaps, empty_valid = Keypoints(torch.zeros(0, 4, 3)).to_heatmap(torch.zeros(0, 4), 56)
    assert empty_heatmaps.numel() == 0 and empty_valid.numel() == 0


def test_heatmaps_to_keypoints_simple_peak():
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0, 1, 2] = 10.0
    maps[0, 1, 3, 0] = 5.0
    rois = torch.tensor([[100.0, 50.0, 104.0, 54.0]])  # 4x4: no resampling offset
    out = heatmaps_to_keypoints(maps, rois)
    assert out.shape == (1, 2, 4)
    assert out[0, 0, :2].tolist() == [102.5, 51.5]
    assert out[0, 1, :2].tolist() == [100.5, 53.5]
    assert out[0, 0, 2].item() == pytest.approx(10.0)
    # Score: softmax value of the peak, normalised over the pooled map.
    assert out[0, 0, 3].item() == pytest.approx(1.0 / (1.0 + 15 * torch.exp(torch.tensor(-10.0)).item()))


def test_heatmaps_to_keypoints_input_errors():
    with pytest.raises(ValueError, match=r"\(R, K, H, W\)"):
        heatmaps_to_keypoints(torch.zeros(2, 56, 56), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"rois of shape \(2, 4\)"):
        heatmaps_to_keypoints(torch.zeros(2, 17, 56, 56), torch.zeros(3, 4))
    assert heatmaps_to_keypoints(torch.zeros(0, 17, 56, 56), torch.zeros(0, 4)).shape == (0, 17, 4)


def test_heatmaps_to_keypoints_reproduces_detectron2_golden(golden_dir):
    """detectron2's keypoint R-CNN output on image 0 (480x640, not rescaled) is exactly this."""
    outputs = torch.load(golden_dir / "keypoint_rcnn_R_50_FPN" / "outputs.pt")
    inst = outputs[0]["instances"]
    assert tuple(inst["image_size"]) == (480, 640)
    maps = inst["pred_keypoint_heatmaps_first5"]
    decoded = heatmaps_to_keypoints(maps, inst["pred_boxes"][:5])
    # detectron2 keeps (x, y, score) as pred_keypoints.
    assert torch.equal(decoded[:, :, [0, 1, 3]], inst["pred_keypoints"][:5])
