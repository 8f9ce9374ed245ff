"""ShapeSpec: the shape a module promises for one of its outputs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple, dataclass


@dataclass
class ShapeSpec:
    """Shape of a feature map, known before any tensor flows: every field may be None (unknown).

    Modules exchange these instead of running a forward pass to learn their neighbours' shapes::

        spec = ShapeSpec(channels=256, stride=4)
        head = build_head(in_channels=spec.channels)
        assert spec.height is None

    A dataclass, as detectron2's: fields may be given by position or keyword, and a LazyConfig
    can hold one (omegaconf keeps dataclasses as structured configs and ``instantiate`` rebuilds
    them; a tuple would become a plain list). Iterating gives ``(channels, height, width,
    stride)``, so code that unpacked detectron2's older namedtuple keeps working.
    """

    channels: int | None = None
    height: int | None = None
    width: int | None = None
    stride: int | None = None

    def __iter__(self) -> Iterator[int | None]:
        return iter(astuple(self))


__all__ = ["ShapeSpec"]
