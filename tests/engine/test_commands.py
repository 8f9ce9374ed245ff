"""``det train``, ``det eval`` and ``det predict`` through det-core's CLI, on a tiny config."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import yaml

from det.core.cli import main as det_main
from det.data import DatasetCatalog


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_config):
    """A registered tiny shapes dataset and a config file (``_BASE_`` = the demo config)."""
    return make_tiny_config(tmp_path_factory.mktemp("cmd"), "cmd", num_train=6, num_val=3, seed=7)


@pytest.fixture(scope="module")
def trained(tiny):
    out = tiny["root"] / "train"
    status = det_main(["train", "--config-file", str(tiny["config"]), "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "2"])
    assert status == 0
    return out


@pytest.mark.slow
def test_det_train_writes_checkpoint_config_and_metrics(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"model_final.pth", "last_checkpoint", "metrics.json", "config.yaml", "log.txt", "inference"} <= names
    saved = yaml.safe_load((trained / "config.yaml").read_text())
    assert saved["SOLVER"]["MAX_ITER"] == 2 and saved["OUTPUT_DIR"] == str(trained)


@pytest.mark.slow
def test_det_train_resume_and_eval_only(tiny, trained):
    # resuming a finished run loads model_final (iteration 1) and has nothing left to train
    status = det_main(["train", "--config-file", str(tiny["config"]), "--resume", "OUTPUT_DIR", str(trained)])
    assert status == 0
    status = det_main(["train", "--config-file", str(tiny["config"]), "--eval-only",
                       "MODEL.WEIGHTS", str(trained / "model_final.pth"), "OUTPUT_DIR", str(tiny["root"] / "evalonly")])
    assert status == 0
    assert (tiny["root"] / "evalonly" / "inference" / "instances_predictions.pth").is_file()
    assert not (tiny["root"] / "evalonly" / "model_final.pth").exists()


@pytest.mark.slow
def test_det_train_eval_only_with_test_time_augmentation(tiny, trained):
    out = tiny["root"] / "evaltta"
    status = det_main(["train", "--config-file", str(tiny["config"]), "--eval-only",
                       "MODEL.WEIGHTS", str(trained / "model_final.pth"), "OUTPUT_DIR", str(out),
                       "TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "(56, 64)", "TEST.AUG.MAX_SIZE", "128"])
    assert status == 0
    assert (out / "inference" / "instances_predictions.pth").is_file()
    assert (out / "inference_TTA" / "instances_predictions.pth").is_file()


@pytest.mark.slow
def test_det_eval_prints_and_writes_results(tiny, trained, capsys):
    out = tiny["root"] / "eval"
    status = det_main(["eval", "--config-file", str(tiny["config"]), "--weights", str(trained / "model_final.pth"),
                       "--output", str(out)])
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"bbox", "segm"} and {"AP", "AP50", "AP75", "APs", "APm", "APl"} <= set(results["bbox"])
    printed = capsys.readouterr().out
    assert json.loads(printed[re.search(r"(?m)^\{", printed).start():]) == results


@pytest.mark.slow
def test_det_predict_writes_pngs_and_json(tiny, trained, capsys):
    from PIL import Image

    images = [d["file_name"] for d in DatasetCatalog.get(tiny["names"][1])[:2]]
    out = tiny["root"] / "pred"
    status = det_main(["predict", "--config-file", str(tiny["config"]), "--weights", str(trained / "model_final.pth"),
                       *images, "--output", str(out), "--confidence-threshold", "0.0"])
    assert status == 0
    entries = json.loads((out / "predictions.json").read_text())
    assert [e["file_name"] for e in entries] == images
    for e in entries:
        png = Image.open(out / e["visualization"])
        assert png.format == "PNG" and min(png.size) >= e["height"] * 0 + 64
        for inst in e["instances"]:
            assert set(inst) >= {"category_id", "category", "score", "bbox", "segmentation"}
            assert inst["category"] in ("circle", "square", "triangle") and 0 <= inst["score"] <= 1
            assert inst["segmentation"]["size"] == [e["height"], e["width"]]
    assert "predictions on 2 images" in capsys.readouterr().out


def test_commands_report_user_errors(tiny, tmp_path, capsys):
    assert det_main(["train", "--config-file", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert det_main(["train", "--config-file", str(tiny["config"]), "SOLVER.MAX_ITER"]) == 2
    assert "KEY VALUE pairs" in capsys.readouterr().err
    assert det_main(["train", "--config-file", str(tiny["config"]), "SOLVER.MAX_ITERS", "3"]) == 2
    assert "SOLVER.MAX_ITER" in capsys.readouterr().err  # the closest valid key is suggested
    assert det_main(["eval", "--config-file", str(tiny["config"]), "--weights", str(tmp_path / "no.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert det_main(["predict", "--config-file", str(tiny["config"]), "--weights", str(tmp_path / "no.pth"),
                     str(tmp_path / "none.png"), "--output", str(tmp_path)]) == 2
    assert "image file(s) not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        det_main(["predict", "--config-file", str(tiny["config"])])  # argparse: weights/images/output missing


def test_datasets_file_next_to_a_config_registers_its_datasets(tiny, tmp_path):
    from det.data import MetadataCatalog
    from det.engine.commands._common import CommandError, register_datasets_file, setup_cfg

    DatasetCatalog.get(tiny["names"][1])  # shapes files are written on first use; this test may run first
    source = MetadataCatalog.get(tiny["names"][1])
    name = f"from_file_{uuid.uuid4().hex[:6]}"
    config = yaml.safe_load(tiny["config"].read_text())
    config["DATASETS"] = {"TRAIN": [name], "TEST": [name]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "datasets.json").write_text(json.dumps({name: {
        "json_file": source.json_file, "image_root": source.image_root,
        "metadata": {"thing_classes": ["circle", "square", "triangle"]}}}))
    try:
        cfg = setup_cfg(str(tmp_path / "c.yaml"))
        assert cfg.DATASETS.TEST == (name,)  # noqa: SIM300  (name is a variable, not a constant)
        assert len(DatasetCatalog.get(name)) == 3
        assert MetadataCatalog.get(name).evaluator_type == "coco"
        assert register_datasets_file(tmp_path / "datasets.json") == []  # already registered
    finally:
        DatasetCatalog.remove(name)
    (tmp_path / "bad.json").write_text(json.dumps({"x": {"json_file": "a.json"}}))
    with pytest.raises(CommandError, match="needs 'json_file' and 'image_root'"):
        register_datasets_file(tmp_path / "bad.json")


def test_datasets_file_entry_replaces_a_builtin_dataset_of_that_name(tiny, tmp_path):
    from det.data import MetadataCatalog
    from det.data.datasets.builtin import register_all_builtin
    from det.engine.commands._common import register_datasets_file

    DatasetCatalog.get(tiny["names"][1])
    source = MetadataCatalog.get(tiny["names"][1])
    (tmp_path / "datasets.json").write_text(json.dumps({"coco_2017_val": {
        "json_file": source.json_file, "image_root": source.image_root}}))
    try:
        assert register_datasets_file(tmp_path / "datasets.json") == ["coco_2017_val"]
        assert len(DatasetCatalog.get("coco_2017_val")) == 3
        assert MetadataCatalog.get("coco_2017_val").json_file == source.json_file
    finally:
        DatasetCatalog.remove("coco_2017_val")
        MetadataCatalog.remove("coco_2017_val")
        register_all_builtin()
    assert MetadataCatalog.get("coco_2017_val").json_file.endswith("instances_val2017.json")


def test_engine_declares_its_commands():
    from det.core import plugins

    declared = {d.name: d.target for d in plugins.command_declarations() if d.distribution == "det-engine"}
    assert declared == {
        "train": "det.engine.commands.train:register",
        "eval": "det.engine.commands.eval:register",
        "predict": "det.engine.commands.predict:register",
        "demo": "det.engine.commands.demo:register",
        "analyze": "det.engine.commands.analyze:register",
        "visualize-data": "det.engine.commands.visualize_data:register",
        "visualize-json": "det.engine.commands.visualize_json:register",
        "benchmark": "det.engine.commands.benchmark:register",
    }
