"""Anchor generators, ROIPooler level assignment and output postprocessing."""

import math

import pytest
import torch

from det.core.modeling import (
    DefaultAnchorGenerator,
    ROIPooler,
    RotatedAnchorGenerator,
    assign_boxes_to_levels,
    convert_boxes_to_pooler_format,
    detector_postprocess,
    sem_seg_postprocess,
)
from det.structures import Boxes, Instances

R = math.sqrt(2.0)


def test_cell_anchors_size_32_ratios_half_one_two():
    gen = DefaultAnchorGenerator(sizes=[[32]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[16])
    # area 32*32 kept; h / w = ratio
    expected = torch.tensor(
        [
            [-16 * R, -8 * R, 16 * R, 8 * R],
            [-16.0, -16.0, 16.0, 16.0],
            [-8 * R, -16 * R, 8 * R, 16 * R],
        ]
    )
    torch.testing.assert_close(next(iter(gen.cell_anchors)), expected)
    assert gen.num_anchors == [3] and gen.num_cell_anchors == [3]


def test_grid_anchors_order_and_offset():
    gen = DefaultAnchorGenerator(sizes=[[32]], aspect_ratios=[[1.0]], strides=[16], offset=0.5)
    (anchors,) = gen([torch.zeros(1, 4, 2, 3)])
    assert isinstance(anchors, Boxes) and anchors.tensor.shape == (6, 4)
    centers = anchors.get_centers()
    # row-major over (y, x), centres at (x + 0.5) * stride
    assert centers.tolist() == [[8, 8], [24, 8], [40, 8], [8, 24], [24, 24], [40, 24]]
    gen0 = DefaultAnchorGenerator(sizes=[[32]], aspect_ratios=[[1.0]], strides=[16], offset=0.0)
    assert gen0([torch.zeros(1, 4, 2, 3)])[0].tensor[1].tolist() == [0.0, -16.0, 32.0, 16.0]


def test_anchor_params_broadcast_and_not_in_state_dict():
    gen = DefaultAnchorGenerator(sizes=[[32], [64]], aspect_ratios=[0.5, 1.0, 2.0], strides=[4, 8])
    assert gen.num_anchors == [3, 3]
    assert list(gen.cell_anchors)[1][1].tolist() == [-32.0, -32.0, 32.0, 32.0]
    assert dict(gen.state_dict()) == {}
    a = gen([torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)])
    assert [len(x) for x in a] == [48, 12]
    with pytest.raises(ValueError, match="number of input features is 2"):
        DefaultAnchorGenerator(sizes=[[32], [64], [128]], aspect_ratios=[[1.0]], strides=[4, 8])
    with pytest.raises(ValueError, match="offset"):
        DefaultAnchorGenerator(sizes=[[32]], aspect_ratios=[[1.0]], strides=[4], offset=1.0)
    with pytest.raises(ValueError, match="2 feature levels, got 1"):
        gen([torch.zeros(1, 1, 4, 4)])


def test_anchor_generator_from_config():
    from det.core.config import get_cfg
    from det.core.layers import ShapeSpec

    cfg = get_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    shapes = [ShapeSpec(channels=8, stride=s) for s in (4, 8, 16, 32, 64)]
    gen = DefaultAnchorGenerator(cfg, shapes)
    assert gen.strides == [4, 8, 16, 32, 64] and gen.offset == 0.0
    assert gen.num_anchors == [3] * 5


def test_rotated_anchors():
    gen = RotatedAnchorGenerator(sizes=[[32]], aspect_ratios=[[1.0, 4.0]], strides=[16], angles=[[0, 90]])
    assert next(iter(gen.cell_anchors)).tolist() == [
        [0, 0, 32, 32, 0],
        [0, 0, 32, 32, 90],
        [0, 0, 16, 64, 0],
        [0, 0, 16, 64, 90],
    ]
    (anchors,) = gen([torch.zeros(1, 1, 1, 2)])
    assert anchors.tensor[4].tolist() == [24.0, 8.0, 32.0, 32.0, 0.0]


def test_assign_boxes_to_levels_fpn_equation():
    sizes = [224, 112, 448, 56, 10, 1000]
    boxes = Boxes(torch.tensor([[0.0, 0.0, s, s] for s in sizes]))
    levels = assign_boxes_to_levels(
        [boxes], min_level=2, max_level=5, canonical_box_size=224, canonical_level=4
    )
    assert levels.tolist() == [2, 1, 3, 0, 0, 3]


def test_convert_boxes_to_pooler_format():
    b1 = Boxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    b2 = Boxes(torch.tensor([[5.0, 6.0, 7.0, 8.0], [0.0, 0.0, 1.0, 1.0]]))
    assert convert_boxes_to_pooler_format([b1, b2]).tolist() == [
        [0, 1, 2, 3, 4],
        [1, 5, 6, 7, 8],
        [1, 0, 0, 1, 1],
    ]


def test_roipooler_multilevel_puts_each_box_from_its_level():
    pooler = ROIPooler(
        2,
        scales=(1 / 4, 1 / 8),
        sampling_ratio=0,
        pooler_type="ROIPool",
        canonical_box_size=16,
        canonical_level=3,
    )
    assert (pooler.min_level, pooler.max_level) == (2, 3)
    x = [torch.full((1, 3, 16, 16), 1.0), torch.full((1, 3, 8, 8), 2.0)]
    boxes = [Boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 40.0, 40.0], [8.0, 8.0, 12.0, 12.0]]))]
    out = pooler(x, boxes)
    assert out.shape == (3, 3, 2, 2)
    assert out[:, 0, 0, 0].tolist() == [1.0, 2.0, 1.0]


