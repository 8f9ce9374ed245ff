"""COCO json -> load_coco_json -> DatasetMapper -> loaders: the model input, checked by hand."""

from __future__ import annotations

import itertools
import json
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
    InferenceSampler,
    MapDataset,
    MetadataCatalog,
    RandomSubsetTrainingSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
    build_detection_test_loader,
    build_detection_train_loader,
    register_coco_instances,
)
from det.data import transforms as T
from det.structures import BitMasks, PolygonMasks


@pytest.fixture
def dataset(tmp_path):
    """Registered COCO dataset: a 40x20 (w x h) and a 20x40 image with one square each + a crowd."""
    red = np.zeros((20, 40, 3), dtype=np.uint8)
    red[..., 0] = 200  # RGB red: BGR models see it in channel 2
    Image.fromarray(red).save(tmp_path / "wide.png")
    Image.fromarray(np.full((40, 20, 3), 50, dtype=np.uint8)).save(tmp_path / "tall.png")
    sem = np.zeros((20, 40), dtype=np.uint8)
    sem[:, 20:] = 1
    Image.fromarray(sem).save(tmp_path / "wide_sem.png")
    data = {
        "images": [
            {"id": 1, "file_name": "wide.png", "width": 40, "height": 20},
            {"id": 2, "file_name": "tall.png", "width": 20, "height": 40},
        ],
        "categories": [{"id": 1, "name": "square"}, {"id": 2, "name": "circle"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 2,
                "bbox": [4, 2, 10, 10],
                "area": 100,
                "iscrowd": 0,
                "segmentation": [[4, 2, 14, 2, 14, 12, 4, 12]],
                "keypoints": [5, 3, 2, 12, 10, 2],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 1,
                "bbox": [20, 5, 5, 5],
                "area": 25,
                "iscrowd": 1,
                "segmentation": [[20, 5, 25, 5, 25, 10, 20, 10]],
                "keypoints": [0, 0, 0, 0, 0, 0],
            },
            {
                "id": 3,
                "image_id": 2,
                "category_id": 1,
                "bbox": [2, 20, 6, 8],
                "area": 48,
                "iscrowd": 0,
                "segmentation": [[2, 20, 8, 20, 8, 28, 2, 28]],
                "keypoints": [3, 21, 2, 7, 27, 1],
            },
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    name = f"mapper_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, tmp_path / "ann.json", tmp_path)
    MetadataCatalog.get(name).set(keypoint_names=["a", "b"], keypoint_flip_map=[("a", "b")])
    yield name
    DatasetCatalog.remove(name)


def _cfg(name: str, **input_overrides):
    cfg = get_cfg()
    cfg.DATASETS.TRAIN = (name,)
    cfg.DATASETS.TEST = (name,)
    cfg.INPUT.MIN_SIZE_TRAIN = (40,)
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.MIN_SIZE_TEST = 40
    cfg.INPUT.MAX_SIZE_TEST = 1000
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.MODEL.MASK_ON = True
    cfg.DATALOADER.NUM_WORKERS = 0
    for k, v in input_overrides.items():
        setattr(cfg.INPUT, k, v)
    return cfg


def test_round_trip_to_model_input(dataset):
    cfg = _cfg(dataset)
    mapper = DatasetMapper(cfg, is_train=True)
    d = DatasetCatalog.get(dataset)[0]
    out = mapper(d)
    # The short side 20 -> 40: everything doubles.
    assert out["image"].shape == (3, 40, 80) and out["image"].dtype == torch.uint8
    assert out["image"][2, 0, 0] == 200 and out["image"][0, 0, 0] == 0  # BGR
    assert (out["height"], out["width"]) == (20, 40)  # the original size, for rescaling outputs
    inst = out["instances"]
    assert inst.image_size == (40, 80)
    assert len(inst) == 1  # the crowd annotation is not a training target
    torch.testing.assert_close(inst.gt_boxes.tensor, torch.tensor([[8.0, 4.0, 28.0, 24.0]]))
    assert inst.gt_classes.tolist() == [1]
    assert isinstance(inst.gt_masks, PolygonMasks)
    np.testing.assert_allclose(inst.gt_masks.polygons[0][0], [8, 4, 28, 4, 28, 24, 8, 24])
    assert not inst.has("gt_keypoints")  # keypoints only with MODEL.KEYPOINT_ON
    assert "annotations" in d and "instances" not in d  # the catalog's dict is untouched


def test_bitmask_format_keypoints_and_flip(dataset):
    cfg = _cfg(dataset, MASK_FORMAT="bitmask", RANDOM_FLIP="horizontal")
    cfg.MODEL.KEYPOINT_ON = True
    mapper = DatasetMapper(cfg, is_train=True)
    assert mapper.keypoint_hflip_indices == [1, 0]
    mapper.augmentations = T.AugmentationList(
        [T.ResizeShortestEdge(40, 1000, "choice"), T.RandomFlip(prob=1.0)]
    )
    inst = mapper(DatasetCatalog.get(dataset)[0])["instances"]
    assert isinstance(inst.gt_masks, BitMasks) and inst.gt_masks.tensor.shape == (1, 40, 80)
    # Flipped box: x -> 80 - x.
    torch.testing.assert_close(inst.gt_boxes.tensor, torch.tensor([[52.0, 4.0, 72.0, 24.0]]))
    assert int(inst.gt_masks.tensor.sum()) == 400
    assert bool(inst.gt_masks.tensor[0, 10, 60]) and not bool(inst.gt_masks.tensor[0, 10, 20])
    # Keypoint (5.5, 3.5) -> (11, 7) -> flipped (69, 7); (12.5, 10.5) -> (25, 21) -> (55, 21); then a<->b swap.
    torch.testing.assert_close(
        inst.gt_keypoints.tensor, torch.tensor([[[55.0, 21.0, 2.0], [69.0, 7.0, 2.0]]])
    )


def test_test_mode_drops_annotations_and_reads_sem_seg(dataset, tmp_path):
    cfg = _cfg(dataset)
    mapper = DatasetMapper(cfg, is_train=False)
    d = dict(DatasetCatalog.get(dataset)[0], sem_seg_file_name=str(tmp_path / "wide_sem.png"))
    out = mapper(d)
    assert "instances" not in out and "annotations" not in out
    assert out["sem_seg"].shape == (40, 80) and out["sem_seg"].dtype == torch.int64
    assert out["sem_seg"][:, :40].sum() == 0 and bool((out["sem_seg"][:, 40:] == 1).all())


def test_crop_recomputes_boxes_from_masks(dataset):
    cfg = _cfg(dataset)
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = [10, 10]
    mapper = DatasetMapper(cfg, is_train=True)
    assert mapper.recompute_boxes and isinstance(mapper.augmentations.augs[0], T.RandomCrop)
    mapper.augmentations = T.AugmentationList([T.CropTransform(9, 7, 10, 10)])
    inst = mapper(DatasetCatalog.get(dataset)[0])["instances"]
    # Square [4,14]x[2,12] cut to the window [9,19]x[7,17], shifted by (-9,-7).
    torch.testing.assert_close(inst.gt_boxes.tensor, torch.tensor([[0.0, 0.0, 5.0, 5.0]]))


def test_mapper_argument_errors(dataset):
    with pytest.raises(ValueError, match="recompute_boxes"):
        DatasetMapper(True, augmentations=[], image_format="BGR", recompute_boxes=True)
    with pytest.raises(ValueError, match="instance_mask_format"):
        DatasetMapper(True, augmentations=[], image_format="BGR", instance_mask_format="rle")


def test_train_loader_from_cfg_groups_by_aspect_ratio(dataset):
    cfg = _cfg(dataset)
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SEED = 0
    loader = build_detection_train_loader(cfg, sampler=TrainingSampler(2, seed=0))
    for batch in itertools.islice(iter(loader), 3):
        assert len(batch) == 2
        orientations = {d["width"] > d["height"] for d in batch}
        assert len(orientations) == 1  # a batch never mixes wide and tall images


def test_train_loader_explicit_args_without_grouping(dataset):
    dicts = DatasetCatalog.get(dataset)
    loader = build_detection_train_loader(
        dicts,
        mapper=lambda d: d["image_id"],
        total_batch_size=3,
        aspect_ratio_grouping=False,
        sampler=TrainingSampler(len(dicts), shuffle=False),
    )
    assert next(iter(loader)) == [1, 2, 1]


def test_test_loader_sees_every_image_once_in_order(dataset):
    loader = build_detection_test_loader(_cfg(dataset), dataset)
    batches = list(loader)
    assert [len(b) for b in batches] == [1, 1]
    assert [b[0]["image_id"] for b in batches] == [1, 2]
    assert batches[1][0]["image"].shape == (3, 80, 40)


def test_training_sampler_is_seeded_infinite_and_sharded():
    a = list(itertools.islice(TrainingSampler(5, seed=3), 12))
    b = list(itertools.islice(TrainingSampler(5, seed=3), 12))
    assert a == b and sorted(a[:5]) == [0, 1, 2, 3, 4] and sorted(a[5:10]) == [0, 1, 2, 3, 4]
    assert list(itertools.islice(TrainingSampler(3, shuffle=False, seed=0), 7)) == [0, 1, 2, 0, 1, 2, 0]
    rank1 = TrainingSampler(5, seed=3)
    rank1._rank, rank1._world_size = 1, 2
    assert list(itertools.islice(rank1, 6)) == a[1:12:2]
    with pytest.raises(ValueError, match="positive int"):
        TrainingSampler(0)


def test_inference_sampler_shards():
    shards = [InferenceSampler._get_local_indices(10, 3, r) for r in range(3)]
    assert [list(s) for s in shards] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert list(InferenceSampler(4)) == [0, 1, 2, 3] and len(InferenceSampler(4)) == 4


def test_repeat_factor_sampler():
    dicts = [
        {"annotations": [{"category_id": 0}, {"category_id": 1}]},
        {"annotations": [{"category_id": 0}]},
        {"annotations": [{"category_id": 0}]},
        {"annotations": [{"category_id": 0}]},
    ]
    factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, 0.5)
    # category 1 is in 1/4 of the images: sqrt(0.5 / 0.25) = sqrt(2); category 0 stays at 1.
    torch.testing.assert_close(factors, torch.tensor([2**0.5, 1.0, 1.0, 1.0]))
    # DATALOADER.REPEAT_SQRT: False repeats by the ratio itself
    linear = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, 0.5, sqrt=False)
    torch.testing.assert_close(linear, torch.tensor([2.0, 1.0, 1.0, 1.0]))
    sampler = RepeatFactorTrainingSampler(torch.tensor([2.0, 1.0]), seed=0, shuffle=False)
    assert list(itertools.islice(sampler, 6)) == [0, 0, 1, 0, 0, 1]


