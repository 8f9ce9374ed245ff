"""Shared by the export tests: build a golden model and compare outputs with eager det."""

from __future__ import annotations

import torch

from det.checkpoint import DetectionCheckpointer
from det.core import build_model, get_cfg


def build_golden_model(case):
    cfg = get_cfg()
    cfg.merge_from_file(str(case.config_file))
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(case.pth))
    return model


def as_golden(instances) -> dict:
    """Eager det's Instances in the form of golden outputs.pt (for the shared matcher)."""
    fields = {k: (v.tensor if hasattr(v, "tensor") else v) for k, v in instances.get_fields().items()}
    fields["image_size"] = instances.image_size
    return fields


def eager_per_image(model, inputs) -> list[dict]:
    """The exported graph runs one image at a time; eager det on one image is what it must equal
    (padding of a batch changes the features, so batched outputs differ slightly)."""
    with torch.no_grad():
        return [model([x])[0] for x in inputs]


def assert_same_as_eager(outputs, eager, assert_matches_golden, *, mask_iou: float = 0.99) -> None:
    assert len(outputs) == len(eager)
    for ours, theirs in zip(outputs, eager):
        ours, theirs = ours["instances"], theirs["instances"]
        assert ours.image_size == theirs.image_size
        assert sorted(ours.get_fields()) == sorted(theirs.get_fields())
        assert len(ours) == len(theirs)
        pairs = assert_matches_golden(
            ours, as_golden(theirs), box_tol=0.05, score_tol=2e-3, mask_iou=mask_iou, max_unmatched=0
        )
        assert len(pairs) == len(theirs)


# --- small random models for the architectures that have no golden case ------------------------

# narrow R50-FPN (what test_export_semseg uses) with 3 classes, so that exporting takes seconds
SMALL_OPTS = [
    "MODEL.DEVICE", "cpu",
    "MODEL.RESNETS.DEPTH", "50",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "16",
    "MODEL.RESNETS.WIDTH_PER_GROUP", "4",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "16",
    "MODEL.FPN.OUT_CHANNELS", "16",
    "MODEL.ROI_HEADS.NUM_CLASSES", "3",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
    "MODEL.ROI_MASK_HEAD.CONV_DIM", "16",
    "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32",  # GroupNorm(32) in the panoptic head
    "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "4",
]  # fmt: skip

# prediction layers and the std of their weights: detectron2's initialisation (0.01, 0.001) on
# random features gives near-uniform scores, whose ties make "the same outputs" ill-defined
_PREDICTION_STD = {
    "objectness_logits": 0.02,
    "anchor_deltas": 0.01,
    "cls_score": 0.02,
    "bbox_pred": 0.01,
    "mask_head.predictor": 0.3,
}


def _calibrate_frozen_bn(model) -> None:
    """Set each FrozenBatchNorm2d's statistics to those of its input on one random image, in
    forward order, as trained statistics would: an untrained R50 grows activations into the
    thousands, where every score saturates."""
    image = torch.randint(0, 256, (3, 128, 128), generator=torch.Generator().manual_seed(1)).float()
    x = ((image - model.pixel_mean) / model.pixel_std)[None]

    def set_statistics(module, args):
        features = args[0].detach()
        module.running_mean.copy_(features.mean(dim=(0, 2, 3)))
        module.running_var.copy_(features.var(dim=(0, 2, 3)))

    hooks = [
        m.register_forward_pre_hook(set_statistics)
        for m in model.backbone.modules()
        if type(m).__name__ == "FrozenBatchNorm2d"
    ]
    try:
        # with gradients det's Conv2d calls its norm module (its in-place inference path skips hooks)
        with torch.enable_grad():
            model.backbone(x)
    finally:
        for hook in hooks:
            hook.remove()


def build_small_model(config_file, *opts: str):
    """A narrow random model from a detectron2 zoo YAML, in eval mode, with scores spread apart."""
    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
    cfg.merge_from_list([*SMALL_OPTS, *opts])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    _calibrate_frozen_bn(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, module in model.named_modules():
            std = next((s for suffix, s in _PREDICTION_STD.items() if name.endswith(suffix)), None)
            if std is not None:
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
    return model


# Mask IoU for these models' masks (~100-3000 pixels): a box edge that float rounding moves across
# a pixel centre (76.49999 vs 76.5) flips a whole row of the pasted mask, 35 pixels of a 1321 one
SMALL_MASK_IOU = 0.95


def small_inputs() -> list[dict]:
    """Two random images of different sizes (one rescaled by height/width): one exported program
    must serve both."""
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randint(0, 256, (3, 160, 224), generator=generator, dtype=torch.uint8),
            "height": 120,
            "width": 168,
        },
        {"image": torch.randint(0, 256, (3, 200, 136), generator=generator, dtype=torch.uint8)},
    ]


def assert_proposals_same_as_eager(outputs, eager, assert_matches_golden) -> None:
    """Proposals as class-0 detections, paired by box and logit (near-tied logits may swap order)."""
    assert len(outputs) == len(eager)
    for ours, theirs in zip(outputs, eager):
        assert sorted(ours) == ["proposals"]
        ours, theirs = ours["proposals"], theirs["proposals"]
        assert ours.image_size == theirs.image_size
        assert sorted(ours.get_fields()) == ["objectness_logits", "proposal_boxes"]
        assert len(ours) == len(theirs) > 0

        def as_detections(p):
            n = len(p)
            return {
                "pred_boxes": p.proposal_boxes.tensor,
                "scores": p.objectness_logits,
                "pred_classes": torch.zeros(n, dtype=torch.int64),
                "image_size": p.image_size,
            }

        pairs = assert_matches_golden(
            as_detections(ours), as_detections(theirs), box_tol=0.05, score_tol=2e-3, max_unmatched=0
        )
        assert len(pairs) == len(theirs)
