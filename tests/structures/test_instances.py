"""Instances: equal-length fields, attribute access, indexing and concatenation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from det.structures import BitMasks, Boxes, Instances, Keypoints, PolygonMasks


def make(n: int = 4) -> Instances:
    inst = Instances((30, 40))
    inst.pred_boxes = Boxes(torch.arange(4 * n, dtype=torch.float32).view(n, 4))
    inst.scores = torch.linspace(0.1, 0.9, n)
    inst.names = [f"obj{i}" for i in range(n)]
    return inst


def test_fields_are_attributes():
    inst = make()
    assert inst.image_size == (30, 40)
    assert len(inst) == 4
    assert inst.has("scores") and not inst.has("pred_classes")
    assert inst.get("names") == ["obj0", "obj1", "obj2", "obj3"]
    assert list(inst.get_fields()) == ["pred_boxes", "scores", "names"]
    inst.set("pred_classes", torch.tensor([3, 1, 4, 1]))
    assert inst.pred_classes.tolist() == [3, 1, 4, 1]
    inst.remove("names")
    assert not inst.has("names")
    with pytest.raises(AttributeError, match="Cannot find field 'names'"):
        inst.names  # noqa: B018
    with pytest.raises(KeyError, match="names"):
        inst.remove("names")
    with pytest.raises(KeyError, match="names"):
        inst.get("names")


def test_kwargs_constructor():
    inst = Instances((5, 5), scores=torch.ones(2), labels=torch.zeros(2, dtype=torch.long))
    assert len(inst) == 2 and inst.labels.dtype == torch.long


def test_length_mismatch_is_a_clear_error():
    inst = make()
    with pytest.raises(ValueError, match="length 3 to an Instances of length 4"):
        inst.bad = torch.zeros(3)
    with pytest.raises(ValueError, match="length 2"):
        Instances((1, 1), a=torch.zeros(3), b=torch.zeros(2))
    with pytest.raises(TypeError, match="must have a length"):
        inst.value = 3.0


def test_empty_instances():
    inst = Instances((10, 10))
    with pytest.raises(NotImplementedError, match="Empty Instances"):
        len(inst)
    assert "num_instances=0" in str(inst)
    zero = Instances((10, 10), pred_boxes=Boxes(torch.zeros(0, 4)))
    assert len(zero) == 0
    assert len(zero[torch.zeros(0, dtype=torch.bool)]) == 0


def test_not_iterable():
    with pytest.raises(NotImplementedError, match="not iterable"):
        iter(make())


def test_int_indexing_keeps_a_length_one_instances():
    inst = make()
    one = inst[2]
    assert len(one) == 1
    assert one.pred_boxes.tensor.tolist() == [[8.0, 9.0, 10.0, 11.0]]
    assert one.scores.shape == (1,)
    assert one.names == ["obj2"]
    assert inst[-1].names == ["obj3"]
    assert inst[np.int64(1)].names == ["obj1"]
    assert inst[torch.tensor(3)].names == ["obj3"]
    with pytest.raises(IndexError, match="out of range"):
        inst[4]
    with pytest.raises(IndexError, match="out of range"):
        inst[-5]


def test_slice_bool_and_long_indexing():
    inst = make()
    assert inst[1:3].names == ["obj1", "obj2"]
    keep = inst.scores > 0.5
    sub = inst[keep]
    assert sub.names == ["obj2", "obj3"]
    assert sub.pred_boxes.tensor[:, 0].tolist() == [8.0, 12.0]
    order = torch.tensor([3, 0])
    sub = inst[order]
    assert sub.names == ["obj3", "obj0"]
    assert sub.scores.tolist() == pytest.approx([0.9, 0.1])
    assert sub.image_size == (30, 40)
    with pytest.raises(IndexError, match=r"bool mask of shape \(3,\), expected \(4,\)"):
        inst[torch.tensor([True, False, True])]


def test_cat():
    a = make(2)
    b = make(3)
    c = Instances.cat([a, b])
    assert len(c) == 5
    assert c.names == ["obj0", "obj1", "obj0", "obj1", "obj2"]
    assert isinstance(c.pred_boxes, Boxes)
    assert c.pred_boxes.tensor.shape == (5, 4)
    assert Instances.cat([a]) is a
    with pytest.raises(ValueError, match="image sizes differ"):
        Instances.cat(
            [a, Instances((1, 1), scores=torch.ones(1), pred_boxes=Boxes(torch.ones(1, 4)), names=["x"])]
        )
    with pytest.raises(ValueError, match="fields differ"):
        Instances.cat([a, Instances((30, 40), scores=torch.ones(1))])
    with pytest.raises(ValueError, match="non-empty"):
        Instances.cat([])
    with pytest.raises(TypeError, match="only Instances"):
        Instances.cat([a, "b"])
    with pytest.raises(ValueError, match="Unsupported type"):
        Instances.cat([Instances((1, 1), x=(1, 2)), Instances((1, 1), x=(3,))])


def test_cat_keeps_the_first_items_fields():
    # detectron2: extra fields of later items are dropped; a missing one is an error
    a = Instances((4, 4), scores=torch.tensor([0.5]))
    b = Instances((4, 4), scores=torch.tensor([0.7, 0.9]), extra=torch.zeros(2))
    c = Instances.cat([a, b])
    assert list(c.get_fields()) == ["scores"]
    assert c.scores.tolist() == pytest.approx([0.5, 0.7, 0.9])
    with pytest.raises(ValueError, match=r"fields differ: item 1 lacks \['extra'\]"):
        Instances.cat([b, a])


def test_cat_with_masks_and_keypoints():
    def one(n):
        return Instances(
            (8, 8),
            gt_masks=BitMasks(torch.ones(n, 8, 8, dtype=torch.bool)),
            gt_polys=PolygonMasks([[np.array([0, 0, 1, 0, 1, 1.0])]] * n),
            gt_keypoints=Keypoints(torch.zeros(n, 17, 3)),
        )

    c = Instances.cat([one(1), one(2)])
    assert len(c) == 3
    assert c.gt_masks.tensor.shape == (3, 8, 8)
    assert len(c.gt_polys) == 3
    assert c.gt_keypoints.tensor.shape == (3, 17, 3)
    assert len(c[torch.tensor([True, False, True])].gt_polys) == 2


def test_to_moves_fields_that_have_to():
    inst = make()
    moved = inst.to(torch.float64)
    assert moved.scores.dtype == torch.float64
    assert moved.pred_boxes.tensor.dtype == torch.float32  # boxes are float32 by contract
    assert moved.names == inst.names
    assert moved.image_size == inst.image_size


def test_str_and_pickle():
    inst = make(1)
    text = str(inst)
    assert text.startswith(
        "Instances(num_instances=1, image_height=30, image_width=40, fields=[pred_boxes: Boxes("
    )
    back = pickle.loads(pickle.dumps(inst))
    assert back.names == ["obj0"] and back.image_size == (30, 40)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 12).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.booleans(), min_size=n, max_size=n))
    )
)
def test_bool_and_index_selection_agree_with_python(data):
    n, mask = data
    inst = Instances(
        (5, 5), idx=torch.arange(n), names=[str(i) for i in range(n)], boxes=Boxes(torch.rand(n, 4))
    )
    sub = inst[torch.tensor(mask, dtype=torch.bool)]
    expected = [i for i in range(n) if mask[i]]
    assert sub.idx.tolist() == expected
    assert sub.names == [str(i) for i in expected]
    assert len(sub.boxes) == len(expected)
    by_index = inst[torch.tensor(expected, dtype=torch.long)]
    assert by_index.names == sub.names
    if n:
        assert inst[n // 2].idx.tolist() == [n // 2]
        assert inst[: n // 2].names == [str(i) for i in range(n // 2)]
