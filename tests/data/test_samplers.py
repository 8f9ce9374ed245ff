"""GroupedBatchSampler (detectron2's data.samplers.grouped_batch_sampler)."""

from __future__ import annotations

import pytest


def test_grouped_batch_sampler_batches_within_groups():
    from torch.utils.data import SequentialSampler

    from det.data.samplers import GroupedBatchSampler

    group_ids = [0, 1, 1, 0, 1, 0, 0, 1, 1]
    sampler = GroupedBatchSampler(SequentialSampler(range(9)), group_ids, batch_size=2)
    assert list(sampler) == [[1, 2], [0, 3], [5, 6], [4, 7]]  # index 8 waits for a partner: dropped
    with pytest.raises(TypeError, match="len\\(\\) of GroupedBatchSampler is not defined"):
        len(sampler)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        GroupedBatchSampler(SequentialSampler(range(9)), group_ids, batch_size=0)
    with pytest.raises(ValueError, match=r"sampler must be a torch\.utils\.data\.Sampler, got list"):
        GroupedBatchSampler([0, 1], group_ids, batch_size=2)


def test_grouped_batch_sampler_is_detectron2s():
    from detectron2.data.samplers import GroupedBatchSampler as FromPackage
    from detectron2.data.samplers.grouped_batch_sampler import GroupedBatchSampler as FromModule

    from det.data.samplers import GroupedBatchSampler

    assert FromPackage is GroupedBatchSampler and FromModule is GroupedBatchSampler
