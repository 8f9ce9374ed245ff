"""Training on one's own COCO data (issue #19): every user mistake is one or two lines on stderr
before anything is built or written; class counts come from the json; a checkpoint trained on
80 classes loads with exactly its class-dependent layers re-initialised; a resumed run sees
the same batches."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
import torch

from det.core.cli import main as det_main

from ._own_data import ZOO_MASK_RCNN, shrunk_zoo_cfg

CLASS_DEPENDENT = ["roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias",
                   "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias",
                   "roi_heads.mask_head.predictor.weight", "roi_heads.mask_head.predictor.bias"]


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_coco_dataset):
    return make_coco_dataset(tmp_path_factory.mktemp("own") / "data", num_train=6, num_val=3, seed=5)


@pytest.fixture(scope="module")
def zoo(configs_dir):
    return str(configs_dir / ZOO_MASK_RCNN)


@pytest.fixture(scope="module")
def coco80(coco80_checkpoint):
    return coco80_checkpoint


def own_args(zoo, data, out, *extra):
    return ["train", "--config-file", zoo, "--train-json", str(data["train_json"]),
            "--train-images", str(data["train_images"]), "--val-json", str(data["val_json"]),
            "--val-images", str(data["val_images"]), "--output", str(out), *extra]


def assert_one_error(capsys, status, *fragments):
    """Exit status 2 and stderr of at most two lines (the line saying which config kind is read,
    then the error), no traceback."""
    captured = capsys.readouterr()
    assert status == 2, captured
    err = captured.err
    lines = err.splitlines()
    assert 1 <= len(lines) <= 2 and err.endswith("\n"), err
    assert lines[-1].startswith("det ") and ": error: " in lines[-1], err
    assert len(lines) == 1 or ": reading a " in lines[0], err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_train_mistakes_are_reported_before_anything_is_built_or_written(data, zoo, coco80, tmp_path, capsys,
                                                                          monkeypatch):
    import det.core.modeling.build as build

    def no_build(*args, **kwargs):
        raise AssertionError("the model was built before the inputs were checked")

    monkeypatch.setattr(build, "build_model", no_build)
    out = tmp_path / "out"
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "bad.yaml").write_text("MODEL:\n  WEIGHTS: [unclosed\n")
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    (tmp_path / "broken.json").write_text('{"images": [')
    images = json.loads(data["train_json"].read_text())
    images["images"][0]["file_name"] = "gone.png"
    (tmp_path / "missing_image.json").write_text(json.dumps(images))
    other = json.loads(data["val_json"].read_text())
    other["categories"][1]["name"] = "cube"
    (tmp_path / "other_classes.json").write_text(json.dumps(other))
    boxes_only = json.loads(data["train_json"].read_text())
    for ann in boxes_only["annotations"]:
        del ann["segmentation"]
    (tmp_path / "boxes_only.json").write_text(json.dumps(boxes_only))

    def own(**change):
        args = own_args(zoo, data, out, "--weights", str(coco80))
        for flag, value in change.items():
            args[args.index("--" + flag.replace("_", "-")) + 1] = str(value)
        return args

    assert_one_error(capsys, det_main(own(weights=tmp_path / "nope.pth")),
                     f"--weights '{tmp_path / 'nope.pth'}' does not exist")
    assert_one_error(capsys, det_main(own(weights=tmp_path / "notes.txt")), "is not a checkpoint")
    assert_one_error(capsys, det_main(own(weights=tmp_path / "empty.pth")), "is empty (0 bytes)")
    assert_one_error(capsys, det_main(own(weights=tmp_path)), "is a folder; give the checkpoint file in it")
    assert_one_error(capsys, det_main(own(config_file=tmp_path / "bad.yaml")),
                     f"Config file {tmp_path / 'bad.yaml'} is not valid YAML (line 3, column 1)")
    assert_one_error(capsys, det_main(own(config_file=tmp_path / "a.yaml")), "_BASE_ cycle in", "a.yaml -> ")
    assert_one_error(capsys, det_main(own(train_json=tmp_path / "broken.json")),
                     "--train-json: ", "broken.json is not valid JSON (line 1")
    err = assert_one_error(capsys, det_main(own(train_json=tmp_path / "missing_image.json")),
                           "missing_image.json: 1 image: image files not found, e.g. image id=100 'gone.png'",
                           f"(`det data check {tmp_path / 'missing_image.json'} --images")
    assert err.count("\n") == 2  # the config line and the error
    assert_one_error(capsys, det_main(own(val_json=tmp_path / "other_classes.json")),
                     "has other categories than", "['disk', 'cube'] vs ['disk', 'block']")
    assert_one_error(capsys, det_main(own(train_json=tmp_path / "boxes_only.json")),
                     "trains masks (MODEL.MASK_ON) but", "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml")
    args = own()
    del args[args.index("--train-images"):args.index("--train-images") + 2]
    assert_one_error(capsys, det_main(args), "--train-json needs --train-images")
    assert_one_error(capsys, det_main([*own(), "SOLVER.MAX_ITERS", "3"]), "SOLVER.MAX_ITER")
    assert not out.exists()  # nothing written by any of the above

    # detectron2's form: a bad MODEL.WEIGHTS no longer overwrites the earlier run's config.yaml
    out.mkdir()
    (out / "config.yaml").write_text("earlier run\n")
    assert_one_error(capsys, det_main(["train", "--config-file", zoo, "MODEL.WEIGHTS", "/nope/model.pth",
                                       "OUTPUT_DIR", str(out)]), "MODEL.WEIGHTS '/nope/model.pth' does not exist")
    assert_one_error(capsys, det_main(["train", "--config-file", zoo, "DATASETS.TRAIN", "('my_data',)"]),
                     "dataset 'my_data' (from DATASETS.TRAIN) is not registered (", "builtin names")
    (out / "last_checkpoint").write_text("model_0000009.pth")
    assert_one_error(capsys, det_main(own()), "holds a training run already (last_checkpoint): add --resume")
    assert_one_error(capsys, det_main(["train", "--resume", "--output", str(tmp_path)]),
                     "has no config.yaml; is it a `det train --output` folder?")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "last_checkpoint"]
    assert (out / "config.yaml").read_text() == "earlier run\n"


def test_yaml_commands_refuse_python_configs(tmp_path):
    from det.core import get_cfg

    (tmp_path / "lazy.py").write_text("model = dict()\n")
    with pytest.raises(ValueError, match=r"lazy.py is a Python \(LazyConfig\) file; CfgNode reads YAML"):
        get_cfg().merge_from_file(str(tmp_path / "lazy.py"))


def test_predict_and_eval_mistakes(data, tmp_path, capsys, monkeypatch, make_tiny_config):
    import det.core.predictor as predictor

    def no_predictor(*args, **kwargs):
        raise AssertionError("the model was built before the images were checked")

    monkeypatch.setattr(predictor, "DefaultPredictor", no_predictor)
    tiny = make_tiny_config(tmp_path, "err", num_train=1, num_val=1, seed=1)
    (tmp_path / "w.pth").write_bytes(b"\x80\x04")  # looks like a pickle: the images fail first
    (tmp_path / "notes.png").write_text("hello")
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "list.txt").write_text("notes.png\n")
    base = ["predict", "--config-file", str(tiny["config"]), "--weights", str(tmp_path / "w.pth"),
            "--output", str(tmp_path / "pred")]
    assert_one_error(capsys, det_main([*base, str(tmp_path / "notes.png")]),
                     "1 of the 1 inputs cannot be used as images", "notes.png is not an image")
    assert_one_error(capsys, det_main([*base, str(tmp_path / "zero.jpg"), str(data["val_images"])]),
                     "1 of the 4 inputs cannot be used as images", "zero.jpg is empty (0 bytes)")
    assert_one_error(capsys, det_main([*base, str(tmp_path / "list.txt")]), "notes.png is not an image")
    assert_one_error(capsys, det_main([*base, str(tmp_path / "empty_dir")]), "has no image files")
    assert_one_error(capsys, det_main([*base, str(tmp_path / "none.png")]), "image file(s) not found")
    assert not (tmp_path / "pred").exists()

    assert_one_error(capsys, det_main(["eval", "--output", str(tmp_path / "empty_dir")]),
                     "has no config.yaml; is it a `det train --output` folder?")
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": 12345, "category_id": 3, "bbox": [1, 1, 5, 5],
                                                    "score": 0.9}]))
    assert_one_error(capsys, det_main(["eval", "--results", str(tmp_path / "res.json"), "--json",
                                       str(data["val_json"])]),
                     "is for image_id 12345, which is not in the dataset's json (3 images)")
    assert_one_error(capsys, det_main(["eval", "--results", str(tmp_path / "res.json")]),
                     "--results needs the ground truth: --json FILE")
    assert_one_error(capsys, det_main(["eval", "--results", str(tmp_path / "res.json"), "--dataset", "no_such"]),
                     "dataset 'no_such' (from --dataset) is not registered")


def test_eval_results_scores_a_results_file_against_its_json(data, tmp_path, capsys):
    """Perfect results (the ground truth itself, score 1) score AP 100; one class's results
    removed, that class's AP is 0 and the mean halves."""
    gt = json.loads(data["val_json"].read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
                "segmentation": a["segmentation"]} for a in gt["annotations"]]
    # polygons -> RLE, as a model's results hold
    import pycocotools.mask as mask_util

    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    for r in results:
        rle = mask_util.merge(mask_util.frPyObjects(r["segmentation"], *sizes[r["image_id"]]))
        r["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    (tmp_path / "perfect.json").write_text(json.dumps(results))
    assert det_main(["eval", "--results", str(tmp_path / "perfect.json"), "--json", str(data["val_json"]),
                     "--output", str(tmp_path / "eval")]) == 0
    scores = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert scores["bbox"]["AP"] == pytest.approx(100.0) and scores["segm"]["AP"] == pytest.approx(100.0)
    printed = capsys.readouterr().out
    assert json.loads(printed[re.search(r"(?m)^\{", printed).start():]) == scores
    (tmp_path / "disks.json").write_text(json.dumps([r for r in results if r["category_id"] == 3]))
    assert det_main(["eval", "--results", str(tmp_path / "disks.json"), "--json", str(data["val_json"])]) == 0
    printed = capsys.readouterr().out
    bbox = json.loads(printed[re.search(r"(?m)^\{", printed).start():])["bbox"]
    assert bbox["AP-disk"] == pytest.approx(100.0) and bbox["AP-block"] == pytest.approx(0.0)
    assert bbox["AP"] == pytest.approx(50.0)


def test_checkpoint_of_80_classes_loads_with_class_dependent_layers_reinitialised(configs_dir, coco80, caplog):
    from det.checkpoint import DetectionCheckpointer, class_dependent_parameter_names
    from det.core import build_model

    torch.manual_seed(1)
    model = build_model(shrunk_zoo_cfg(configs_dir, num_classes=2))
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    assert class_dependent_parameter_names(model) == set(CLASS_DEPENDENT)
    with caplog.at_level(logging.INFO, logger="det.checkpoint"):
        DetectionCheckpointer(model).load(str(coco80))
    reinit = [r.getMessage() for r in caplog.records if "Re-initialised class-dependent" in r.getMessage()]
    assert [m.split("'")[1] for m in reinit] == CLASS_DEPENDENT
    assert "(81, 32) in the checkpoint, (3, 32) in the model" in reinit[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # nothing else was off
    checkpoint = torch.load(coco80, weights_only=True)["model"]
    for name, value in model.state_dict().items():
        expected = fresh[name] if name in CLASS_DEPENDENT else checkpoint[name]
        assert torch.equal(value, expected), name


def test_other_heads_declare_their_class_dependent_parameters(golden_dir):
    from det.checkpoint import class_dependent_parameter_names
    from det.core import build_model, get_cfg

    names = {}
    for case in ("keypoint_rcnn_R_50_FPN", "retinanet_R_50_FPN"):
        cfg = get_cfg()
        cfg.merge_from_file(str(golden_dir / case / "config.yaml"))
        cfg.MODEL.DEVICE = "cpu"
        names[case] = class_dependent_parameter_names(build_model(cfg))
    assert names["keypoint_rcnn_R_50_FPN"] == {
        "roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias",
        "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias",
        "roi_heads.keypoint_head.score_lowres.weight", "roi_heads.keypoint_head.score_lowres.bias"}
    assert names["retinanet_R_50_FPN"] == {"head.cls_score.weight", "head.cls_score.bias"}


def _train_parser():
    from det.engine.commands import train

    parser = argparse.ArgumentParser()
    train.register(parser)
    return parser


def test_class_and_keypoint_counts_come_from_the_json(data, configs_dir, tmp_path, coco80):
    from det.engine.commands.train import plan_training

    for split in ("train", "val"):
        coco = json.loads(data[f"{split}_json"].read_text())
        for cat in coco["categories"]:
            cat["keypoints"] = ["left_tip", "right_tip", "center"]
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            ann["keypoints"] = [x + 1, y + h / 2, 2, x + w - 1, y + h / 2, 2, x + w / 2, y + h / 2, 2]
            ann["num_keypoints"] = 3
        (tmp_path / f"{split}.json").write_text(json.dumps(coco))
    zoo_kp = str(configs_dir / "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml")
    args = _train_parser().parse_args([
        "--config-file", zoo_kp, "--train-json", str(tmp_path / "train.json"), "--train-images",
        str(data["train_images"]), "--val-json", str(tmp_path / "val.json"), "--val-images",
        str(data["val_images"]), "--weights", str(coco80), "--output", str(tmp_path / "out"), "SOLVER.MAX_ITER", "7"])
    plan = plan_training(args)
    cfg = plan.cfg
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2 and cfg.MODEL.RETINANET.NUM_CLASSES == 2
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == 3 and list(cfg.TEST.KEYPOINT_OKS_SIGMAS) == [0.05] * 3
    assert cfg.DATASETS.TRAIN == ("train",) and cfg.DATASETS.TEST == ("val",)
    assert cfg.SOLVER.MAX_ITER == 7 and cfg.SEED >= 0 and str(tmp_path / "out") == cfg.OUTPUT_DIR
    line = [n for n in plan.notes if " classes (" in n]
    # every thing-class count of the schema, a plugin's too (det-pointrend's POINT_HEAD when installed)
    plugin_heads = "".join(f", MODEL.{key}.NUM_CLASSES=2" for key in ("POINT_HEAD",) if key in cfg.MODEL)
    if plugin_heads:
        assert cfg.MODEL.POINT_HEAD.NUM_CLASSES == 2
    assert line == [f"from {tmp_path / 'train.json'}: 2 classes (disk, block) -> MODEL.ROI_HEADS.NUM_CLASSES=2, "
                    f"MODEL.RETINANET.NUM_CLASSES=2{plugin_heads}; 3 keypoints -> MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS=3, "
                    "TEST.KEYPOINT_OKS_SIGMAS=0.05 each (set it for a meaningful keypoint AP)"]
    assert plan.datasets["train"]["metadata"] == {
        "thing_classes": ["disk", "block"], "keypoint_names": ["left_tip", "right_tip", "center"],
        "keypoint_flip_map": [["left_tip", "right_tip"]]}
    assert not (tmp_path / "out").exists()


def test_datasets_file_paths_are_relative_to_the_file(data, tmp_path, monkeypatch):
    from det.data import DatasetCatalog, MetadataCatalog
    from det.engine.commands._common import register_datasets_file, write_datasets_file

    run = tmp_path / "runs" / "one"
    run.mkdir(parents=True)
    write_datasets_file(run / "datasets.json", {"own_rel_val": {
        "json_file": str(data["val_json"]), "image_root": str(data["val_images"]),
        "metadata": {"thing_classes": ["disk", "block"]}}})
    entry = json.loads((run / "datasets.json").read_text())["own_rel_val"]
    assert entry["json_file"] == os.path.relpath(data["val_json"], run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    try:
        assert register_datasets_file(run / "datasets.json") == ["own_rel_val"]
        assert MetadataCatalog.get("own_rel_val").json_file == str(data["val_json"])
        assert len(DatasetCatalog.get("own_rel_val")) == 3
        # the same name from another file (another run) replaces the registration
        shutil.copytree(data["val_images"], tmp_path / "copy" / "images")
        shutil.copy(data["val_json"], tmp_path / "copy" / "val.json")
        write_datasets_file(tmp_path / "copy" / "datasets.json", {"own_rel_val": {
            "json_file": str(tmp_path / "copy" / "val.json"), "image_root": str(tmp_path / "copy" / "images")}})
        assert register_datasets_file(tmp_path / "copy" / "datasets.json") == ["own_rel_val"]
        assert MetadataCatalog.get("own_rel_val").image_root == str(tmp_path / "copy" / "images")
    finally:
        DatasetCatalog.remove("own_rel_val")
        MetadataCatalog.remove("own_rel_val")


@pytest.mark.parametrize("grouping, workers", [(True, 0), (False, 0), (True, 2)])
def test_resumed_loader_yields_the_batches_of_an_uninterrupted_run(grouping, workers):
    from det.data.build import build_detection_train_loader
    from det.data.samplers import ResumeTrainingSampler, TrainingSampler

    sizes = [(64, 48), (48, 64), (60, 60), (80, 40), (40, 80), (70, 50), (50, 70)]
    dicts = [{"image_id": i, "width": w, "height": h} for i, (w, h) in enumerate(sizes)]

    def batches(sampler, n):
        # the mapper draws as a random augmentation does: per-image seeded, so the resumed run's
        # draws must be the uninterrupted run's too
        loader = build_detection_train_loader(dicts, mapper=lambda d: {**d, "draw": np.random.rand()}, sampler=sampler,
                                              total_batch_size=2, aspect_ratio_grouping=grouping, num_workers=workers,
                                              seed=5)
        it = iter(loader)
        return [[(d["image_id"], d["draw"]) for d in next(it)] for _ in range(n)]

    full = batches(TrainingSampler(len(dicts), seed=3), 16)
    group_ids = [0 if w > h else 1 for w, h in sizes] if grouping else None
    resumed = batches(ResumeTrainingSampler(TrainingSampler(len(dicts), seed=3), 2, 9, group_ids), 7)
    assert resumed == full[9:]


def test_resumed_trainer_continues_with_the_same_iterations_lr_and_batches(tmp_path, make_tiny_config):
    """An interrupted run (stopped after its checkpoint at iteration 2) and resumed goes on with
    the batches and learning rates the uninterrupted run had at iterations 3 and 4."""
    from det.core.config import get_cfg
    from det.engine.train import hooks
    from det.engine.train.defaults import DefaultTrainer, seed_all_rng

    tiny = make_tiny_config(tmp_path, "resume", num_train=5, num_val=1, seed=2)

    def trainer_for(out, stop_at=None):
        cfg = get_cfg()
        cfg.merge_from_file(str(tiny["config"]))
        cfg.merge_from_list(["OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", 5, "SOLVER.CHECKPOINT_PERIOD", 3, "SEED", 11,
                             "TEST.EVAL_PERIOD", 0, "DATASETS.TEST", (), "SOLVER.STEPS", (3,),
                             "DATALOADER.NUM_WORKERS", 0])
        seed_all_rng(cfg.SEED)  # what default_setup does
        trainer = DefaultTrainer(cfg)
        seen = []

        def record(module, args):
            seen.append(([d["image_id"] for d in args[0]], trainer.optimizer.param_groups[0]["lr"]))
            if stop_at is not None and len(seen) > stop_at:
                raise KeyboardInterrupt  # the "kill" once the checkpoint is written

        trainer.model.register_forward_pre_hook(record)
        trainer.register_hooks([hooks.CallbackHook()])
        return trainer, seen

    full, seen_full = trainer_for(tmp_path / "full")
    full.resume_or_load(resume=False)
    full.train()
    cut, seen_cut = trainer_for(tmp_path / "cut", stop_at=3)
    cut.resume_or_load(resume=False)
    with pytest.raises(KeyboardInterrupt):
        cut.train()
    assert (tmp_path / "cut" / "last_checkpoint").read_text() == "model_0000002.pth"
    resumed, seen_resumed = trainer_for(tmp_path / "cut")
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 3
    resumed.train()
    assert len(seen_full) == 5 and seen_cut[:3] == seen_full[:3]
    assert seen_resumed == seen_full[3:]
    assert seen_full[4][1] < seen_full[2][1]  # the LR step at iteration 3 is replayed too


def test_eval_tells_a_lazy_run_folder_from_a_yacs_one(tmp_path):
    from omegaconf import OmegaConf

    from det.core import get_cfg
    from det.core.config import LazyConfig
    from det.engine.commands.eval import _saved_lazy_config

    (tmp_path / "yacs.yaml").write_text(get_cfg().dump())
    lazy = OmegaConf.create({"model": {"_target_": "torch.nn.Identity"}, "train": {"output_dir": "out"}})
    LazyConfig.save(lazy, str(tmp_path / "lazy.yaml"))
    assert not _saved_lazy_config(str(tmp_path / "yacs.yaml"))
    assert _saved_lazy_config(str(tmp_path / "lazy.yaml"))


def test_several_training_jsons_each_with_its_folder(data, zoo, coco80, tmp_path):
    from det.engine.commands.train import plan_training

    other = tmp_path / "more"
    shutil.copytree(data["train_images"], other / "images")
    shutil.copy(data["train_json"], other / "train.json")
    args = _train_parser().parse_args([
        "--config-file", zoo, "--train-json", str(data["train_json"]), "--train-json", str(other / "train.json"),
        "--train-images", str(data["train_images"]), "--train-images", str(other / "images"),
        "--weights", str(coco80), "--output", str(tmp_path / "out")])
    plan = plan_training(args)
    assert plan.cfg.DATASETS.TRAIN == ("train", "train_2") and plan.cfg.DATASETS.TEST == ()
    assert plan.datasets["train_2"]["image_root"] == str(other / "images")
    assert len([n for n in plan.notes if n.startswith("data check: ")]) == 2
