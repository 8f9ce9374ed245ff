"""det.core.modeling.inputs / vis: the public helpers every meta-architecture shares."""

import numpy as np
import pytest
import torch

from det.core.events import EventStorage
from det.core.modeling import check_batched_inputs, draw_boxes, require_event_storage, to_rgb_uint8
from det.structures import Boxes, Instances


def test_check_batched_inputs_accepts_and_names_missing_key():
    inst = Instances((4, 4), gt_boxes=Boxes(torch.zeros(0, 4)))
    check_batched_inputs([{"image": torch.zeros(3, 4, 4), "instances": inst}], 3, ("instances",))
    with pytest.raises(ValueError, match=r"batched_inputs\[0\] has no 'instances' key .*gt_boxes"):
        check_batched_inputs([{"image": torch.zeros(3, 4, 4)}], 3, ("instances",))
    with pytest.raises(ValueError, match=r"shape \(1, 4, 4\); expected \(3, H, W\)"):
        check_batched_inputs([{"image": torch.zeros(1, 4, 4)}], 3)
    with pytest.raises(ValueError, match=r"non-empty list of dicts.*list of length 0"):
        check_batched_inputs([], 3)


def test_require_event_storage():
    with pytest.raises(RuntimeError, match=r"MyModel in training mode .*EventStorage"):
        require_event_storage("MyModel")
    with EventStorage(0) as storage:
        assert require_event_storage("MyModel") is storage


def test_to_rgb_uint8_and_draw_boxes():
    bgr = torch.zeros(3, 2, 3)
    bgr[0] = 300.0  # blue channel, clipped to 255
    rgb = to_rgb_uint8(bgr, "BGR")
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[0, 0].tolist() == [0, 0, 255]

    img = np.zeros((5, 5, 3), dtype=np.uint8)
    out = draw_boxes(img, [[1, 1, 3, 3]], (0, 255, 0))
    assert img.sum() == 0  # drawn on a copy
    assert out[1, 1].tolist() == [0, 255, 0] and out[2, 2].tolist() == [0, 0, 0]
    assert int((out[:, :, 1] == 255).sum()) == 8


def test_eval_batches_are_channels_last_on_cpu_where_chosen_and_training_batches_stay_nchw():
    from torch import nn

    from det.core.machine import inference_choices
    from det.core.modeling.inputs import inference_layout, normalize_and_pad_images

    backbone = nn.Module()
    backbone.size_divisibility, backbone.padding_constraints = 32, {}
    inputs = [{"image": torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)}]
    mean, std = torch.tensor([100.0, 110.0, 120.0]).view(3, 1, 1), torch.ones(3, 1, 1)

    backbone.train()
    train = normalize_and_pad_images(inputs, mean, std, backbone).tensor
    backbone.eval()
    infer = normalize_and_pad_images(inputs, mean, std, backbone).tensor
    assert train.shape == infer.shape == (1, 3, 64, 64)
    assert train.is_contiguous() and not train.is_contiguous(memory_format=torch.channels_last)
    # NHWC where this machine's choice says so (oneDNN levels), NCHW on the portable level
    assert infer.is_contiguous(memory_format=torch.channels_last) is inference_choices().channels_last
    assert torch.equal(train, infer)  # same values, only the memory layout differs

    assert inference_layout(torch.zeros(2, 3)).is_contiguous()  # not a batch of images: unchanged


def test_in_region_chunks_equals_one_call_and_keeps_one_chunk_alive():
    from det.core.modeling.inputs import in_region_chunks

    conv = torch.nn.Conv2d(4, 3, 3, padding=1)
    regions = torch.randn(60, 4, 7, 7)
    sizes = []

    def layers(x):
        sizes.append(x.shape[0])
        return conv(x)

    with torch.no_grad():
        assert torch.equal(in_region_chunks(layers, regions, per_chunk=25), conv(regions))
        assert sizes == [25, 25, 10]
        assert in_region_chunks(layers, regions[:0]).shape == (0, 3, 7, 7)
