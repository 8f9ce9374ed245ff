"""ResizeTransform (PIL for uint8, like detectron2) and ResizeShortestEdge."""

import sys

import numpy as np
import pytest
from PIL import Image

from det.core.transforms import Augmentation, NoOpTransform, ResizeShortestEdge, ResizeTransform, Transform


def test_uint8_resize_is_pil_bilinear():
    img = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    out = ResizeTransform(2, 2, 4, 4).apply_image(img)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 25, 75, 100], [50, 72, 117, 139], [150, 167, 200, 216], [200, 214, 241, 255]]
    # PIL's bilinear downscale filters over the whole support (not torch's 4-tap bilinear)
    assert ResizeTransform(2, 2, 1, 1).apply_image(img).tolist() == [[139]]
    # (H, W, 1) keeps its channel axis; (H, W, 3) resizes every channel the same way
    assert ResizeTransform(2, 2, 4, 4).apply_image(img[:, :, None])[:, :, 0].tolist() == out.tolist()
    rgb = ResizeTransform(2, 2, 4, 4).apply_image(np.stack([img] * 3, axis=2))
    assert rgb.shape == (4, 4, 3) and (rgb[:, :, 2] == out).all()


def test_float_resize_uses_interpolate_and_keeps_shape():
    img = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    out = ResizeTransform(2, 2, 4, 4).apply_image(img)
    assert out.dtype == np.float32 and out.shape == (4, 4)
    assert out[0].tolist() == [0.0, 0.25, 0.75, 1.0]  # bilinear, align_corners=False
    seg = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert (
        ResizeTransform(2, 2, 4, 4).apply_segmentation(seg).tolist()
        == np.repeat(np.repeat(seg, 2, 0), 2, 1).tolist()
    )


def test_coords_boxes_polygons_and_inverse():
    t = ResizeTransform(h=100, w=200, new_h=50, new_w=400)
    assert t.apply_coords(np.array([[10.0, 10.0]])).tolist() == [[20.0, 5.0]]
    assert t.apply_box(np.array([[10.0, 20.0, 30.0, 40.0]])).tolist() == [[20.0, 10.0, 60.0, 20.0]]
    (poly,) = t.apply_polygons([np.array([[0.0, 0.0], [200.0, 100.0]])])
    assert poly.tolist() == [[0.0, 0.0], [400.0, 50.0]]
    inv = t.inverse()
    assert (inv.h, inv.w, inv.new_h, inv.new_w) == (50, 400, 100, 200)
    assert inv.interp == Image.BILINEAR


def test_resize_transform_errors():
    t = ResizeTransform(4, 4, 2, 2)
    with pytest.raises(ValueError, match=r"\(h, w\) = \(4, 4\), got \(3, 4\)"):
        t.apply_image(np.zeros((3, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        t.apply_image([[0] * 4] * 4)


def test_get_output_shape_rounding_and_max_size():
    assert ResizeShortestEdge.get_output_shape(480, 640, 800, 1333) == (800, 1067)
    assert ResizeShortestEdge.get_output_shape(427, 320, 800, 1333) == (1068, 800)
    assert ResizeShortestEdge.get_output_shape(100, 1000, 800, 1333) == (133, 1333)
    assert ResizeShortestEdge.get_output_shape(3, 2, 5, sys.maxsize) == (8, 5)  # 7.5 rounds up


def test_resize_shortest_edge_sampling():
    img = np.zeros((480, 640, 3), dtype=np.uint8)
    fixed = ResizeShortestEdge([800, 800], 1333).get_transform(img)
    assert isinstance(fixed, ResizeTransform) and (fixed.new_h, fixed.new_w) == (800, 1067)

    np.random.seed(0)
    aug = ResizeShortestEdge((100, 200, 300), sample_style="choice")
    picked = {aug.get_transform(img).new_h for _ in range(30)}
    assert picked == {100, 200, 300}
    np.random.seed(0)
    ranged = ResizeShortestEdge((100, 110), sample_style="range")
    sizes = {ranged.get_transform(img).new_h for _ in range(60)}
    assert sizes <= set(range(100, 111)) and len(sizes) > 5
    assert isinstance(ResizeShortestEdge(0).get_transform(img), NoOpTransform)

    with pytest.raises(ValueError, match="'range' or 'choice'"):
        ResizeShortestEdge(800, sample_style="random")
    with pytest.raises(ValueError, match="two values"):
        ResizeShortestEdge((1, 2, 3), sample_style="range")


def test_augmentation_call_applies_to_input():
    class Holder:
        def __init__(self, image):
            self.image = image

        def transform(self, tfm: Transform):
            self.image = tfm.apply_image(self.image)

    h = Holder(np.zeros((10, 20, 3), dtype=np.uint8))
    tfm = ResizeShortestEdge(5)(h)
    assert isinstance(tfm, ResizeTransform) and h.image.shape == (5, 10, 3)
    assert "ResizeShortestEdge(short_edge_length=(5, 5)" in repr(ResizeShortestEdge(5))

    class Broken(Augmentation):
        def get_transform(self, image):
            return None

    with pytest.raises(TypeError, match="must return a Transform"):
        Broken()(h)
