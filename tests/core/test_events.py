"""EventStorage and HistoryBuffer semantics (detectron2.utils.events)."""

import pytest
import torch

from det.core import EventStorage, get_event_storage
from det.core.events import HistoryBuffer


def test_history_buffer():
    buf = HistoryBuffer(max_length=3)
    for i, v in enumerate([1.0, 2.0, 9.0, 4.0]):
        buf.update(v, i)
    assert buf.values() == [(2.0, 1), (9.0, 2), (4.0, 3)]
    assert buf.latest() == 4.0
    assert buf.median(3) == 4.0 and buf.median(2) == 6.5
    assert buf.avg(2) == 6.5
    assert buf.global_avg() == 4.0  # includes the dropped 1.0
    auto = HistoryBuffer()
    auto.update(5.0)
    auto.update(6.0)
    assert auto.values() == [(5.0, 0), (6.0, 1)]


def test_get_event_storage_outside_is_a_clear_error():
    with pytest.raises(RuntimeError, match="inside a 'with EventStorage"):
        get_event_storage()


def test_storage_stack_and_iteration():
    with EventStorage(start_iter=5) as outer:
        assert get_event_storage() is outer and outer.iter == 5
        with EventStorage() as inner:
            assert get_event_storage() is inner
        assert get_event_storage() is outer
        outer.step()
        assert outer.iter == 6 and outer.iteration == 6
        outer.iter = 10
        assert outer.iter == 10


def test_scalars_history_latest_and_smoothing():
    with EventStorage(0) as s:
        for v in [1.0, 3.0, 8.0]:
            s.put_scalar("loss", torch.tensor(v))
            s.put_scalar("lr", v / 10, smoothing_hint=False)
            s.step()
        s.put_scalars(a=1, b=2.5)
        assert s.latest()["loss"] == (8.0, 2)
        assert s.latest()["a"] == (1.0, 3) and isinstance(s.latest()["a"][0], float)
        assert s.history("loss").values() == [(1.0, 0), (3.0, 1), (8.0, 2)]
        smooth = s.latest_with_smoothing_hint(window_size=3)
        assert smooth["loss"] == (3.0, 2)  # median of the window
        assert smooth["lr"] == (pytest.approx(0.8), 2)  # raw latest value
        assert s.smoothing_hints() == {"loss": True, "lr": False, "a": True, "b": True}
        assert set(s.histories()) == {"loss", "lr", "a", "b"}
        s.put_scalar("x", 7.0, cur_iter=100)
        assert s.latest()["x"] == (7.0, 100)
        with pytest.raises(KeyError, match="No history metric available for nope"):
            s.history("nope")
        with pytest.raises(ValueError, match="different smoothing_hint"):
            s.put_scalar("lr", 1.0, smoothing_hint=True)


def test_name_scope_prefixes_and_restores():
    with EventStorage() as s:
        with s.name_scope("rpn"):
            s.put_scalar("num_pos_anchors", 3)
            with s.name_scope("inner/"):
                s.put_scalar("x", 1)
            s.put_scalar("y", 2)
        s.put_scalar("z", 3)
        assert sorted(s.latest()) == ["inner/x", "rpn/num_pos_anchors", "rpn/y", "z"]


def test_images_and_histograms():
    with EventStorage(start_iter=2) as s:
        img = torch.zeros(3, 4, 4)
        s.put_image("vis", img)
        assert s._vis_data == [("vis", img, 2)]
        s.clear_images()
        assert s._vis_data == []
        s.put_histogram("w", torch.tensor([0.0, 1.0, 1.0, 2.0]), bins=2)
        (h,) = s._histograms
        assert h["tag"] == "w" and h["min"] == 0.0 and h["max"] == 2.0 and h["num"] == 4
        assert h["sum"] == 4.0 and h["sum_squares"] == 6.0
        assert h["bucket_limits"] == [1.0, 2.0] and h["bucket_counts"] == [1.0, 3.0]
        assert h["global_step"] == 2
        s.clear_histograms()
        assert s._histograms == []
