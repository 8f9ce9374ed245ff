"""The abstract base every det backbone derives from."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Iterable

from torch import nn

from det.core.layers import ShapeSpec

__all__ = ["Backbone", "check_in_features", "check_out_features"]


class Backbone(nn.Module, metaclass=ABCMeta):
    """Base class of backbones: an image batch in, named feature maps out.

    Invariant: ``forward(x)`` returns ``dict[str, Tensor]`` keyed by the names in
    ``_out_features``, and ``output_shape()`` gives a ShapeSpec (channels, stride) for each.
    Subclasses fill ``_out_features``, ``_out_feature_channels`` and ``_out_feature_strides``.

        backbone = build_backbone(cfg)
        features = backbone(images.tensor)          # {"res4": (N, 1024, H/16, W/16)}
        backbone.output_shape()["res4"].stride      # 16
    """

    def __init__(self):
        super().__init__()

    @abstractmethod
    def forward(self, x):
        """Compute features of the (N, C, H, W) batch ``x``.

        Returns:
            dict[str, Tensor]: feature name (e.g. "res2") -> feature map.
        """

    @property
    def size_divisibility(self) -> int:
        """Input height and width must be a multiple of this (0: no constraint).

        Networks that add a top-down path to a bottom-up one (FPN) need it so that feature maps
        of neighbouring levels line up exactly.
        """
        return 0

    @property
    def padding_constraints(self) -> dict[str, int]:
        """Generalises :attr:`size_divisibility`: optional ``{"size_divisibility": int,
        "square_size": int}`` (``square_size`` 0 = no padding to a square)."""
        return {}

    def output_shape(self):
        """Returns ``dict[str, ShapeSpec]``: channels and stride of every output feature."""
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }


def check_in_features(key: str, in_features, input_shape) -> list[str]:
    """``list(in_features)``, after a ValueError naming config ``key`` (e.g. ``MODEL.RPN.IN_FEATURES``)
    unless the backbone's ``input_shape`` (name -> ShapeSpec) has every one of them."""
    in_features = list(in_features)
    missing = [f for f in in_features if f not in input_shape]
    if missing:
        raise ValueError(
            f"{key} names {missing}, which the backbone does not produce; available features: {sorted(input_shape)}"
        )
    return in_features


def check_out_features(backbone: nn.Module, out_features: Iterable[str] | None, last: str) -> list[str]:
    """The output features a backbone was asked for (``[last]``, its last layer, when
    ``out_features`` is None), after a ValueError naming the backbone's class unless it is
    asked for at least one and each is one of its child modules."""
    out_features = [last] if out_features is None else list(out_features)
    owner = type(backbone).__name__
    if not out_features:
        raise ValueError(f"{owner} needs at least one output feature")
    children = [name for name, _ in backbone.named_children()]
    for name in out_features:
        if name not in children:
            raise ValueError(f"{owner}: out_features names {name!r}; its outputs are: {', '.join(children)}")
    return out_features
