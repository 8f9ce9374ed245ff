"""Tiny stand-ins for a backbone, a proposal generator and ROI heads: enough to drive the
meta-architectures through training and inference without the real heads."""

import torch
from torch import nn

from det.core.events import get_event_storage
from det.core.modeling import Backbone
from det.structures import Boxes, Instances


class ToyBackbone(Backbone):
    def __init__(self, in_channels=3, size_divisibility=8):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, stride=4, padding=1)
        self._size_divisibility = size_divisibility
        self._out_features = ["toy"]
        self._out_feature_channels = {"toy": 4}
        self._out_feature_strides = {"toy": 4}

    @property
    def size_divisibility(self):
        return self._size_divisibility

    def forward(self, x):
        return {"toy": self.conv(x)}


class ToyProposalGenerator(nn.Module):
    """One proposal per image: the left half of the (unpadded) image."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, images, features, gt_instances=None):
        self.seen.append((images, gt_instances))
        proposals = []
        for h, w in images.image_sizes:
            p = Instances((h, w))
            p.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, w / 2, float(h)]]))
            p.objectness_logits = torch.tensor([1.5])
            proposals.append(p)
        losses = {"loss_rpn_cls": features["toy"].mean() * 0 + 0.25} if self.training else {}
        return proposals, losses


class ToyROIHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = nn.Parameter(torch.tensor(0.5))

    def forward(self, images, features, proposals, targets=None):
        if self.training:
            get_event_storage().put_scalar("roi_head/num_fg_samples", 1)
            return [], {"loss_cls": self.score * 2}
        results = []
        for p in proposals:
            r = Instances(p.image_size)
            r.pred_boxes = p.proposal_boxes.clone()
            r.scores = self.score.detach().expand(len(p))
            r.pred_classes = torch.zeros(len(p), dtype=torch.int64)
            results.append(r)
        return results, {}

    def forward_with_given_boxes(self, features, instances):
        for x in instances:
            x.pred_masks_seen = torch.ones(len(x))
        return instances
