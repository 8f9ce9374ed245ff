"""detectron2's builtin datasets: the names zoo configs use, their metadata, the datasets root
($DETECTRON2_DATASETS / $DET_DATASETS) read at load time, and the error for a missing folder."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from det.data import DatasetCatalog, MetadataCatalog
from det.data.datasets.builtin import builtin_dataset_names, get_datasets_root, register_all_builtin
from det.data.datasets.builtin_meta import COCO_CATEGORIES, get_builtin_metadata

CONFIGS = Path(__file__).resolve().parents[2].parent / "shared" / "detectron2-configs"

# Families whose registration is this module's job; LVIS and Cityscapes come from lvis.py and
# cityscapes.py (another module's tests cover them).
OWN_PREFIXES = ("coco_", "keypoints_coco_", "voc_", "ade20k_")
OTHER_MODULE_PREFIXES = ("lvis_", "cityscapes_")
# Zoo dataset names that belong to none of the families above: none today.
UNCLASSIFIED_ZOO_NAMES: set[str] = set()


@pytest.fixture
def datasets_root(monkeypatch, tmp_path):
    """An empty datasets root chosen through $DETECTRON2_DATASETS; afterwards the builtin
    datasets follow the environment again."""
    monkeypatch.delenv("DET_DATASETS", raising=False)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    yield tmp_path
    register_all_builtin()


class _ConfigLoader(yaml.SafeLoader):
    """Reads detectron2's YAML files, leaving out the python/... tags a few of them use."""


_ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def _zoo_dataset_names() -> set[str]:
    names = set()
    for path in CONFIGS.rglob("*.yaml"):
        datasets = (yaml.load(path.read_text(), Loader=_ConfigLoader) or {}).get("DATASETS") or {}
        for key in ("TRAIN", "TEST"):
            value = datasets.get(key)
            if isinstance(value, str):  # yacs writes tuples as Python literals
                value = ast.literal_eval(value)
            names.update(value or ())
    return names


@pytest.mark.skipif(not CONFIGS.is_dir(), reason="detectron2's model-zoo configs are not available")
def test_every_zoo_dataset_name_is_registered():
    names = _zoo_dataset_names()
    assert {"coco_2017_train", "coco_2017_val_100_panoptic_separated", "voc_2007_test"} <= names
    unclassified = {n for n in names if not n.startswith(OWN_PREFIXES + OTHER_MODULE_PREFIXES)}
    assert unclassified == UNCLASSIFIED_ZOO_NAMES
    own = {n for n in names if n.startswith(OWN_PREFIXES)}
    assert own - set(DatasetCatalog) == set()
    assert own <= set(builtin_dataset_names())


def test_registered_names_and_evaluator_types():
    expected = {
        "coco_2014_train": "coco",
        "coco_2014_minival": "coco",
        "coco_2014_valminusminival": "coco",
        "coco_2017_test-dev": "coco",
        "coco_2017_val_100": "coco",
        "keypoints_coco_2017_train": "coco",
        "keypoints_coco_2014_minival": "coco",
        "coco_2017_train_panoptic": "coco_panoptic_seg",
        "coco_2017_val_panoptic_separated": "coco_panoptic_seg",
        "coco_2017_val_100_panoptic_stuffonly": "sem_seg",
        "voc_2007_trainval": "pascal_voc",
        "voc_2007_test": "pascal_voc",
        "voc_2012_val": "pascal_voc",
        "ade20k_sem_seg_train": "sem_seg",
        "ade20k_sem_seg_val": "sem_seg",
    }
    for name, evaluator_type in expected.items():
        assert name in DatasetCatalog, name
        assert MetadataCatalog.get(name).evaluator_type == evaluator_type, name
    assert "voc_2012_test" not in DatasetCatalog  # no public annotations


def test_coco_instances_metadata():
    meta = MetadataCatalog.get("coco_2017_train")
    assert len(meta.thing_classes) == 80 and len(meta.thing_colors) == 80
    assert meta.thing_classes[:3] == ["person", "bicycle", "car"]
    assert meta.thing_classes[-1] == "toothbrush" and meta.thing_classes[11] == "stop sign"
    id_map = meta.thing_dataset_id_to_contiguous_id
    assert sorted(id_map.values()) == list(range(80)) and set(id_map) <= set(range(1, 91))
    assert id_map[1] == 0 and id_map[13] == 11 and id_map[90] == 79 and 12 not in id_map
    assert meta.thing_colors[0] == [220, 20, 60]


