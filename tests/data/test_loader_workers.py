"""The training loader at scale: the same batches (images, augmentations and annotations) in the
same order for NUM_WORKERS 0, 1, 2 and 4 given a seed; the dataset dicts serialized into one
shared buffer; the main process's random state left alone."""

from __future__ import annotations

import itertools
import pickle
import random
import uuid

import numpy as np
import pytest
import torch
from PIL import Image

from det.core.config import get_cfg
from det.data import (
    DatasetCatalog,
    DatasetFromList,
    DatasetMapper,
    MetadataCatalog,
    build_detection_train_loader,
)
from det.data import transforms as T
from det.data.common import (
    ToIterableDataset,
    _TorchSerializedList,
    set_default_dataset_from_list_serialize_method,
)
from det.data.samplers import TrainingSampler
from det.structures import BoxMode

_NUM_IMAGES = 20
_BATCHES = 6

# 4 workers on a 2-core machine is the point of the test, not a mistake
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    """20 small images, landscape and portrait, 1-3 polygon objects each (one crowd)."""
    root = tmp_path_factory.mktemp("loaderworkers")
    rng = np.random.RandomState(0)
    out = []
    for i in range(_NUM_IMAGES):
        h, w = (48, 64) if i % 3 else (64, 48)
        Image.fromarray(rng.randint(0, 255, (h, w, 3), dtype=np.uint8)).save(root / f"{i}.png")
        annotations = []
        for j in range(1 + i % 3):
            x, y = float(rng.randint(0, w - 20)), float(rng.randint(0, h - 20))
            size = float(rng.randint(6, 18))
            annotations.append({
                "bbox": [x, y, size, size], "bbox_mode": BoxMode.XYWH_ABS, "category_id": j % 2,
                "iscrowd": int(i == 5 and j == 0),
                "segmentation": [[x, y, x + size, y, x + size, y + size, x, y + size]],
            })
        out.append({"file_name": str(root / f"{i}.png"), "image_id": i, "height": h, "width": w,
                    "annotations": annotations})
    return out


def _cfg():
    cfg = get_cfg()
    cfg.INPUT.MIN_SIZE_TRAIN = (32, 40, 48, 56)  # a random choice per image
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
    cfg.INPUT.MAX_SIZE_TRAIN = 100
    cfg.INPUT.RANDOM_FLIP = "horizontal"
    cfg.MODEL.MASK_ON = True
    return cfg


def _mapper():
    # the default pipeline plus a random crop, so that every augmentation draws random numbers
    cfg = _cfg()
    return DatasetMapper(cfg, True, augmentations=[
        T.RandomCrop("relative_range", (0.7, 0.7)),
        T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, "choice"),
        T.RandomFlip(),
    ])


def _fingerprint(batches):
    """What a batch is: for each element its image id, image bytes, boxes, classes and masks."""
    return [
        [
            (d["image_id"], tuple(d["image"].shape), d["image"].sum().item(), d["image"][0, :3, :3].tolist(),
             d["instances"].gt_boxes.tensor.tolist(), d["instances"].gt_classes.tolist(),
             [p[0].tolist() for p in d["instances"].gt_masks.polygons])
            for d in batch
        ]
        for batch in batches
    ]


def _batches(dicts, num_workers, grouping, seed=7):
    loader = build_detection_train_loader(
        dicts, mapper=_mapper(), sampler=TrainingSampler(len(dicts), seed=seed), total_batch_size=4,
        aspect_ratio_grouping=grouping, num_workers=num_workers, seed=seed,
    )
    return _fingerprint(itertools.islice(iter(loader), _BATCHES))


@pytest.mark.slow
@pytest.mark.parametrize("grouping", [False, True], ids=["plain", "aspect_ratio_grouping"])
def test_same_batches_for_any_number_of_workers(dicts, grouping):
    reference = _batches(dicts, 0, grouping)
    assert len(reference) == _BATCHES and all(len(b) == 4 for b in reference)
    sizes = {shape for batch in reference for _, shape, *_ in batch}
    assert len(sizes) > 2  # the random resize did vary
    if grouping:  # each batch has one orientation
        assert all(len({s[1] >= s[2] for _, s, *_ in batch}) == 1 for batch in reference)
    for num_workers in (1, 2, 4):
        assert _batches(dicts, num_workers, grouping) == reference, num_workers
    # and the seed matters
    assert _batches(dicts, 0, grouping, seed=8) != reference


@pytest.mark.slow
def test_same_batches_from_the_config_for_any_num_workers(dicts):
    name = f"loaderworkers_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).thing_classes = ["a", "b"]
    try:
        cfg = _cfg()
        cfg.DATASETS.TRAIN = (name,)
        cfg.SOLVER.IMS_PER_BATCH = 2
        cfg.SEED = 3
        runs = []
        for num_workers in (0, 2):
            cfg.DATALOADER.NUM_WORKERS = num_workers
            runs.append(_fingerprint(itertools.islice(iter(build_detection_train_loader(cfg)), 4)))
        assert runs[0] == runs[1]
        # the sampler and the augmentations follow cfg.SEED
        cfg.SEED = 4
        assert _fingerprint(itertools.islice(iter(build_detection_train_loader(cfg)), 4)) != runs[0]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_seeded_loading_leaves_the_main_process_random_state_alone(dicts):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state())
    first = _batches(dicts[:8], 0, False)
    assert random.getstate() == states[0]
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.random.get_rng_state(), states[2])
    np.random.seed(99)  # what the main process draws does not change the batches either
    assert _batches(dicts[:8], 0, False) == first


def test_worker_shards_interleave_back_into_the_sampler_order():
    ds = DatasetFromList(list(range(100)), copy=False)
    for chunk in (1, 3):
        it = ToIterableDataset(ds, TrainingSampler(100, seed=0, shuffle=False), shard_chunk_size=chunk)
        loader = torch.utils.data.DataLoader(it, batch_size=chunk, num_workers=3,
                                             collate_fn=lambda b: b)
        got = [x for batch in itertools.islice(iter(loader), 30 // chunk) for x in batch]
        assert got == list(range(30))


def test_dataset_dicts_are_serialized_into_two_tensors(dicts):
    ds = DatasetFromList(dicts, copy=False)
    storage = ds._lst
    assert isinstance(storage, _TorchSerializedList)
    assert storage._lst.dtype == torch.uint8 and storage._addr.dtype == torch.int64
    assert len(ds) == _NUM_IMAGES and int(storage._addr[-1]) == storage._lst.numel()
    assert ds[3] == dicts[3] and ds[-1] == dicts[-1]
    first = ds[0]
    first["annotations"].clear()  # every item is a fresh copy
    assert ds[0]["annotations"] == dicts[0]["annotations"]
    with pytest.raises(IndexError, match="index 20 out of range for a serialized list of 20 items"):
        ds[_NUM_IMAGES]
    # picklable (spawned workers receive it this way)
    assert pickle.loads(pickle.dumps(ds))[7] == dicts[7]


def test_serialize_method_can_be_chosen():
    with set_default_dataset_from_list_serialize_method(lambda lst: tuple(lst)):
        assert isinstance(DatasetFromList([1, 2])._lst, tuple)
    assert isinstance(DatasetFromList([1, 2])._lst, _TorchSerializedList)
    assert DatasetFromList([1, 2], serialize=list)._lst == [1, 2]
    plain = DatasetFromList([{"a": 1}], serialize=False)
    assert plain[0] == {"a": 1} and plain[0] is not plain._lst[0]
    with pytest.raises(TypeError, match="serialize must be a bool or a callable, got str"):
        DatasetFromList([1], serialize="yes")
