"""``det demo``: the main job end to end on a tiny dataset under a time budget (checks the pipeline,
the budget's wiring and the files, not the accuracy, which needs the full run), and its parts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from det.engine.demo import get_demo_cfg, plot_training_curves


@pytest.mark.slow
def test_quick_demo_under_a_budget_writes_every_artifact(tmp_path, capsys):
    from det.core.cli import main as det_main

    out = tmp_path / "demo"
    assert det_main(["demo", "--quick", "--minutes", "0.6", "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "box AP", "what fits in the budget"):
        assert step in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True and summary["budget"]["minutes"] == 0.6
    for key in ("bbox_AP", "segm_AP", "total_seconds", "iterations", "seconds_per_iteration", "num_threads"):
        assert isinstance(summary[key], int | float), key
    assert summary["dataset"]["color_by_class"] is False  # the standard shapes: random colours
    assert summary["dataset"]["shapes_config"]["num_train"] == 16 and summary["dataset"]["train"] == 16
    assert summary["machine"]["capability"] in ("amx", "avx512_bf16", "avx512", "avx2", "default")
    assert summary["machine"]["cpu_model"] and summary["num_threads"] >= 1
    # the iteration count came from the budget, and the saved config is the run that happened
    fits = summary["budget"]["fits"]
    assert fits and summary["iterations"] == fits[-1]["max_iter"] >= 3
    # the metric lines' ETA counts to the moved max_iter: the last one, at the last iteration, is 0
    etas = [line.split("eta: ")[1].split()[0] for line in (out / "log.txt").read_text().splitlines() if "eta: " in line]
    assert etas and etas[-1] == "0:00:00"
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["SOLVER"]["MAX_ITER"] == summary["iterations"]
    assert saved["SOLVER"]["STEPS"] == summary["lr_steps"] and saved["DATASETS"]["TEST"] == ["demo_shapes_val"]
    datasets = json.loads((out / "datasets.json").read_text())
    assert set(datasets) == {"demo_shapes_train", "demo_shapes_val"}
    assert set(summary["results"]) == {"bbox", "segm"}
    for key in ("checkpoint", "config", "metrics", "training_curves", "predictions", "data", "log"):
        assert (out / summary["files"][key].split("/")[-1]).exists(), key
    assert Image.open(out / "training_curves.png").size == (900, 720)
    assert len(list((out / "predictions").glob("gt_vs_pred_*.png"))) == 6
    md = (out / "summary.md").read_text()
    # a barely trained model's picture shows its best guesses (>= 0.2) rather than nothing, and says so
    threshold = summary["picture_score_threshold"]
    assert threshold in (0.5, 0.2) and f"prediction with score >= {threshold:g}" in md
    assert ("nothing scored 0.5 or more" in md) == (threshold == 0.2)
    for text in ("![training curves](training_curves.png)", "![data](data.png)", "random colours",
                 f"{summary['iterations']} iterations", summary["machine"]["description"], "| bbox |", "| segm |"):
        assert text in md, text


def test_demo_config_is_the_embedded_recipe_and_its_schedule_follows_the_iterations(tmp_path):
    cfg = get_demo_cfg(tmp_path, max_iter=400)
    assert cfg.MODEL.MASK_ON and cfg.MODEL.RESNETS.DEPTH == 18 and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 3
    assert cfg.MODEL.RESNETS.NORM == "GN" and cfg.MODEL.FPN.NORM == "GN" and cfg.MODEL.ROI_MASK_HEAD.NORM == "GN"
    assert cfg.SOLVER.LR_SCHEDULER_NAME == "WarmupMultiStepLR" and cfg.SOLVER.MAX_ITER == 400
    assert cfg.SOLVER.STEPS == (300, 368) and cfg.SOLVER.WARMUP_ITERS == 40 and str(tmp_path) == cfg.OUTPUT_DIR
    assert cfg.INPUT.MASK_FORMAT == "bitmask"
    quick = get_demo_cfg(tmp_path, quick=True, opts=["SOLVER.BASE_LR", 0.01])
    assert quick.SOLVER.MAX_ITER == 12 and quick.SOLVER.BASE_LR == 0.01
    with pytest.raises(ValueError, match="positive number of iterations"):
        get_demo_cfg(tmp_path, max_iter=0)


def test_training_curves_are_drawn_with_matplotlib(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text("\n".join(json.dumps({"iteration": i, "total_loss": 2.0 / (i + 1), "loss_cls": 1.0 / (i + 1),
                                             "lr": 0.02 * min(1.0, (i + 1) / 5), "time": 0.5})
                                 for i in range(0, 40, 2))
                       + "\n" + json.dumps({"iteration": 40, "bbox/AP": 50.0}) + "\n")
    png = plot_training_curves(metrics, tmp_path / "curves.png", title="a title")
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (720, 900, 3)
    colors = {tuple(int(c) for c in px) for px in image.reshape(-1, 3)}
    # matplotlib's first two line colours (tab:blue, tab:orange): both loss curves are drawn
    assert (31, 119, 180) in colors and (255, 127, 14) in colors


def test_demo_rejects_bad_options(capsys, tmp_path, monkeypatch):
    from det.core.cli import main as det_main

    monkeypatch.chdir(tmp_path)
    assert det_main(["demo", "--max-iter", "0"]) == 2
    assert "--max-iter must be positive" in capsys.readouterr().err
    assert det_main(["demo", "--minutes", "-1"]) == 2
    assert "--minutes must be positive" in capsys.readouterr().err
    assert det_main(["demo", "--minutes", "5", "--max-iter", "100"]) == 2
    assert "not both" in capsys.readouterr().err
    assert det_main(["demo", "--shapes", "num_train"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert det_main(["demo", "--shapes", "num_train=many"]) == 2
    assert "num_train=many: the value must be a number" in capsys.readouterr().err
    assert det_main(["demo", "--shapes", "num_trains=5"]) == 2
    assert "num_trains" in capsys.readouterr().err
    # the standard registration is back after a failed run
    from det.data import MetadataCatalog

    assert MetadataCatalog.get("shapes_train").shapes_config["num_train"] == 500
    assert not (tmp_path / "det-demo-output").exists()  # nothing written for bad options