def test_coco_person_keypoint_metadata():
    meta = MetadataCatalog.get("keypoints_coco_2017_val")
    assert meta.thing_classes == ["person"]
    names = meta.keypoint_names
    assert len(names) == 17 and names[0] == "nose" and names[16] == "right_ankle"
    assert len(meta.keypoint_flip_map) == 8
    assert ("left_eye", "right_eye") in meta.keypoint_flip_map
    assert ("left_ankle", "right_ankle") in meta.keypoint_flip_map
    assert all(a in names and b in names for a, b in meta.keypoint_flip_map)
    rules = meta.keypoint_connection_rules
    assert len(rules) == 14 and ("left_shoulder", "right_shoulder", (255, 128, 0)) in rules


def test_coco_panoptic_metadata():
    assert len(COCO_CATEGORIES) == 133
    assert sum(c["isthing"] for c in COCO_CATEGORIES) == 80
    assert COCO_CATEGORIES[80] == {"color": [255, 255, 128], "isthing": 0, "id": 92, "name": "banner"}
    assert COCO_CATEGORIES[-1] == {"color": [250, 141, 255], "isthing": 0, "id": 200, "name": "rug-merged"}

    standard = MetadataCatalog.get("coco_2017_val_panoptic")
    assert len(standard.thing_classes) == len(standard.stuff_classes) == 133
    assert standard.thing_dataset_id_to_contiguous_id[90] == 79
    assert standard.stuff_dataset_id_to_contiguous_id[92] == 80
    assert standard.stuff_dataset_id_to_contiguous_id[200] == 132
    assert standard.label_divisor == 1000 and standard.ignore_label == 255

    separated = MetadataCatalog.get("coco_2017_val_panoptic_separated")
    assert len(separated.thing_classes) == 80 and len(separated.stuff_classes) == 54
    assert separated.stuff_classes[0] == "things" and separated.stuff_colors[0] == [82, 18, 128]
    assert separated.stuff_classes[1] == "banner" and separated.stuff_classes[-1] == "rug"
    assert "wall" in separated.stuff_classes and "sky" in separated.stuff_classes  # suffixes dropped
    stuff_map = separated.stuff_dataset_id_to_contiguous_id
    assert stuff_map[0] == 0 and stuff_map[92] == 1 and stuff_map[200] == 53
    assert MetadataCatalog.get("coco_2017_val_panoptic_stuffonly").stuff_classes == separated.stuff_classes


def test_voc_cityscapes_ade20k_class_names():
    voc = MetadataCatalog.get("voc_2007_test")
    assert len(voc.thing_classes) == 20 and voc.thing_classes[0] == "aeroplane"
    assert voc.thing_classes[-1] == "tvmonitor" and voc.year == 2007 and voc.split == "test"
    assert MetadataCatalog.get("voc_2012_trainval").year == 2012
    ade = MetadataCatalog.get("ade20k_sem_seg_val")
    assert len(ade.stuff_classes) == 150 and ade.stuff_classes[:3] == ["wall", "building", "sky"]
    assert ade.stuff_classes[-1] == "flag" and ade.ignore_label == 255
    cityscapes = get_builtin_metadata("cityscapes")
    assert cityscapes["thing_classes"] == [
        "person",
        "rider",
        "car",
        "truck",
        "bus",
        "train",
        "motorcycle",
        "bicycle",
    ]
    assert len(cityscapes["stuff_classes"]) == 19 and cityscapes["stuff_classes"][0] == "road"
    with pytest.raises(KeyError, match="No built-in metadata"):
        get_builtin_metadata("imagenet")


def test_datasets_root_variables(monkeypatch):
    monkeypatch.delenv("DET_DATASETS", raising=False)
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    assert get_datasets_root() == "datasets"
    monkeypatch.setenv("DETECTRON2_DATASETS", "~/d2")
    assert get_datasets_root() == os.path.expanduser("~/d2")
    monkeypatch.setenv("DET_DATASETS", "/det")
    assert get_datasets_root() == "/det"  # det's own variable wins
    monkeypatch.setenv("DET_DATASETS", "")
    assert get_datasets_root() == os.path.expanduser("~/d2")


