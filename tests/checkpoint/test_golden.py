"""Both golden files of every case load into a model with the golden names, every key matched."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from det.checkpoint import Checkpointer, DetectionCheckpointer, IncompatibleCheckpointError

CASES = ("mask_rcnn_R_50_FPN", "faster_rcnn_R_50_C4", "keypoint_rcnn_R_50_FPN", "retinanet_R_50_FPN")
EXPECTED_KEYS = {"mask_rcnn_R_50_FPN": 302, "faster_rcnn_R_50_C4": 270, "keypoint_rcnn_R_50_FPN": 308,
                 "retinanet_R_50_FPN": 296}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("filename", ["model_final.pth", "model_final.pkl"])
def test_golden_file_loads_with_every_key_matched(case, filename, golden_dir, golden_state, helpers, caplog):
    expected = golden_state(case)
    assert len(expected) == EXPECTED_KEYS[case]
    model = helpers.module_from_state_dict(expected)
    caplog.set_level(logging.INFO, logger="det.checkpoint")

    extra = DetectionCheckpointer(model).load(str(golden_dir / case / filename), strict=True)

    helpers.assert_same_state(model, expected)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    if filename.endswith(".pkl"):
        assert extra == {"__author__": "Detectron2 Model Zoo", "matching_heuristics": True}
    else:
        assert extra == {}


@pytest.mark.parametrize("case", CASES)
def test_pkl_tensors_equal_pth_tensors(case, golden_dir, golden_state):
    with open(golden_dir / case / "model_final.pkl", "rb") as f:
        zoo = pickle.load(f, encoding="latin1")
    pth = golden_state(case)
    assert list(zoo["model"]) == list(pth)
    for name, array in zoo["model"].items():
        assert isinstance(array, np.ndarray)
        assert torch.equal(torch.from_numpy(array), pth[name]), name


class Wrapper(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.detector = inner


def test_heuristic_matching_maps_suffix_compatible_names(golden_dir, golden_state, helpers):
    # The model nests the golden tree one level deeper: "detector.backbone.bottom_up.stem.conv1.weight"
    # ends with the file's "backbone.bottom_up.stem.conv1.weight", which the .pkl allows matching.
    case = "mask_rcnn_R_50_FPN"
    expected = golden_state(case)
    model = Wrapper(helpers.module_from_state_dict(expected))
    DetectionCheckpointer(model).load(str(golden_dir / case / "model_final.pkl"), strict=True)
    helpers.assert_same_state(model.detector, expected)


def test_native_pth_is_not_heuristically_matched(golden_dir, golden_state, helpers, caplog):
    case = "retinanet_R_50_FPN"
    model = Wrapper(helpers.module_from_state_dict(golden_state(case)))
    before = helpers.snapshot(model)
    path = str(golden_dir / case / "model_final.pth")
    with pytest.raises(IncompatibleCheckpointError, match="not found in the checkpoint"):
        DetectionCheckpointer(model).load(path, strict=True)
    helpers.assert_same_state(model, before)

    caplog.set_level(logging.WARNING, logger="det.checkpoint")
    DetectionCheckpointer(model).load(path)
    helpers.assert_same_state(model, before)
    text = caplog.text
    assert "detector.head.cls_subnet.0.{weight, bias}" in text
    assert "The checkpoint state_dict contains keys that are not used by the model" in text
    assert "  head.cls_score.{weight, bias}" in text


def test_golden_last_checkpoint_is_found_and_resumed(golden_dir, golden_state, helpers):
    case = "faster_rcnn_R_50_C4"
    model = helpers.module_from_state_dict(golden_state(case))
    # save_to_disk=False: the shared folder is read-only and must stay untouched.
    checkpointer = Checkpointer(model, str(golden_dir / case), save_to_disk=False)
    assert checkpointer.has_checkpoint()
    assert checkpointer.get_checkpoint_file() == str(golden_dir / case / "model_final.pth")
    assert checkpointer.resume_or_load("", resume=True) == {}
    helpers.assert_same_state(model, golden_state(case))