def test_random_subset_sampler_draws_a_fixed_subset():
    sampler = RandomSubsetTrainingSampler(10, 0.3, seed_shuffle=1, seed_subset=2)
    g = torch.Generator()
    g.manual_seed(2)
    subset = set(torch.randperm(10, generator=g)[:3].tolist())
    first = list(itertools.islice(sampler, 30))
    assert set(first) == subset
    assert all(sorted(first[i : i + 3]) == sorted(subset) for i in range(0, 30, 3))  # each pass is the subset
    in_order = RandomSubsetTrainingSampler(10, 0.3, shuffle=False, seed_subset=2)
    assert list(itertools.islice(in_order, 6)) == torch.randperm(10, generator=g.manual_seed(2))[:3].tolist() * 2
    with pytest.raises(ValueError, match=r"subset_ratio must be in \(0, 1\]"):
        RandomSubsetTrainingSampler(10, 1.5, seed_shuffle=0, seed_subset=0)
    with pytest.raises(ValueError, match="selects none"):
        RandomSubsetTrainingSampler(10, 0.05, seed_shuffle=0, seed_subset=0)


def test_train_loader_builds_each_detectron2_sampler_from_the_config(dataset):
    from det.data.build import _train_loader_from_config

    cfg = _cfg(dataset)
    cfg.DATALOADER.SAMPLER_TRAIN = "RandomSubsetTrainingSampler"
    with pytest.raises(ValueError, match=r"needs DATALOADER\.RANDOM_SUBSET_RATIO"):
        _train_loader_from_config(cfg)
    cfg.DATALOADER.RANDOM_SUBSET_RATIO = 0.5
    assert isinstance(_train_loader_from_config(cfg)["sampler"], RandomSubsetTrainingSampler)
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    assert isinstance(_train_loader_from_config(cfg)["sampler"], RepeatFactorTrainingSampler)
    cfg.DATALOADER.SAMPLER_TRAIN = "GroupedSampler"
    with pytest.raises(ValueError, match="Unknown training sampler: GroupedSampler"):
        _train_loader_from_config(cfg)


def test_train_loader_with_worker_processes(dataset):
    cfg = _cfg(dataset)
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.DATALOADER.NUM_WORKERS = 2
    loader = build_detection_train_loader(cfg, sampler=TrainingSampler(2, seed=0, shuffle=False))
    batches = list(itertools.islice(iter(loader), 2))
    assert all(len(b) == 2 and b[0]["image"].shape[0] == 3 for b in batches)


def test_dataset_wrappers():
    import pickle

    ds = DatasetFromList([{"a": 1}, {"a": 2}])
    assert len(ds) == 2 and ds[1] == {"a": 2}
    assert ds[0] is not ds[0]  # fresh copies: mappers may mutate them
    mapped = MapDataset(DatasetFromList([1, 2, 3], serialize=False), lambda x: None if x == 2 else x * 10)
    assert mapped[0] == 10 and mapped[1] in (10, 30)  # falls back to another item
    plain = MapDataset(DatasetFromList([1, 2]), abs)
    assert pickle.loads(pickle.dumps(plain))[1] == 2  # picklable for spawned workers
    streamed = MapDataset(iter([1, -2]), abs)
    assert list(streamed) == [1, 2]