def test_registration_is_lazy_and_reads_nothing(tmp_path):
    code = (
        "import sys, det.data as d\n"
        "assert 'det.data.datasets.builtin' not in sys.modules\n"
        "assert 'coco_2017_train' in d.DatasetCatalog\n"
        "print(d.MetadataCatalog.get('voc_2007_test').dirname)\n"
    )
    env = {**os.environ, "DETECTRON2_DATASETS": str(tmp_path / "absent")}
    env.pop("DET_DATASETS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "absent" / "VOC2007")


def _write_coco_tree(root: Path) -> None:
    """coco/val2017 with one 8x6 image, the instance json of coco_2017_val and of
    coco_2017_val_100, and the panoptic/semantic files of coco_2017_val_100_panoptic."""
    (root / "coco" / "val2017").mkdir(parents=True)
    (root / "coco" / "annotations").mkdir()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "coco" / "val2017" / "000000000001.jpg")
    instances = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "height": 6, "width": 8}],
        "categories": [{"id": c["id"], "name": c["name"]} for c in COCO_CATEGORIES if c["isthing"]],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 90, "bbox": [1, 1, 3, 2], "area": 6, "iscrowd": 0}
        ],
    }
    for name in ("instances_val2017.json", "instances_val2017_100.json"):
        (root / "coco" / "annotations" / name).write_text(json.dumps(instances))
    (root / "coco" / "panoptic_stuff_val2017_100").mkdir()
    Image.fromarray(np.ones((6, 8), np.uint8)).save(
        root / "coco" / "panoptic_stuff_val2017_100" / "000000000001.png"
    )
    (root / "coco" / "panoptic_val2017_100").mkdir()
    panoptic_png = np.zeros((6, 8, 3), np.uint8)
    panoptic_png[:, :4, 0], panoptic_png[:, 4:, 0] = 1, 2  # segment ids 1 (left) and 2 (right)
    Image.fromarray(panoptic_png).save(root / "coco" / "panoptic_val2017_100" / "000000000001.png")
    panoptic = {
        "annotations": [
            {
                "image_id": 1,
                "file_name": "000000000001.png",
                "segments_info": [
                    {"id": 1, "category_id": 90, "iscrowd": 0},
                    {"id": 2, "category_id": 200, "iscrowd": 0},
                ],
            }
        ]
    }
    (root / "coco" / "annotations" / "panoptic_val2017_100.json").write_text(json.dumps(panoptic))


def test_fake_coco_tree_loads_through_the_catalog(datasets_root):
    assert "coco_2017_val" in DatasetCatalog  # registered before the tree exists, under any root
    _write_coco_tree(datasets_root)
    (d,) = DatasetCatalog.get("coco_2017_val")
    assert d["file_name"] == str(datasets_root / "coco" / "val2017" / "000000000001.jpg")
    assert d["height"] == 6 and d["width"] == 8 and d["image_id"] == 1
    (ann,) = d["annotations"]
    assert ann["category_id"] == 79 and ann["bbox"] == [1, 1, 3, 2]  # toothbrush, COCO id 90
    meta = MetadataCatalog.get("coco_2017_val")
    assert meta.json_file == str(datasets_root / "coco" / "annotations" / "instances_val2017.json")
    assert meta.evaluator_type == "coco" and len(meta.thing_classes) == 80


def test_det_datasets_wins_over_detectron2_datasets(datasets_root, monkeypatch, tmp_path_factory):
    _write_coco_tree(datasets_root)
    monkeypatch.setenv("DET_DATASETS", str(datasets_root))
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path_factory.mktemp("elsewhere")))
    assert len(DatasetCatalog.get("coco_2017_val")) == 1


def test_panoptic_datasets_load_from_the_tree(datasets_root):
    _write_coco_tree(datasets_root)
    (separated,) = DatasetCatalog.get("coco_2017_val_100_panoptic_separated")
    assert separated["annotations"][0]["category_id"] == 79
    assert separated["sem_seg_file_name"] == str(
        datasets_root / "coco" / "panoptic_stuff_val2017_100" / "000000000001.png"
    )
    (stuff,) = DatasetCatalog.get("coco_2017_val_100_panoptic_stuffonly")
    assert set(stuff) == {"file_name", "sem_seg_file_name"}
    (standard,) = DatasetCatalog.get("coco_2017_val_100_panoptic")
    assert [(s["category_id"], s["isthing"]) for s in standard["segments_info"]] == [(79, True), (132, False)]


