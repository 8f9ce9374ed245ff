"""DeepLab's semantic segmentation heads: ``DeepLabV3Head`` (ASPP on one feature map) and
``DeepLabV3PlusHead`` (ASPP plus a decoder over lower-level features)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from det.core.config import configurable
from det.core.layers import ASPP, Conv2d, DepthwiseSeparableConv2d, ShapeSpec, c2_xavier_fill, get_norm
from det.projects.deeplab.loss import DeepLabCE

__all__ = [
    "DeepLabV3Head",
    "DeepLabV3PlusHead",
    "build_sem_seg_loss",
    "decoder_args_from_config",
    "predictor_conv",
    "separable_conv5x5",
    "train_size_from_config",
    "two_conv3x3",
]


def build_sem_seg_loss(loss_type: str, ignore_value: int, top_k: float = 0.2) -> nn.Module:
    """The pixel loss named by ``MODEL.SEM_SEG_HEAD.LOSS_TYPE``: ``"cross_entropy"`` (mean over
    non-ignored pixels) or ``"hard_pixel_mining"`` (:class:`DeepLabCE` over the ``top_k``
    hardest pixels)."""
    if loss_type == "cross_entropy":
        return nn.CrossEntropyLoss(reduction="mean", ignore_index=ignore_value)
    if loss_type == "hard_pixel_mining":
        return DeepLabCE(ignore_label=ignore_value, top_k_percent_pixels=top_k)
    raise ValueError(f"Unexpected loss type: MODEL.SEM_SEG_HEAD.LOSS_TYPE={loss_type!r} "
                     "(expected 'cross_entropy' or 'hard_pixel_mining')")


def train_size_from_config(cfg: Any) -> tuple[int, int] | None:
    """The fixed training crop ``INPUT.CROP.SIZE`` (height, width) that ASPP's image pooling is
    sized for, or None when cropping is off."""
    if not cfg.INPUT.CROP.ENABLED:
        return None
    if cfg.INPUT.CROP.TYPE != "absolute":
        raise ValueError(f"DeepLab heads need INPUT.CROP.TYPE='absolute' when INPUT.CROP.ENABLED (ASPP pools "
                         f"over the crop's fixed size), got {cfg.INPUT.CROP.TYPE!r}")
    h, w = cfg.INPUT.CROP.SIZE
    return int(h), int(w)


def _check_targets(name: str, predictions: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    if targets is None:
        raise ValueError(f"{name} in training mode needs targets: (N, H, W) int64 class ids")
    if targets.shape[0] != predictions.shape[0] or targets.shape[-2:] != predictions.shape[-2:]:
        raise ValueError(f"{name}: targets of shape {tuple(targets.shape)} do not match the upsampled predictions "
                         f"(N, H, W) = {(predictions.shape[0], *predictions.shape[-2:])}; pad them like the images")
    return targets


def decoder_args_from_config(cfg: Any, section: str, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
    """:class:`DeepLabV3PlusHead`'s decoder arguments from ``cfg.MODEL.<section>`` (``IN_FEATURES``,
    ``PROJECT_CHANNELS``, ``ASPP_*``, ``CONVS_DIM``, ``COMMON_STRIDE``, ``NORM``) and the training
    crop: the part every head built on that decoder (Panoptic-DeepLab's two) reads alike."""
    head = cfg.MODEL[section]
    in_features = list(head.IN_FEATURES)
    missing = [f for f in in_features if f not in input_shape]
    if missing:
        raise ValueError(f"MODEL.{section}.IN_FEATURES has {missing}, which the backbone does not output "
                         f"(it outputs {sorted(input_shape)})")
    return {
        "input_shape": {k: v for k, v in input_shape.items() if k in in_features},
        "project_channels": list(head.PROJECT_CHANNELS),
        "aspp_dilations": list(head.ASPP_DILATIONS),
        "aspp_dropout": head.ASPP_DROPOUT,
        "decoder_channels": [head.CONVS_DIM] * (len(in_features) - 1) + [head.ASPP_CHANNELS],
        "common_stride": head.COMMON_STRIDE,
        "norm": head.NORM,
        "train_size": train_size_from_config(cfg),
    }


def two_conv3x3(in_channels: int, mid_channels: int, out_channels: int, norm: Any) -> nn.Sequential:
    """Two 3x3 conv + norm + ReLU, ``in -> mid -> out`` channels, xavier-initialised: DeepLabV3+'s
    ``fuse_conv`` and Panoptic-DeepLab's ``head``s (state-dict keys ``0.*``, ``1.*``)."""
    use_bias = norm == ""
    convs = nn.Sequential(
        Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=use_bias,
               norm=get_norm(norm, mid_channels), activation=F.relu),
        Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=use_bias,
               norm=get_norm(norm, out_channels), activation=F.relu),
    )
    for conv in convs:
        c2_xavier_fill(conv)
    return convs


