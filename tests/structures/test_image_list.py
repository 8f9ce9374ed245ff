"""ImageList.from_tensors pads and batches like detectron2."""

from __future__ import annotations

import pytest
import torch

from det.structures import ImageList


def test_pads_to_the_largest_image_with_pad_value():
    a = torch.ones(3, 5, 7)
    b = torch.full((3, 8, 2), 2.0)
    images = ImageList.from_tensors([a, b], pad_value=-1.0)
    assert images.tensor.shape == (2, 3, 8, 7)
    assert images.image_sizes == [(5, 7), (8, 2)]
    assert all(isinstance(v, int) for size in images.image_sizes for v in size)
    assert len(images) == 2
    assert torch.equal(images[0], a) and torch.equal(images[1], b)
    assert images.tensor[0, :, 5:, :].eq(-1).all() and images.tensor[1, :, :, 2:].eq(-1).all()
    assert images.tensor.is_contiguous()


def test_size_divisibility_rounds_up():
    images = ImageList.from_tensors([torch.zeros(3, 33, 64), torch.zeros(3, 10, 65)], size_divisibility=32)
    assert images.tensor.shape == (2, 3, 64, 96)
    assert ImageList.from_tensors([torch.zeros(1, 32, 32)], size_divisibility=32).tensor.shape == (
        1,
        1,
        32,
        32,
    )
    assert ImageList.from_tensors([torch.zeros(1, 3, 5)], size_divisibility=1).tensor.shape == (1, 1, 3, 5)


def test_single_image_path_matches_the_batched_one():
    img = torch.rand(3, 17, 23)
    single = ImageList.from_tensors([img], 8, pad_value=0.5)
    batched = ImageList.from_tensors([img, torch.rand(3, 1, 1)], 8, pad_value=0.5)
    assert single.tensor.shape == (1, 3, 24, 24)
    assert torch.equal(single.tensor[0], batched.tensor[0])


def test_padding_constraints_square_size_and_divisibility():
    images = ImageList.from_tensors([torch.zeros(3, 20, 30)], padding_constraints={"square_size": 64})
    assert images.tensor.shape == (1, 3, 64, 64)
    # padding_constraints' size_divisibility overrides the argument.
    images = ImageList.from_tensors(
        [torch.zeros(3, 20, 30), torch.zeros(3, 40, 10)], 4, padding_constraints={"size_divisibility": 16}
    )
    assert images.tensor.shape == (2, 3, 48, 32)
    images = ImageList.from_tensors([torch.zeros(3, 20, 30)], 32, padding_constraints={"square_size": 40})
    assert images.tensor.shape == (1, 3, 64, 64)
    assert ImageList.from_tensors([torch.zeros(3, 5, 5)], padding_constraints={}).tensor.shape == (1, 3, 5, 5)
    with pytest.raises(ValueError, match="square_size=16 is smaller"):
        ImageList.from_tensors([torch.zeros(3, 20, 30)], padding_constraints={"square_size": 16})


def test_two_dimensional_images_and_dtype():
    images = ImageList.from_tensors(
        [torch.ones(4, 4, dtype=torch.uint8), torch.ones(2, 6, dtype=torch.uint8)]
    )
    assert images.tensor.shape == (2, 4, 6) and images.tensor.dtype == torch.uint8
    assert images[1].shape == (2, 6)


def test_to_and_device():
    images = ImageList.from_tensors([torch.ones(3, 4, 4)])
    assert images.to(torch.float64).tensor.dtype == torch.float64
    assert images.to(torch.float64).image_sizes == [(4, 4)]
    assert images.device.type == "cpu"


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least one tensor"):
        ImageList.from_tensors([])
    with pytest.raises(TypeError, match="list or tuple"):
        ImageList.from_tensors(torch.zeros(2, 3, 4, 4))
    with pytest.raises(TypeError, match="item 1 is a ndarray"):
        import numpy as np

        ImageList.from_tensors([torch.zeros(3, 4, 4), np.zeros((3, 4, 4))])
    with pytest.raises(ValueError, match="all dimensions except the last two must match"):
        ImageList.from_tensors([torch.zeros(3, 4, 4), torch.zeros(1, 4, 4)])
    with pytest.raises(ValueError, match=r"expected \(..., H, W\)"):
        ImageList.from_tensors([torch.zeros(4)])
