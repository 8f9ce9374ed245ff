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
