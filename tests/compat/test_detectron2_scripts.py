"""Scripts written against detectron2's API run on det with det-compat-detectron2 (issue #21.5).

``scripts/`` holds scripts in the style of detectron2's ``tools/train_net.py``,
``tools/plain_train_net.py``, ``tools/lazyconfig_train_net.py`` and ``demo/demo.py`` (the same
imports and calls); each runs in a subprocess, as a user would run it, for a few iterations on a
COCO-format dataset the script registers itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from det.data.shapes import ShapesConfig, prepare_shapes
from det.engine.demo import DEMO_CONFIG

SCRIPTS = Path(__file__).resolve().parent / "scripts"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("d2_scripts")
    splits = prepare_shapes(ShapesConfig(num_train=4, num_val=2, seed=5, min_image_size=64, max_image_size=80,
                                         min_shape_size=16, max_shape_size=36), root / "data")
    datasets = ",".join(f"my_{split}={json_file}:{image_root}" for split, (json_file, image_root) in splits.items())
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "_BASE_": str(DEMO_CONFIG),
        "DATASETS": {"TRAIN": ["my_train"], "TEST": ["my_val"]},
        "INPUT": {"MIN_SIZE_TRAIN": [64], "MAX_SIZE_TRAIN": 96, "MIN_SIZE_TEST": 64, "MAX_SIZE_TEST": 96},
        # narrower than GroupNorm's 32 groups: the demo recipe's GN is switched off where narrowed
        "MODEL": {"FPN": {"OUT_CHANNELS": 16, "NORM": ""}, "ROI_BOX_HEAD": {"FC_DIM": 16},
                  "ROI_MASK_HEAD": {"CONV_DIM": 8, "NORM": ""},
                  "ROI_HEADS": {"BATCH_SIZE_PER_IMAGE": 16}, "DEVICE": "cpu", "WEIGHTS": ""},
        "SOLVER": {"IMS_PER_BATCH": 2, "MAX_ITER": 2, "WARMUP_ITERS": 1, "CHECKPOINT_PERIOD": 1000},
        "DATALOADER": {"NUM_WORKERS": 0},
        "TEST": {"EVAL_PERIOD": 0},
    }))
    return {"root": root, "datasets": datasets, "config": config, "val_images": splits["val"][1]}


def run_script(name: str, args: list[str], coco_data, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, D2_TEST_DATASETS=coco_data["datasets"], PYTHONPATH=str(SCRIPTS))
    result = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True,
                            env=env, cwd=cwd, timeout=900)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def test_train_net_style_script(coco_data):
    out = coco_data["root"] / "train_net"
    run_script("d2_train_net.py", ["--config-file", str(coco_data["config"]), "OUTPUT_DIR", str(out)],
               coco_data, coco_data["root"])
    assert (out / "model_final.pth").is_file() and (out / "metrics.json").is_file()
    assert (out / "inference" / "coco_instances_results.json").is_file()  # evaluated after training


def test_plain_train_net_style_script(coco_data):
    out = coco_data["root"] / "plain"
    result = run_script("d2_plain_train_net.py", ["--config-file", str(coco_data["config"]), "OUTPUT_DIR", str(out)],
                        coco_data, coco_data["root"])
    assert (out / "model_final.pth").is_file()
    assert "Evaluation results for my_val in csv format" in result.stdout + result.stderr


def test_lazyconfig_train_net_style_script(coco_data, configs_dir):
    out = coco_data["root"] / "lazy"
    config = coco_data["root"] / "tiny_lazy.py"
    config.write_text(textwrap.dedent(f"""
        from detectron2.config import LazyCall as L
        from detectron2.config import LazyConfig
        import detectron2.data.transforms as T

        model, dataloader, optimizer, lr_multiplier, train = LazyConfig.load(
            {str(configs_dir / "COCO-Detection" / "retinanet_R_50_FPN_1x.py")!r},
            ("model", "dataloader", "optimizer", "lr_multiplier", "train"))
        model.num_classes = 3
        dataloader.train.dataset.names = "my_train"
        dataloader.train.total_batch_size = 2
        dataloader.train.num_workers = 0
        dataloader.train.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=(64,), max_size=96,
                                                                            sample_style="choice")]
        dataloader.test.dataset.names = "my_val"
        dataloader.test.num_workers = 0
        dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=64, max_size=96)]
        train.update(max_iter=2, device="cpu", output_dir={str(out)!r}, init_checkpoint="", eval_period=0)
    """))
    result = run_script("d2_lazyconfig_train_net.py", ["--config-file", str(config)], coco_data, coco_data["root"])
    assert (out / "model_final.pth").is_file() and (out / "config.yaml").is_file()
    assert "Model:" in result.stdout + result.stderr  # logged to the "detectron2" logger


def test_demo_style_script(coco_data):
    out = coco_data["root"] / "demo"
    out.mkdir()
    images = sorted(Path(coco_data["val_images"]).glob("*.png"))
    run_script("d2_demo.py", ["--config-file", str(coco_data["config"]), "--input", *map(str, images),
                              "--output", str(out), "--confidence-threshold", "0.0"],
               coco_data, coco_data["root"])
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in images)


def test_scripts_keep_to_detectron2_names():
    """The scripts import nothing of det: only detectron2's names (and what detectron2's do)."""
    import re

    for script in SCRIPTS.glob("*.py"):
        assert not re.search(r"^\s*(from|import) det(\.|\s)", script.read_text(), re.M), script.name


def _cityscapes_panoptic_tree(root: Path) -> None:
    """Two images per split in the layout cityscapesscripts' createTrainIdLabelImgs.py and
    createPanopticImgs.py write: road (label id 7) left, one car (26) right, void bottom-left."""
    import json

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    h, w = 64, 128
    ids = np.full((h, w), 7, np.int64)
    ids[:, w // 2:] = 26001
    ids[h // 2:, : w // 4] = 0
    train_ids = np.where(ids == 7, 0, np.where(ids == 26001, 13, 255)).astype(np.uint8)
    label_ids = np.where(ids == 7, 7, np.where(ids == 26001, 26, 0)).astype(np.uint8)
    for split in ("train", "val"):
        annotations = []
        pan_dir = root / "cityscapes" / "gtFine" / f"cityscapes_panoptic_{split}"
        for folder in (root / "cityscapes" / "leftImg8bit" / split / "aachen",
                       root / "cityscapes" / "gtFine" / split / "aachen", pan_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for k in range(2):
            stem = f"aachen_{k:06d}_000019"
            image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / "cityscapes" / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png")
            gt = root / "cityscapes" / "gtFine" / split / "aachen"
            Image.fromarray(train_ids).save(gt / f"{stem}_gtFine_labelTrainIds.png")
            Image.fromarray(label_ids).save(gt / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(label_ids).save(gt / f"{stem}_gtFine_instanceIds.png")
            (gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": h, "imgWidth": w, "objects": []}))
            rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
            Image.fromarray(rgb).save(pan_dir / f"{stem}_gtFine_panoptic.png")
            annotations.append({"image_id": stem, "file_name": f"{stem}_gtFine_panoptic.png", "segments_info": [
                {"id": 7, "category_id": 7, "area": int((ids == 7).sum()), "bbox": [0, 0, w // 2, h], "iscrowd": 0},
                {"id": 26001, "category_id": 26, "area": int((ids == 26001).sum()), "bbox": [w // 2, 0, w // 2, h],
                 "iscrowd": 0}]})
        (root / "cityscapes" / "gtFine" / f"cityscapes_panoptic_{split}.json").write_text(
            json.dumps({"annotations": annotations}))


def test_panoptic_deeplab_project_style_script_on_cityscapes_panoptic(tmp_path, shared_dir):
    """detectron2's Panoptic-DeepLab project trains on det from its own kind of script, on the
    builtin cityscapes_fine_panoptic_{train,val} (det-data reads createPanopticImgs.py's output)."""
    _cityscapes_panoptic_tree(tmp_path / "datasets")
    config = (shared_dir / "detectron2-projects/projects/Panoptic-DeepLab/configs/Cityscapes-PanopticSegmentation/"
              "panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024_dsconv.yaml")
    out = tmp_path / "out"
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "datasets"), PYTHONPATH=str(SCRIPTS))
    env.pop("DET_DATASETS", None)
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "d2_panoptic_deeplab_train_net.py"), "--config-file", str(config),
         "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2",
         "INPUT.CROP.SIZE", "(64, 64)", "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "128",
         "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "128", "DATALOADER.NUM_WORKERS", "0",
         "MODEL.RESNETS.NORM", "BN", "MODEL.SEM_SEG_HEAD.NORM", "BN", "MODEL.INS_EMBED_HEAD.NORM", "BN",
         "OUTPUT_DIR", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"{log[-6000:]}"
    assert (out / "model_final.pth").is_file()
    assert "Evaluation results for cityscapes_fine_panoptic_val in csv format" in log
    assert "copypaste: PQ,SQ,RQ,PQ_th,SQ_th,RQ_th,PQ_st,SQ_st,RQ_st" in log
    assert "copypaste: IoU,iIoU,IoU_sup,iIoU_sup" in log
