"""``det demo --quick``: the main job end to end on a tiny dataset (checks the pipeline and its
files, not the accuracy, which needs the full run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from det.engine.demo import _nice_ticks, get_demo_cfg, plot_training_curves


@pytest.mark.slow
def test_quick_demo_writes_every_artifact(tmp_path, capsys):
    from det.core.cli import main as det_main

    out = tmp_path / "demo"
    assert det_main(["demo", "--quick", "--output", str(out), "--no-progress", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "box AP"):
        assert step in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True and summary["max_iter"] == 12
    assert summary["shapes_config"]["num_train"] == 16 and summary["shapes_config"]["color_by_class"] is True
    # the saved config names the demo's datasets, and datasets.json says where they are
    datasets = json.loads((out / "datasets.json").read_text())
    assert set(datasets) == {"demo_shapes_train", "demo_shapes_val"}
    assert datasets["demo_shapes_val"]["metadata"]["thing_classes"] == ["circle", "square", "triangle"]
    assert "demo_shapes_val" in (out / "config.yaml").read_text()
    assert set(summary["results"]) == {"bbox", "segm"}
    assert summary["dataset"] == {**summary["dataset"], "train": 16, "val": 6}
    for key in ("checkpoint", "config", "metrics", "training_curves", "predictions", "log"):
        assert (out / summary["files"][key].split("/")[-1]).exists(), key
    assert Image.open(out / "training_curves.png").size == (900, 640)
    assert Image.open(out / "predictions.png").format == "PNG"
    assert len(list((out / "predictions").glob("gt_vs_pred_*.png"))) == 6
    assert "![training curves](training_curves.png)" in (out / "summary.md").read_text()
    lines = (out / "metrics.json").read_text().splitlines()
    assert len(lines) >= 12  # written every iteration on a 12-iteration run, plus the evaluation


def test_demo_config_is_embedded_and_overridable(tmp_path):
    cfg = get_demo_cfg(tmp_path, max_iter=50)
    assert cfg.MODEL.MASK_ON and cfg.MODEL.RESNETS.DEPTH == 18 and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 3
    assert cfg.SOLVER.MAX_ITER == 50 and cfg.SOLVER.WARMUP_ITERS == 5 and str(tmp_path) == cfg.OUTPUT_DIR
    assert cfg.DATASETS.TRAIN == ("shapes_train",) and cfg.INPUT.MASK_FORMAT == "bitmask"
    quick = get_demo_cfg(tmp_path, quick=True, opts=["SOLVER.BASE_LR", 0.01])
    assert quick.SOLVER.MAX_ITER == 12 and quick.SOLVER.BASE_LR == 0.01
    with pytest.raises(ValueError, match="max_iter must be a positive"):
        get_demo_cfg(tmp_path, max_iter=0)


def test_training_curves_are_drawn_with_pil(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text("\n".join(json.dumps({"iteration": i, "total_loss": 2.0 / (i + 1), "loss_cls": 1.0 / (i + 1),
                                             "lr": 0.02 * min(1.0, (i + 1) / 5)}) for i in range(0, 40, 2))
                       + "\n" + json.dumps({"iteration": 40, "bbox/AP": 50.0}) + "\n")
    png = plot_training_curves(metrics, tmp_path / "curves.png")
    image = Image.open(png).convert("RGB")
    assert image.size == (900, 640)
    colors = {tuple(int(c) for c in px) for px in np.asarray(image).reshape(-1, 3)}
    assert (31, 119, 180) in colors and (255, 127, 14) in colors  # the first two curves are drawn
    assert _nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    assert _nice_ticks(0, 38) == [0, 10, 20, 30]


def test_demo_rejects_bad_options(capsys, tmp_path, monkeypatch):
    from det.core.cli import main as det_main

    monkeypatch.chdir(tmp_path)
    assert det_main(["demo", "--max-iter", "0"]) == 2
    assert "--max-iter must be positive" in capsys.readouterr().err
    assert det_main(["demo", "--shapes", "num_train"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert det_main(["demo", "--shapes", "num_trains=5"]) == 2
    assert "num_trains" in capsys.readouterr().err
    # the standard registration is back after a failed run
    from det.data import MetadataCatalog

    assert MetadataCatalog.get("shapes_train").shapes_config["num_train"] == 500
    assert not (tmp_path / "det-demo-output").exists()  # nothing written for bad options


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    import os

    import torch

    from det.engine import demo

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert demo._default_num_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (1.1, 0.0, 0.0))
    assert demo._default_num_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert demo._default_num_threads() == 1