def test_roipooler_errors():
    with pytest.raises(ValueError, match="Unknown pooler type"):
        ROIPooler(7, scales=(1 / 16,), sampling_ratio=0, pooler_type="ROIMagic")
    with pytest.raises(ValueError, match="power of 2"):
        ROIPooler(7, scales=(1 / 12,), sampling_ratio=0, pooler_type="ROIPool")
    with pytest.raises(ValueError, match="pyramid"):
        ROIPooler(7, scales=(1 / 4, 1 / 16), sampling_ratio=0, pooler_type="ROIPool")
    pooler = ROIPooler(7, scales=(1 / 4, 1 / 8), sampling_ratio=0, pooler_type="ROIPool")
    with pytest.raises(ValueError, match="num_level_assignments=2"):
        pooler([torch.zeros(1, 3, 8, 8)], [Boxes(torch.zeros(0, 4))])
    with pytest.raises(TypeError, match="must be lists"):
        pooler((torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 4, 4)), [Boxes(torch.zeros(0, 4))])


def test_detector_postprocess_scales_clips_and_drops_empty():
    r = Instances((100, 200))
    r.pred_boxes = Boxes(
        torch.tensor([[10.0, 20.0, 50.0, 60.0], [190.0, 90.0, 210.0, 110.0], [0.0, 0.0, 0.0, 10.0]])
    )
    r.scores = torch.tensor([0.9, 0.8, 0.7])
    r.pred_keypoints = torch.tensor([[[10.0, 20.0, 1.0]], [[100.0, 50.0, 0.5]], [[0.0, 0.0, 0.1]]])
    out = detector_postprocess(r, 50, 100)
    assert out.image_size == (50, 100)
    assert out.pred_boxes.tensor.tolist() == [[5.0, 10.0, 25.0, 30.0], [95.0, 45.0, 100.0, 50.0]]
    assert out.scores.tolist() == pytest.approx([0.9, 0.8])
    assert out.pred_keypoints.tolist() == [[[5.0, 10.0, 1.0]], [[50.0, 25.0, 0.5]]]
    with pytest.raises(ValueError, match="boxes"):
        detector_postprocess(Instances((10, 10), scores=torch.zeros(0)), 5, 5)


def test_detector_postprocess_proposals():
    r = Instances(
        (10, 10),
        proposal_boxes=Boxes(torch.tensor([[1.0, 1.0, 4.0, 4.0]])),
        objectness_logits=torch.tensor([2.0]),
    )
    out = detector_postprocess(r, 20, 30)
    assert out.proposal_boxes.tensor.tolist() == [[3.0, 2.0, 12.0, 8.0]]


def test_sem_seg_postprocess_crops_padding_then_resizes():
    logits = torch.zeros(2, 8, 8)
    logits[:, :6, :4] = 3.0  # the real image; the rest is padding
    out = sem_seg_postprocess(logits, (6, 4), 12, 8)
    assert out.shape == (2, 12, 8)
    assert torch.all(out == 3.0)


def test_roipooler_roialignv2_matches_torchvision_per_level():
    from torchvision.ops import roi_align

    g = torch.Generator().manual_seed(0)
    x = [torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 3, 16, 16, generator=g)]
    boxes = [
        Boxes(torch.tensor([[1.0, 2.0, 9.0, 12.0], [0.0, 0.0, 100.0, 90.0]])),
        Boxes(torch.tensor([[4.0, 4.0, 20.0, 30.0]])),
    ]
    pooler = ROIPooler(
        (3, 3),
        scales=(1 / 4, 1 / 8),
        sampling_ratio=2,
        pooler_type="ROIAlignV2",
        canonical_box_size=32,
        canonical_level=3,
    )
    out = pooler(x, boxes)
    # sizes 9.0, 94.9, 20.4 -> levels floor(3 + log2(s / 32)) clamped to [2, 3]: 2, 3, 2
    rois = convert_boxes_to_pooler_format(boxes)
    lvl2 = roi_align(x[0], rois[[0, 2]], (3, 3), spatial_scale=1 / 4, sampling_ratio=2, aligned=True)
    lvl3 = roi_align(x[1], rois[[1]], (3, 3), spatial_scale=1 / 8, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(out[[0, 2]], lvl2)
    torch.testing.assert_close(out[[1]], lvl3)


def test_detector_postprocess_pastes_masks_at_output_size():
    r = Instances((20, 20))
    r.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    r.scores = torch.tensor([0.9])
    r.pred_masks = torch.ones(1, 1, 28, 28)
    out = detector_postprocess(r, 40, 40)
    assert out.pred_masks.shape == (1, 40, 40) and out.pred_masks.dtype == torch.bool
    # the box scales to (0, 0, 20, 20): the mask fills exactly that square
    assert out.pred_masks[0, :20, :20].all() and not out.pred_masks[0, 20:, :].any()
    assert not out.pred_masks[0, :, 20:].any()


def test_modeling_reexports_every_name():
    import det.core.modeling as modeling

    for name in modeling.__all__:
        assert getattr(modeling, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        modeling.Nope  # noqa: B018
