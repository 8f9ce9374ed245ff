"""ExampleROIHeads, tested against the installed wheel (run from the example's folder)."""

from __future__ import annotations

import torch

from det.core import EventStorage, get_cfg
from det.core.layers import ShapeSpec
from det.core.registry import get_component, list_components
from det.structures import Boxes, Instances


def test_found_by_name_through_the_entry_point():
    infos = {c.name: c.distribution for c in list_components("ROI_HEADS")}
    assert infos["ExampleROIHeads"] == "det-roi-heads-example"
    assert get_component("ROI_HEADS", "ExampleROIHeads").__module__ == "det_roi_heads_example.heads"
    assert get_cfg().MODEL.EXAMPLE_ROI_HEADS.HIDDEN_DIM == 64


def test_box_head_output_shape():
    from det_roi_heads_example.heads import GatedMLPBoxHead

    head = GatedMLPBoxHead(ShapeSpec(channels=4, height=7, width=7), hidden_dim=8)
    assert head(torch.rand(3, 4, 7, 7)).shape == (3, 8)
    assert head.output_shape == ShapeSpec(channels=8)


def test_heads_train_on_proposals():
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.ROI_HEADS.NAME", "ExampleROIHeads", "MODEL.ROI_HEADS.IN_FEATURES", "['p3']",
                         "MODEL.ROI_HEADS.NUM_CLASSES", "2", "MODEL.EXAMPLE_ROI_HEADS.HIDDEN_DIM", "16"])
    heads = get_component("ROI_HEADS", "ExampleROIHeads")(cfg, {"p3": ShapeSpec(channels=4, stride=8)})
    assert heads.box_predictor.cls_score.in_features == 16
    proposals = Instances((64, 64))
    proposals.proposal_boxes = Boxes(torch.tensor([[0.0, 0, 20, 20], [30, 30, 60, 60]]))
    proposals.objectness_logits = torch.tensor([1.0, 0.0])
    targets = Instances((64, 64))
    targets.gt_boxes = Boxes(torch.tensor([[0.0, 0, 20, 22]]))
    targets.gt_classes = torch.tensor([1])
    with EventStorage(0):
        _, losses = heads.train()(None, {"p3": torch.rand(1, 4, 8, 8)}, [proposals], [targets])
    assert sorted(losses) == ["loss_box_reg", "loss_cls"]
