"""ShapeSpec: the shape a module promises for one of its outputs."""

from __future__ import annotations

from typing import NamedTuple


class ShapeSpec(NamedTuple):
    """Shape of a feature map, known before any tensor flows: every field may be None (unknown).

    Modules exchange these instead of running a forward pass to learn their neighbours' shapes::

        spec = ShapeSpec(channels=256, stride=4)
        head = build_head(in_channels=spec.channels)
        assert spec.height is None

    Like detectron2's it is an immutable tuple ``(channels, height, width, stride)``; fields may also
    be given by position.
    """

    channels: int | None = None
    height: int | None = None
    width: int | None = None
    stride: int | None = None


__all__ = ["ShapeSpec"]