def separable_conv5x5(in_channels: int, out_channels: int, norm: Any) -> DepthwiseSeparableConv2d:
    """One 5x5 depthwise-separable conv with norm + ReLU on both parts: the receptive field of
    two 3x3 convs at a fraction of the cost (:paper:`Panoptic-DeepLab`)."""
    return DepthwiseSeparableConv2d(in_channels, out_channels, kernel_size=5, padding=2,
                                    norm1=norm, activation1=F.relu, norm2=norm, activation2=F.relu)


def predictor_conv(in_channels: int, out_channels: int) -> Conv2d:
    """A 1x1 conv with bias, weights from N(0, 0.001^2) and zero bias (DeepLab's predictors)."""
    predictor = Conv2d(in_channels, out_channels, kernel_size=1)
    nn.init.normal_(predictor.weight, 0, 0.001)
    nn.init.constant_(predictor.bias, 0)
    return predictor


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ (:paper:`DeepLabV3+`): ASPP on the coarsest input feature, then a decoder that
    goes back up through the finer ones: each is projected by a 1x1 conv (``project_channels``),
    concatenated with the upsampled coarser result and fused (two 3x3 convs, or one 5x5
    depthwise-separable conv) into ``decoder_channels``; a 1x1 ``predictor`` gives the logits.

    Invariant: the stage of feature ``f`` is ``decoder[f]`` with ``project_conv`` (the ASPP for
    the coarsest) and ``fuse_conv`` (None for the coarsest) — detectron2's state-dict keys. With
    ``num_classes=None`` it is decoder-only: ``forward`` returns the decoder's features (what
    Panoptic-DeepLab's heads build on)::

        head = DeepLabV3PlusHead({"res2": ShapeSpec(channels=256, stride=4), "res5": ShapeSpec(channels=2048, stride=16)},
                                 project_channels=[48], aspp_dilations=[6, 12, 18], aspp_dropout=0.1,
                                 decoder_channels=[256, 256], common_stride=4, norm="BN", train_size=None,
                                 num_classes=19)
        logits, _ = head.eval()(features)       # (N, 19, H, W) at the input resolution
    """

    # final layers: they stay float32 under fast mode's bfloat16 (det.core.fast's protocol)
    float32_layers = ("predictor",)

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        project_channels: Sequence[int],
        aspp_dilations: Sequence[int],
        aspp_dropout: float,
        decoder_channels: Sequence[int],
        common_stride: int,
        norm: str | Callable[[int], nn.Module],
        train_size: tuple[int, int] | None,
        loss_weight: float = 1.0,
        loss_type: str = "cross_entropy",
        ignore_value: int = -1,
        num_classes: int | None = None,
        use_depthwise_separable_conv: bool = False,
    ) -> None:
        """
        Args:
            input_shape: the input features; ordered by stride, the last (coarsest) feeds ASPP and
                the others are the decoder's low-level features.
            project_channels: 1x1 projection channels of each low-level feature
                (``len(input_shape) - 1`` values).
            aspp_dilations: ASPP's three dilations; aspp_dropout: dropout after ASPP.
            decoder_channels: output channels of each decoder stage, finest first
                (``len(input_shape)`` values; the last is ASPP's).
            common_stride: stride of the decoder's output.
            norm: normalization of every conv.
            train_size: (height, width) of training crops: ASPP's image pooling then pools that
                extent (inputs must be multiples of it); None pools the whole map.
            loss_weight, loss_type ("cross_entropy" or "hard_pixel_mining"), ignore_value: the loss.
            num_classes: None builds no predictor (decoder only).
            use_depthwise_separable_conv: depthwise-separable convs in ASPP and the decoder.
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        if not shapes:
            raise ValueError("DeepLabV3PlusHead needs at least one input feature")
        self.in_features = [name for name, _ in shapes]
        in_channels = [shape.channels for _, shape in shapes]
        in_strides = [shape.stride for _, shape in shapes]
        if len(project_channels) != len(self.in_features) - 1:
            raise ValueError(f"Expected {len(self.in_features) - 1} project_channels (one per low-level feature of "
                             f"{self.in_features[:-1]}), got {list(project_channels)}")
        if len(decoder_channels) != len(self.in_features):
            raise ValueError(f"Expected {len(self.in_features)} decoder_channels (one per feature of "
                             f"{self.in_features}), got {list(decoder_channels)}")
        self.ignore_value = ignore_value
        self.common_stride = common_stride
        self.loss_weight = loss_weight
        self.loss_type = loss_type
        self.decoder_only = num_classes is None
        self.use_depthwise_separable_conv = use_depthwise_separable_conv

        pool_kernel_size = None
        if train_size is not None:
            stride = in_strides[-1]
            if train_size[0] % stride or train_size[1] % stride:
                raise ValueError(f"Crop size need to be divisible by encoder stride: INPUT.CROP.SIZE {tuple(train_size)} "
                                 f"is not a multiple of {self.in_features[-1]}'s stride {stride}")
            pool_kernel_size = (train_size[0] // stride, train_size[1] // stride)

        use_bias = norm == ""
        self.decoder = nn.ModuleDict()
        for idx, (name, channels) in enumerate(zip(self.in_features, in_channels)):
            stage = nn.ModuleDict()
            fuse_conv: nn.Module | None
            if idx == len(self.in_features) - 1:
                project_conv: nn.Module = ASPP(
                    channels, decoder_channels[-1], aspp_dilations, norm=norm, activation=F.relu,
                    pool_kernel_size=pool_kernel_size, dropout=aspp_dropout,
                    use_depthwise_separable_conv=use_depthwise_separable_conv,
                )  # fmt: skip
                fuse_conv = None
            else:
                project_conv = Conv2d(channels, project_channels[idx], kernel_size=1, bias=use_bias,
                                      norm=get_norm(norm, project_channels[idx]), activation=F.relu)
                c2_xavier_fill(project_conv)
                fused_in = project_channels[idx] + decoder_channels[idx + 1]
                if use_depthwise_separable_conv:
                    fuse_conv = separable_conv5x5(fused_in, decoder_channels[idx], norm)
                else:
                    fuse_conv = two_conv3x3(fused_in, decoder_channels[idx], decoder_channels[idx], norm)
            stage["project_conv"] = project_conv
            stage["fuse_conv"] = fuse_conv
            self.decoder[name] = stage

        if not self.decoder_only:
            assert num_classes is not None
            self.predictor = predictor_conv(decoder_channels[0], num_classes)
            self.loss = build_sem_seg_loss(loss_type, ignore_value)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            **decoder_args_from_config(cfg, "SEM_SEG_HEAD", input_shape),
            "loss_weight": head.LOSS_WEIGHT,
            "loss_type": head.LOSS_TYPE,
            "ignore_value": head.IGNORE_VALUE,
            "num_classes": head.NUM_CLASSES,
            "use_depthwise_separable_conv": head.USE_DEPTHWISE_SEPARABLE_CONV,
        }

    def forward(self, features: dict[str, torch.Tensor], targets: torch.Tensor | None = None) -> Any:
        """
        Returns:
            decoder-only: the decoder's (N, decoder_channels[0], H/s, W/s) features; otherwise
            training: ``(None, {"loss_sem_seg": ...})``; eval: ``((N, C, H, W) logits, {})``.
        """
        y = self.layers(features)
        if self.decoder_only:
            return y
        if self.training:
            return None, self.losses(y, targets)
        return F.interpolate(y, scale_factor=self.common_stride, mode="bilinear", align_corners=False), {}

    def layers(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """ASPP on the coarsest feature, then the decoder from coarse to fine; the predictor's
        logits unless decoder-only."""
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise ValueError(f"{type(self).__name__} needs features {self.in_features}; missing {missing}")
        y: torch.Tensor | None = None
        for name in reversed(self.in_features):
            stage = self.decoder[name]
            x = stage["project_conv"](features[name])
            if y is None:
                y = x  # the ASPP output
            else:
                y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
                y = stage["fuse_conv"](torch.cat([x, y], dim=1))
        assert y is not None
        return y if self.decoder_only else self.predictor(y)

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions.float(), scale_factor=self.common_stride, mode="bilinear",
                                    align_corners=False)
        loss = self.loss(predictions, _check_targets(type(self).__name__, predictions, targets))
        return {"loss_sem_seg": loss * self.loss_weight}


class DeepLabV3Head(nn.Module):
    """DeepLabV3 (:paper:`DeepLabV3`): ASPP on one feature map and a 1x1 ``predictor``.

    Invariant: the submodules are ``aspp`` and ``predictor`` (detectron2's state-dict keys); in
    eval ``forward`` returns (N, num_classes, H, W) logits upsampled by ``common_stride``, in
    training ``(None, {"loss_sem_seg": ...})``::

        head = DeepLabV3Head({"res5": ShapeSpec(channels=2048, stride=16)}, in_features=["res5"],
                             aspp_channels=256, aspp_dilations=[6, 12, 18], aspp_dropout=0.1,
                             conv_dims=256, num_classes=19, common_stride=16, norm="BN", train_size=None)
        logits, _ = head.eval()({"res5": res5})
    """

    float32_layers = ("predictor",)

    @configurable
    def __init__(
        self,
        input_shape: dict[str, ShapeSpec],
        *,
        in_features: Sequence[str],
        aspp_channels: int,
        aspp_dilations: Sequence[int],
        aspp_dropout: float,
        conv_dims: int,
        num_classes: int,
        common_stride: int,
        norm: str | Callable[[int], nn.Module],
        train_size: tuple[int, int] | None,
        loss_weight: float = 1.0,
        loss_type: str = "cross_entropy",
        ignore_value: int = -1,
        use_depthwise_separable_conv: bool = False,
    ) -> None:
        """``train_size`` (height, width) of training crops sizes ASPP's image pooling to
        ``train_size / common_stride`` (None pools the whole map); ``conv_dims`` is the
        predictor's input channels (detectron2's ``CONVS_DIM``; ASPP gives ``aspp_channels``)."""
        super().__init__()
        self.in_features = list(in_features)
        if len(self.in_features) != 1:
            raise ValueError(f"DeepLabV3Head takes exactly one input feature (MODEL.SEM_SEG_HEAD.IN_FEATURES), "
                             f"got {self.in_features}")
        if self.in_features[0] not in input_shape:
            raise ValueError(f"DeepLabV3Head: input feature {self.in_features[0]!r} is not among the backbone's "
                             f"outputs {sorted(input_shape)}")
        self.ignore_value = ignore_value
        self.common_stride = common_stride
        self.loss_weight = loss_weight
        self.loss_type = loss_type
        pool_kernel_size = None
        if train_size is not None:
            if train_size[0] % common_stride or train_size[1] % common_stride:
                raise ValueError(f"Crop size need to be divisible by output stride: INPUT.CROP.SIZE "
                                 f"{tuple(train_size)} is not a multiple of {common_stride}")
            pool_kernel_size = (train_size[0] // common_stride, train_size[1] // common_stride)
        self.aspp = ASPP(
            input_shape[self.in_features[0]].channels, aspp_channels, aspp_dilations, norm=norm,
            activation=F.relu, pool_kernel_size=pool_kernel_size, dropout=aspp_dropout,
            use_depthwise_separable_conv=use_depthwise_separable_conv,
        )  # fmt: skip
        self.predictor = predictor_conv(conv_dims, num_classes)
        self.loss = build_sem_seg_loss(loss_type, ignore_value)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: dict[str, ShapeSpec]) -> dict[str, Any]:
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": input_shape,
            "in_features": list(head.IN_FEATURES),
            "aspp_channels": head.ASPP_CHANNELS,
            "aspp_dilations": list(head.ASPP_DILATIONS),
            "aspp_dropout": head.ASPP_DROPOUT,
            "conv_dims": head.CONVS_DIM,
            "num_classes": head.NUM_CLASSES,
            "common_stride": head.COMMON_STRIDE,
            "norm": head.NORM,
            "train_size": train_size_from_config(cfg),
            "loss_weight": head.LOSS_WEIGHT,
            "loss_type": head.LOSS_TYPE,
            "ignore_value": head.IGNORE_VALUE,
            "use_depthwise_separable_conv": head.USE_DEPTHWISE_SEPARABLE_CONV,
        }

    def forward(self, features: dict[str, torch.Tensor], targets: torch.Tensor | None = None) -> Any:
        if self.in_features[0] not in features:
            raise ValueError(f"DeepLabV3Head needs feature {self.in_features[0]!r}; got {sorted(features)}")
        x = self.predictor(self.aspp(features[self.in_features[0]]))
        if self.training:
            return None, self.losses(x, targets)
        return F.interpolate(x, scale_factor=self.common_stride, mode="bilinear", align_corners=False), {}

    def losses(self, predictions: torch.Tensor, targets: torch.Tensor | None) -> dict[str, torch.Tensor]:
        predictions = F.interpolate(predictions.float(), scale_factor=self.common_stride, mode="bilinear",
                                    align_corners=False)
        loss = self.loss(predictions, _check_targets("DeepLabV3Head", predictions, targets))
        return {"loss_sem_seg": loss * self.loss_weight}
