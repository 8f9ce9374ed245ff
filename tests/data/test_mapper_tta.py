"""DatasetMapperTTA: one model input -> one view per (short-side length, flip), each recording the
transforms that take the original image to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from det.core.config import get_cfg
from det.data import DatasetMapperTTA
from det.data import transforms as T


def _image(h: int, w: int) -> torch.Tensor:
    # no symmetry: a mirrored view is told apart from the unflipped one
    return torch.arange(3 * h * w, dtype=torch.int64).reshape(3, h, w).remainder(251).to(torch.uint8)


def test_one_view_per_size_and_flip_with_expected_sizes():
    image = _image(60, 80)
    mapper = DatasetMapperTTA(min_sizes=[30, 90], max_size=100, flip=True)
    views = mapper({"image": image, "height": 60, "width": 80, "image_id": 7})

    # 90 px short side would make the long side 120 > max_size: capped at 100 (75 x 100)
    assert [tuple(v["image"].shape) for v in views] == [(3, 30, 40), (3, 30, 40), (3, 75, 100), (3, 75, 100)]
    assert [type(v["transforms"][-1]).__name__ for v in views] == [
        "ResizeTransform", "HFlipTransform", "ResizeTransform", "HFlipTransform"]
    for v in views:
        assert (v["height"], v["width"], v["image_id"]) == (60, 80, 7)  # the original size stays
        assert v["image"].dtype == torch.uint8 and v["image"].is_contiguous()
    # the flipped view is the unflipped one mirrored, pixel for pixel
    for plain, flipped in (views[0:2], views[2:4]):
        assert torch.equal(flipped["image"], plain["image"].flip(2))
        assert not torch.equal(flipped["image"], plain["image"])
    # the resized view is PIL's bilinear resize of the input (what DatasetMapper's resize does)
    expected = T.ResizeTransform(60, 80, 30, 40).apply_image(image.permute(1, 2, 0).numpy())
    assert torch.equal(views[0]["image"], torch.from_numpy(np.array(expected)).permute(2, 0, 1))


def test_transforms_map_the_original_image_into_each_view():
    views = DatasetMapperTTA(min_sizes=[30, 90], max_size=100, flip=True)(
        {"image": _image(60, 80), "height": 60, "width": 80})
    whole = np.array([[0.0, 0.0, 80.0, 60.0]])
    box = np.array([[8.0, 6.0, 20.0, 30.0]])
    for v, (s, flipped) in zip(views, [(0.5, False), (0.5, True), (1.25, False), (1.25, True)]):
        tfm = v["transforms"]
        h, w = v["image"].shape[1:]
        np.testing.assert_allclose(tfm.apply_box(whole.copy()), [[0, 0, w, h]], atol=1e-4)
        x0, y0, x1, y1 = box[0] * s
        want = [w - x1, y0, w - x0, y1] if flipped else [x0, y0, x1, y1]
        np.testing.assert_allclose(tfm.apply_box(box.copy()), [want], atol=1e-4)
        # and the inverse brings view coordinates back
        np.testing.assert_allclose(tfm.inverse().apply_box(tfm.apply_box(box.copy())), box, atol=1e-4)


def test_pre_resized_input_records_the_resize_from_the_original():
    # e.g. DatasetMapper already resized a 60x80 original to 120x160
    image = _image(120, 160)
    views = DatasetMapperTTA(min_sizes=[30], max_size=1000, flip=False)({"image": image, "height": 60, "width": 80})
    assert len(views) == 1
    (v,) = views
    assert tuple(v["image"].shape) == (3, 30, 40)  # sizes come from the image given
    np.testing.assert_allclose(v["transforms"].apply_box(np.array([[0.0, 0.0, 80.0, 60.0]])), [[0, 0, 40, 30]], atol=1e-4)
    np.testing.assert_allclose(v["transforms"].inverse().apply_box(np.array([[0.0, 0.0, 40.0, 30.0]])),
                               [[0, 0, 80, 60]], atol=1e-4)
    assert (v["height"], v["width"]) == (60, 80)


def test_missing_height_width_means_the_image_is_the_original():
    views = DatasetMapperTTA(min_sizes=[60], max_size=1000, flip=False)({"image": _image(60, 80)})
    (v,) = views
    assert isinstance(v["transforms"][0], T.NoOpTransform)
    assert torch.equal(v["image"], _image(60, 80))  # same size: PIL returns the pixels unchanged


def test_input_dict_is_not_modified_and_no_global_rng_is_drawn():
    image = _image(40, 50)
    d = {"image": image, "height": 40, "width": 50, "annotations": [{"bbox": [1, 2, 3, 4]}]}
    state = np.random.get_state()
    views = DatasetMapperTTA(min_sizes=[20, 40], max_size=1000, flip=True)(d)
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2] == after[2]  # same Mersenne Twister position
    assert set(d) == {"image", "height", "width", "annotations"} and d["image"] is image
    views[0]["annotations"][0]["bbox"][0] = 99
    assert d["annotations"][0]["bbox"][0] == 1


def test_from_config_reads_test_aug():
    cfg = get_cfg()
    mapper = DatasetMapperTTA(cfg)
    assert mapper.min_sizes == list(cfg.TEST.AUG.MIN_SIZES)
    assert (mapper.max_size, mapper.flip) == (cfg.TEST.AUG.MAX_SIZE, cfg.TEST.AUG.FLIP)
    cfg.TEST.AUG.MIN_SIZES = (20, 30, 40)
    cfg.TEST.AUG.FLIP = False
    views = DatasetMapperTTA(cfg)({"image": _image(40, 50)})
    assert [v["image"].shape[1] for v in views] == [20, 30, 40]


def test_single_channel_and_float_images():
    gray = DatasetMapperTTA(min_sizes=[20], max_size=1000, flip=True)({"image": _image(40, 50)[:1]})
    assert [tuple(v["image"].shape) for v in gray] == [(1, 20, 25), (1, 20, 25)]
    flt = DatasetMapperTTA(min_sizes=[20], max_size=1000, flip=False)({"image": _image(40, 50).float()})
    assert flt[0]["image"].dtype == torch.float32 and tuple(flt[0]["image"].shape) == (3, 20, 25)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_sizes": [], "max_size": 100, "flip": True}, "empty"),
        ({"min_sizes": [0, 10], "max_size": 100, "flip": True}, "positive ints"),
        ({"min_sizes": [10.5], "max_size": 100, "flip": True}, "positive ints"),
        ({"min_sizes": [10], "max_size": 0, "flip": True}, "max_size"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DatasetMapperTTA(**kwargs)


def test_bad_inputs_are_refused():
    mapper = DatasetMapperTTA(min_sizes=[20], max_size=100, flip=False)
    with pytest.raises(ValueError, match="'image'"):
        mapper({"file_name": "x.jpg"})
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        mapper({"image": _image(10, 10)[0]})
    with pytest.raises(ValueError, match="both 'height' and 'width'"):
        mapper({"image": _image(10, 10), "height": 10})
