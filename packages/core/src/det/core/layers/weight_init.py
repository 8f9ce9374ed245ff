"""Weight initialisations of Caffe2/Detectron, as detectron2 (through fvcore) uses them.

Kept with their Caffe2 names so that a model initialised here starts from the same distribution as
the detectron2 model it re-implements.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def c2_xavier_fill(module: Any) -> None:
    """Caffe2's "XavierFill" on ``module.weight`` (uniform, ``a=1`` Kaiming) and zero bias.

    Caffe2's XavierFill is PyTorch's Kaiming uniform with ``a=1`` (fan_in), not PyTorch's xavier.
    """
    _check_has_weight(module, "c2_xavier_fill")
    nn.init.kaiming_uniform_(module.weight, a=1)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, 0)


def c2_msra_fill(module: Any) -> None:
    """Caffe2's "MSRAFill" on ``module.weight`` (normal, fan_out, ReLU gain) and zero bias."""
    _check_has_weight(module, "c2_msra_fill")
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, 0)


def _check_has_weight(module: object, fn: str) -> None:
    if getattr(module, "weight", None) is None:
        raise TypeError(
            f"{fn} expects a module with a `weight` parameter (e.g. nn.Conv2d), got {type(module).__name__}"
        )


__all__ = ["c2_msra_fill", "c2_xavier_fill"]