def test_missing_root_gives_a_clear_error_at_load_time(datasets_root, monkeypatch):
    missing = datasets_root / "nowhere"
    monkeypatch.setenv("DETECTRON2_DATASETS", str(missing))
    assert "coco_2017_val" in DatasetCatalog
    with pytest.raises(FileNotFoundError) as err:
        DatasetCatalog.get("coco_2017_val")
    message = str(err.value)
    assert str(missing / "coco" / "annotations" / "instances_val2017.json") in message
    assert str(missing / "coco" / "val2017") in message
    assert "DETECTRON2_DATASETS" in message and "from $DETECTRON2_DATASETS" in message
    with pytest.raises(FileNotFoundError, match=r"VOC2007[/\\]ImageSets[/\\]Main[/\\]test\.txt"):
        DatasetCatalog.get("voc_2007_test")
    with pytest.raises(FileNotFoundError, match="annotations_detectron2"):
        DatasetCatalog.get("ade20k_sem_seg_val")


def test_explicit_root_is_kept_until_the_next_call(datasets_root, monkeypatch, tmp_path_factory):
    _write_coco_tree(datasets_root)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path_factory.mktemp("ignored")))
    names = register_all_builtin(datasets_root)
    assert "coco_2017_val" in names and "voc_2007_test" in names
    assert len(DatasetCatalog.get("coco_2017_val")) == 1  # the variable does not override it
    assert MetadataCatalog.get("coco_2017_val").image_root == str(datasets_root / "coco" / "val2017")


def test_a_replaced_builtin_survives_registering_again(datasets_root, tmp_path_factory):
    DatasetCatalog.remove("voc_2007_val")
    MetadataCatalog.remove("voc_2007_val")
    DatasetCatalog.register("voc_2007_val", lambda: [{"file_name": "mine.jpg"}])
    MetadataCatalog.get("voc_2007_val").set(thing_classes=["mine"])
    register_all_builtin(tmp_path_factory.mktemp("other_root"))
    assert DatasetCatalog.get("voc_2007_val") == [{"file_name": "mine.jpg"}]
    assert MetadataCatalog.get("voc_2007_val").thing_classes == ["mine"]
    assert MetadataCatalog.get("voc_2007_test").evaluator_type == "pascal_voc"  # the rest registered
    DatasetCatalog.remove("voc_2007_val")  # back to the builtin one when the fixture re-registers
    MetadataCatalog.remove("voc_2007_val")


def test_default_trainer_builds_the_coco_evaluator(datasets_root):
    from det.core import get_cfg
    from det.engine.train.defaults import DefaultTrainer
    from det.evaluation import COCOEvaluator

    _write_coco_tree(datasets_root)
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(datasets_root / "out")
    assert isinstance(DefaultTrainer.build_evaluator(cfg, "coco_2017_val"), COCOEvaluator)


@pytest.mark.parametrize(
    "name, stuff_id",
    [("coco_2017_val_100_panoptic_separated", 53), ("coco_2017_val_100_panoptic", 132)],
)
def test_default_trainer_evaluates_panoptic_datasets(datasets_root, name, stuff_id):
    """The separated dataset's dicts hold instances and semantic PNGs: PQ reads the panoptic
    json and PNGs its metadata names, with the dataset's contiguous ids."""
    import torch

    from det.core import get_cfg
    from det.engine.train.defaults import DefaultTrainer
    from det.evaluation import DatasetEvaluators

    _write_coco_tree(datasets_root)
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(datasets_root / "out")
    built = DefaultTrainer.build_evaluator(cfg, name)
    # with the instances json in the metadata, COCO AP is evaluated too (detectron2's train_net)
    assert isinstance(built, DatasetEvaluators)
    assert [type(e).__name__ for e in built._evaluators][-2:] == ["COCOEvaluator", "COCOPanopticEvaluator"]
    evaluator = built._evaluators[-1]
    evaluator.reset()
    pred = torch.ones(6, 8, dtype=torch.int64)
    pred[:, 4:] = 2
    segments = [
        {"id": 1, "category_id": 79, "isthing": True},
        {"id": 2, "category_id": stuff_id, "isthing": False},
    ]
    image = str(datasets_root / "coco" / "val2017" / "000000000001.jpg")
    evaluator.process([{"file_name": image, "image_id": 1}], [{"panoptic_seg": (pred, segments)}])
    result = evaluator.evaluate()["panoptic_seg"]
    assert result["PQ"] == pytest.approx(100.0) and result["PQ_st"] == pytest.approx(100.0)


def test_default_trainer_builds_the_voc_evaluator(datasets_root):
    from det.core import get_cfg
    from det.engine.train.defaults import DefaultTrainer
    from det.evaluation import PascalVOCDetectionEvaluator

    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(datasets_root / "out")
    assert isinstance(DefaultTrainer.build_evaluator(cfg, "voc_2007_test"), PascalVOCDetectionEvaluator)
