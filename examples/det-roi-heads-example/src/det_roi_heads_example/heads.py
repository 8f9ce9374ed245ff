"""``ExampleROIHeads``: detectron2's StandardROIHeads, except for the box head.

Everything else (proposal sampling, the Fast R-CNN predictor, losses, inference, optional mask and
keypoint heads) is inherited; only ``_init_box_head`` changes, which is how detectron2 intends
StandardROIHeads to be customised.
"""

from __future__ import annotations

import torch
from torch import nn

from det.core.config import configurable
from det.core.layers import ShapeSpec
from det.core.modeling import ROIPooler
from det.heads.roi import FastRCNNOutputLayers, StandardROIHeads


class GatedMLPBoxHead(nn.Module):
    """Box head: channel-wise gate from the pooled region's mean, then a two-layer MLP.

    Invariant: maps (R, C, H, W) region features to (R, hidden_dim); ``output_shape`` says so::

        head = GatedMLPBoxHead(ShapeSpec(channels=16, height=7, width=7), hidden_dim=32)
        head(torch.rand(5, 16, 7, 7)).shape   # (5, 32)
    """

    @configurable
    def __init__(self, input_shape: ShapeSpec, *, hidden_dim: int):
        super().__init__()
        if input_shape.height is None or input_shape.width is None:
            raise ValueError(f"GatedMLPBoxHead needs the pooled height and width, got {input_shape}")
        channels = input_shape.channels
        self.gate = nn.Linear(channels, channels)
        self.fc1 = nn.Linear(channels * input_shape.height * input_shape.width, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.hidden_dim = hidden_dim

    @classmethod
    def from_config(cls, cfg, input_shape):
        return {"input_shape": input_shape, "hidden_dim": cfg.MODEL.EXAMPLE_ROI_HEADS.HIDDEN_DIM}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.gate(x.mean(dim=(2, 3))))
        x = x * gate[:, :, None, None]
        x = torch.relu(self.fc1(x.flatten(1)))
        return torch.relu(self.fc2(x))

    @property
    def output_shape(self) -> ShapeSpec:
        return ShapeSpec(channels=self.hidden_dim)


class ExampleROIHeads(StandardROIHeads):
    """StandardROIHeads whose box head is always a :class:`GatedMLPBoxHead`.

    Invariant: same attributes, parameters outside ``box_head`` and outputs as StandardROIHeads::

        cfg.MODEL.ROI_HEADS.NAME = "ExampleROIHeads"
        model = build_model(cfg)
        type(model.roi_heads.box_head).__name__   # "GatedMLPBoxHead"
    """

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        in_features = list(cfg.MODEL.ROI_HEADS.IN_FEATURES)
        resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        channels = {input_shape[f].channels for f in in_features}
        if len(channels) != 1:
            raise ValueError(f"ExampleROIHeads needs equally wide input features, got {sorted(channels)}")
        box_pooler = ROIPooler(
            output_size=resolution,
            scales=tuple(1.0 / input_shape[f].stride for f in in_features),
            sampling_ratio=cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO,
            pooler_type=cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE,
        )
        box_head = GatedMLPBoxHead(cfg, ShapeSpec(channels=channels.pop(), height=resolution, width=resolution))
        return {
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_head": box_head,
            "box_predictor": FastRCNNOutputLayers(cfg, box_head.output_shape),
        }
