"""detectron2's tools/ as det commands: ``det analyze``, ``det visualize-data``,
``det visualize-json``, ``det benchmark``, and the counting API of ``det.engine.analysis``."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from det.core.cli import main as det_main
from det.data import DatasetCatalog, MetadataCatalog
from det.engine.analysis import (
    activation_count_operators,
    flop_count_operators,
    parameter_count,
    parameter_count_table,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_config):
    """A registered tiny shapes dataset and a config file (``_BASE_`` = the demo config)."""
    return make_tiny_config(tmp_path_factory.mktemp("tools"), "tools", num_train=4, num_val=2, seed=11)


@pytest.fixture(scope="module")
def tiny_model(tiny):
    from det.core.modeling.build import build_model
    from det.engine.commands._common import setup_cfg

    cfg = setup_cfg(str(tiny["config"]))
    return cfg, build_model(cfg).eval()


# -- det.engine.analysis ---------------------------------------------------------------------


def test_parameter_count_is_the_numel_sum_under_every_prefix(tiny_model):
    _, model = tiny_model
    counts = parameter_count(model)
    params = dict(model.named_parameters())
    assert counts[""] == sum(p.numel() for p in params.values())
    for prefix, count in counts.items():
        if not prefix:
            continue
        expected = sum(p.numel() for name, p in params.items() if name == prefix or name.startswith(prefix + "."))
        assert count == expected, prefix
    stem = model.backbone.bottom_up.stem.conv1.weight
    assert counts["backbone.bottom_up.stem.conv1.weight"] == stem.shape[0] * 3 * 7 * 7
    assert {"backbone", "proposal_generator", "roi_heads"} <= set(counts)


def test_parameter_count_table_lists_modules_then_shapes_to_max_depth():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.Linear(200, 1000), nn.Linear(1000, 10)))
    table = parameter_count_table(model, max_depth=2).splitlines()
    assert [c.strip() for c in table[0].split("|")[1:3]] == ["name", "#elements or shape"]
    rows = [[c.rstrip() for c in line.split("|")[1:3]] for line in table[2:]]
    assert rows[0] == [" model", " 0.2M"]  # 224 + 201000 + 10010 elements
    assert [" 0.weight", "   (8, 3, 3, 3)"] not in rows and ["   0.weight", "   (8, 3, 3, 3)"] in rows
    assert ["  1", "  0.2M"] in rows and ["   1.0", "   0.2M"] in rows
    assert not any("1.0.weight" in r[0] for r in rows)  # depth 3 is left out
    with pytest.raises(ValueError, match="max_depth"):
        parameter_count_table(model, max_depth=0)


def test_flops_of_a_conv_and_a_linear_are_their_multiply_adds():
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    x = torch.rand(2, 3, 16, 16)  # -> (2, 8, 8, 8)
    macs = 2 * 8 * 8 * 8 * (3 * 3 * 3)
    assert flop_count_operators(conv, x) == {"conv": pytest.approx(macs / 1e9)}
    assert activation_count_operators(conv, x) == {"conv": pytest.approx(2 * 8 * 8 * 8 / 1e6)}

    grouped = nn.Conv2d(8, 16, kernel_size=3, groups=4)
    assert flop_count_operators(grouped, torch.rand(1, 8, 10, 10))["conv"] == pytest.approx(16 * 2 * 9 * 8 * 8 / 1e9)
    transposed = nn.ConvTranspose2d(4, 6, kernel_size=2, stride=2)  # fvcore: input positions x weights
    assert flop_count_operators(transposed, torch.rand(1, 4, 5, 5))["conv"] == pytest.approx(25 * 4 * 6 * 4 / 1e9)

    linear = nn.Linear(20, 7)
    assert flop_count_operators(linear, torch.rand(5, 20)) == {"linear": pytest.approx(5 * 20 * 7 / 1e9)}
    assert activation_count_operators(linear, torch.rand(5, 20)) == {"linear": pytest.approx(5 * 7 / 1e6)}


def test_counting_sees_the_training_path_ops_and_restores_the_model():
    from det.core.layers import Linear  # its CPU inference route is a oneDNN op

    model = nn.Sequential(Linear(20, 7), nn.ReLU())
    model[0].weight.requires_grad_(False)
    assert flop_count_operators(model, torch.rand(3, 20)) == {"linear": pytest.approx(3 * 20 * 7 / 1e9)}
    assert model.training and not model[0].weight.requires_grad and model[0].bias.requires_grad

    up = flop_count_operators(nn.Sequential(nn.GroupNorm(2, 4), nn.Upsample(scale_factor=2)), torch.rand(1, 4, 3, 3))
    assert up == {"group_norm": pytest.approx(36 * 5 / 1e9), "upsample_nearest2d": pytest.approx(144 / 1e9)}


def test_detection_model_conv_and_linear_flops_match_their_layers(tiny, tiny_model):
    """Every conv and linear layer's multiply-adds, from its real input/output shapes, add up to
    the counted ``conv`` and ``linear`` GFLOPs of a whole Mask R-CNN forward."""
    from det.data.build import build_detection_test_loader

    cfg, model = tiny_model
    batch = next(iter(build_detection_test_loader(cfg, tiny["names"][1])))
    expected = {"conv": 0, "linear": 0}

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = math.prod(module.kernel_size) * module.in_channels // module.groups
            expected["conv"] += output.numel() * k
        elif isinstance(module, nn.ConvTranspose2d):  # the mask head's deconv: per input position
            k = math.prod(module.kernel_size) * module.out_channels // module.groups
            expected["conv"] += inputs[0].numel() * k
        else:
            expected["linear"] += output.numel() * module.in_features

    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, layers)]
    try:
        counts = flop_count_operators(model, batch)
    finally:
        for h in handles:
            h.remove()
    assert expected["conv"] > 0 and expected["linear"] > 0
    assert counts["conv"] == pytest.approx(expected["conv"] / 1e9)
    assert counts["linear"] == pytest.approx(expected["linear"] / 1e9)
    assert "upsample_nearest2d" in counts  # FPN's top-down path


# -- the commands --------------------------------------------------------------------------


@pytest.mark.slow
def test_det_analyze_prints_parameter_and_flop_tables(tiny, capsys):
    status = det_main(["analyze", "--config-file", str(tiny["config"]), "--tasks", "parameter", "flop",
                       "-n", "1", "--no-progress"])
    assert status == 0
    out = capsys.readouterr().out
    assert "Parameter Count:\n| name" in out and "| model " in out and "backbone.bottom_up" in out
    assert "Flops table computed from only one input sample:\n| module" in out
    assert "Average GFlops for each type of operators:\n[('conv'," in out
    assert "Total GFlops: " in out and "(over 1 images)" in out


def test_det_analyze_structure_and_bad_tasks(tiny, capsys):
    from det.engine.commands import analyze
    from det.engine.commands._common import CommandError

    assert det_main(["analyze", "--config-file", str(tiny["config"]), "--tasks", "structure"]) == 0
    assert "Model Structure:\nGeneralizedRCNN(" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        det_main(["analyze", "--config-file", str(tiny["config"]), "--tasks", "flops"])  # argparse: invalid choice
    assert "invalid choice: 'flops'" in capsys.readouterr().err
    with pytest.raises(CommandError, match="unknown task"):
        analyze.main(str(tiny["config"]), ["speed"])
    assert det_main(["analyze", "--config-file", str(tiny["config"]), "--tasks", "flop", "-n", "0"]) == 2
    assert "--num-inputs must be positive" in capsys.readouterr().err
    assert det_main(["analyze", "--config-file", str(tiny["config"]), "--tasks", "flop",  # "--" ends --tasks
                     "--", "DATASETS.TEST", "('no_such_dataset',)"]) == 2
    assert "dataset 'no_such_dataset' (from DATASETS.TEST) is not registered" in capsys.readouterr().err


def test_det_visualize_data_annotation_writes_one_png_per_image(tiny, capsys):
    from PIL import Image

    out = tiny["root"] / "vis_annotation"
    status = det_main(["visualize-data", "--config-file", str(tiny["config"]), "--source", "annotation",
                       "--output-dir", str(out), "--no-progress"])
    assert status == 0
    dicts = DatasetCatalog.get(tiny["names"][0])
    pngs = sorted(out.iterdir())
    assert [p.name for p in pngs] == sorted(f"{p.rsplit('/', 1)[-1].rsplit('.', 1)[0]}.png"
                                            for p in (d["file_name"] for d in dicts))
    sizes = {f"{d['file_name'].rsplit('/', 1)[-1].rsplit('.', 1)[0]}.png": (d["width"], d["height"]) for d in dicts}
    for png in pngs:
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size == sizes[png.name]
    assert f"{len(dicts)} images drawn from the annotation" in capsys.readouterr().out


def test_det_visualize_data_dataloader_draws_training_batches(tiny):
    from PIL import Image

    out = tiny["root"] / "vis_loader"
    status = det_main(["visualize-data", "--config-file", str(tiny["config"]), "--source", "dataloader",
                       "--output-dir", str(out), "--num-images", "3", "--no-progress"])
    assert status == 0
    pngs = list(out.glob("*.png"))
    assert len(pngs) == 3
    for png in pngs:
        with Image.open(png) as im:
            assert min(im.size) == 64  # MIN_SIZE_TRAIN: the mapper's resized image


def test_det_visualize_data_reports_bad_arguments(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit):
        det_main(["visualize-data", "--config-file", str(tiny["config"]), "--source", "images"])
    assert det_main(["visualize-data", "--config-file", str(tiny["config"]), "--source", "annotation",
                     "--output-dir", str(tmp_path), "DATASETS.TRAIN", "('missing_train',)"]) == 2
    assert "dataset 'missing_train' (from DATASETS.TRAIN) is not registered" in capsys.readouterr().err
    assert det_main(["visualize-data", "--config-file", str(tiny["config"]), "--source", "annotation",
                     "--output-dir", str(tmp_path), "--num-images", "0"]) == 2
    assert "--num-images must be positive" in capsys.readouterr().err


@pytest.fixture(scope="module")
def results_json(tiny):
    """COCO-format results for the validation images: each annotation as a 0.9 prediction, and a
    0.2 one that the default threshold leaves out."""
    val = tiny["names"][1]
    DatasetCatalog.get(val)
    with open(MetadataCatalog.get(val).json_file) as f:
        coco = json.load(f)
    results = []
    for a in coco["annotations"]:
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                        "score": 0.9, "segmentation": a["segmentation"]})
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                        "score": 0.2})
    path = tiny["root"] / "coco_instances_results.json"
    path.write_text(json.dumps(results))
    return path


def test_det_visualize_json_writes_predictions_beside_ground_truth(tiny, results_json, capsys):
    from PIL import Image

    from det.engine.commands.visualize_json import create_instances, load_results

    out = tiny["root"] / "vis_json"
    status = det_main(["visualize-json", "--input", str(results_json), "--output", str(out),
                       "--dataset", tiny["names"][1], "--no-progress"])
    assert status == 0
    dicts = DatasetCatalog.get(tiny["names"][1])
    assert len(list(out.glob("*.png"))) == len(dicts)
    for d in dicts:
        stem = d["file_name"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        with Image.open(out / f"{stem}.png") as im:
            assert im.size == (2 * d["width"], d["height"])  # predictions | ground truth
    assert f"{len(dicts)} images (predictions | ground truth)" in capsys.readouterr().out

    results = [r for r in load_results(results_json) if r["image_id"] == dicts[0]["image_id"]]
    kept = create_instances(results, (d["height"], d["width"]), 0.5, lambda i: i - 1)
    assert len(kept) == len(results) // 2 and kept.has("pred_masks")
    assert len(create_instances(results, (10, 10), 0.1, lambda i: i - 1)) == len(results)


def test_det_visualize_json_reports_bad_input(tiny, results_json, tmp_path, capsys):
    args = ["visualize-json", "--output", str(tmp_path / "o"), "--no-progress"]
    assert det_main([*args, "--input", str(tmp_path / "missing.json"), "--dataset", tiny["names"][1]]) == 2
    assert "results file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    assert det_main([*args, "--input", str(tmp_path / "bad.json"), "--dataset", tiny["names"][1]]) == 2
    assert "must hold a list of COCO results" in capsys.readouterr().err
    assert det_main([*args, "--input", str(results_json), "--dataset", "no_such_val"]) == 2
    assert "dataset 'no_such_val' (from --dataset) is not registered" in capsys.readouterr().err
    assert det_main([*args, "--input", str(results_json), "--dataset", tiny["names"][1],
                     "--conf-threshold", "1.5"]) == 2
    assert "--conf-threshold must be in [0, 1]" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1],
                                                      "score": 1.0}]))
    assert det_main([*args, "--input", str(tmp_path / "other.json"), "--dataset", tiny["names"][1]]) == 2
    assert "wrong --dataset?" in capsys.readouterr().err


def test_det_benchmark_eval_prints_timing(tiny, capsys):
    status = det_main(["benchmark", "--config-file", str(tiny["config"]), "--task", "eval", "--iters", "2",
                       "--warmup", "1", "--no-progress"])
    assert status == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("eval: "))
    assert line.startswith("eval: 2 iterations in ") and " s/iter, " in line and line.endswith(" images/s")


def test_det_benchmark_data_tasks_print_timing(tiny, capsys):
    assert det_main(["benchmark", "--config-file", str(tiny["config"]), "--task", "data_advanced", "--iters", "2",
                     "--warmup", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for stage in ("data_advanced dataset: 2 items", "data_advanced mapper: 2 images",
                  "data_advanced loader (0 workers): 2 batches"):
        assert stage in out


def test_det_benchmark_reports_bad_arguments(tiny, capsys):
    with pytest.raises(SystemExit):
        det_main(["benchmark", "--config-file", str(tiny["config"]), "--task", "inference"])
    assert det_main(["benchmark", "--config-file", str(tiny["config"]), "--task", "eval", "--iters", "0"]) == 2
    assert "--iters must be positive" in capsys.readouterr().err
    assert det_main(["benchmark", "--config-file", str(tiny["config"]), "--task", "eval", "--num-gpus", "2"]) == 2
    assert "runs in one process" in capsys.readouterr().err
