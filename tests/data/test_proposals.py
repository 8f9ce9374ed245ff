"""Precomputed proposal files (DATASETS.PROPOSAL_FILES_*): loaded safely into dataset dicts, then
turned into the model's ``proposals`` by the mapper's utility, as detectron2 does."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from det.checkpoint import UnsafeCheckpointError
from det.data import DatasetCatalog, get_detection_dataset_dicts, load_proposals_into_dataset
from det.data.detection_utils import transform_proposals
from det.data.transforms import NoOpTransform, TransformList
from det.structures import BoxMode


def _records():
    return [{"image_id": 7, "height": 20, "width": 30}, {"image_id": 3, "height": 20, "width": 30}]


def _write(path, payload):
    with open(path, "wb") as f:
        pickle.dump(payload, f)
    return str(path)


def test_proposals_join_records_by_image_id_sorted_by_logit(tmp_path):
    path = _write(tmp_path / "p.pkl", {
        "ids": [3, 7],
        "boxes": [np.array([[0, 0, 5, 5]], dtype=np.float32),
                  np.array([[1, 1, 4, 4], [2, 2, 9, 9], [0, 0, 1, 1]], dtype=np.float32)],
        "objectness_logits": [np.array([0.5], dtype=np.float32), np.array([0.1, 0.9, 0.4], dtype=np.float32)],
        "bbox_mode": int(BoxMode.XYXY_ABS),
    })
    first, second = load_proposals_into_dataset(_records(), path)
    assert first["image_id"] == 7
    np.testing.assert_array_equal(first["proposal_objectness_logits"], np.float32([0.9, 0.4, 0.1]))
    np.testing.assert_array_equal(first["proposal_boxes"], [[2, 2, 9, 9], [0, 0, 1, 1], [1, 1, 4, 4]])
    assert first["proposal_bbox_mode"] == BoxMode.XYXY_ABS
    np.testing.assert_array_equal(second["proposal_boxes"], [[0, 0, 5, 5]])

    transform_proposals(first, (20, 30), TransformList([NoOpTransform()]), proposal_topk=2)
    proposals = first["proposals"]
    assert proposals.proposal_boxes.tensor.tolist() == [[2, 2, 9, 9], [0, 0, 1, 1]]
    assert torch.equal(proposals.objectness_logits, torch.tensor([0.9, 0.4]))


def test_detectron1_key_names_and_default_box_mode(tmp_path):
    path = _write(tmp_path / "p.pkl", {"indexes": [7, 3], "boxes": [np.zeros((1, 4)), np.ones((1, 4))],
                                       "scores": [np.zeros(1), np.ones(1)]})
    first, _ = load_proposals_into_dataset(_records(), path)
    assert first["proposal_bbox_mode"] == BoxMode.XYXY_ABS
    np.testing.assert_array_equal(first["proposal_boxes"], np.zeros((1, 4)))


def test_missing_image_and_missing_keys_are_clear_errors(tmp_path):
    path = _write(tmp_path / "p.pkl", {"ids": [7], "boxes": [np.zeros((1, 4))], "objectness_logits": [np.zeros(1)]})
    with pytest.raises(ValueError, match="no proposals for image_id 3"):
        load_proposals_into_dataset(_records(), path)
    path = _write(tmp_path / "q.pkl", {"ids": [7, 3]})
    with pytest.raises(ValueError, match=r"lacks \['boxes', 'objectness_logits'\]"):
        load_proposals_into_dataset(_records(), path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch should-never-exist",))


def test_a_proposal_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / "evil.pkl", {"ids": [7, 3], "boxes": _Exploit(), "objectness_logits": []})
    with pytest.raises(UnsafeCheckpointError):
        load_proposals_into_dataset(_records(), path)
    assert not (tmp_path / "should-never-exist").exists()


def test_dataset_dicts_take_one_proposal_file_per_dataset(tmp_path):
    name = "proposals_test_dataset"
    DatasetCatalog.register(name, _records)
    try:
        path = _write(tmp_path / "p.pkl", {"ids": [7, 3], "boxes": [np.zeros((1, 4)), np.ones((1, 4))],
                                           "objectness_logits": [np.zeros(1), np.ones(1)]})
        dicts = get_detection_dataset_dicts(name, filter_empty=False, proposal_files=[path])
        assert [d["image_id"] for d in dicts] == [7, 3] and all("proposal_boxes" in d for d in dicts)
        with pytest.raises(ValueError, match="one file per dataset"):
            get_detection_dataset_dicts(name, proposal_files=[path, path])
    finally:
        DatasetCatalog.remove(name)
