"""``det train/eval/predict/export`` with a LazyConfig ``.py`` file (detectron2's
``lazyconfig_train_net.py`` flow), on a tiny shapes dataset.

The config is detectron2's own ``mask_rcnn_R_50_FPN_1x.py`` (through det-compat-detectron2),
loaded by a small config file that shrinks it and points it at the dataset, the way a user
derives a config from a zoo one.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

from det.core.cli import main as det
from det.data import DatasetCatalog
from det.data.shapes import ShapesConfig, register_shapes

TINY = """
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig
import detectron2.data.transforms as T
from detectron2.modeling.backbone import BottleneckBlock, ResNet

_zoo = LazyConfig.load({zoo!r})
model, dataloader, optimizer, lr_multiplier, train = (
    _zoo.model, _zoo.dataloader, _zoo.optimizer, _zoo.lr_multiplier, _zoo.train)

_stages, _in, _out, _b = [], 16, 16, 4
for _n, _s in zip((1, 1, 1, 1), (1, 2, 2, 2)):
    _stages.append(L(ResNet.make_stage)(block_class=BottleneckBlock, num_blocks=_n, stride_per_block=[_s],
                                        in_channels=_in, out_channels=_out, bottleneck_channels=_b,
                                        stride_in_1x1=True, norm="FrozenBN"))
    _in, _out, _b = _out, _out * 2, _b * 2
model.backbone.bottom_up.stages = _stages
model.backbone.bottom_up.stem.out_channels = 16
model.backbone.out_channels = 16
model.proposal_generator.head.in_channels = 16
model.roi_heads.num_classes = 3
model.roi_heads.batch_size_per_image = 32
model.roi_heads.box_head.input_shape.channels = 16
model.roi_heads.box_head.fc_dims = [32]
model.roi_heads.box_predictor.input_shape.channels = 32
model.roi_heads.mask_head.input_shape.channels = 16
model.roi_heads.mask_head.conv_dims = [8, 8]

dataloader.train.dataset.names = {train_name!r}
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.train.mapper.instance_mask_format = "bitmask"  # shapes: occluded masks are RLE
dataloader.train.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=(64,), max_size=96,
                                                                  sample_style="choice")]
dataloader.test.dataset.names = {val_name!r}
dataloader.test.num_workers = 0
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=64, max_size=96)]

train.max_iter = 2
train.device = "cpu"
train.output_dir = {output!r}
train.init_checkpoint = ""
train.eval_period = 0
train.log_period = 1
train.checkpointer.period = 1000
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, configs_dir):
    root = tmp_path_factory.mktemp("lazy_commands")
    names = (f"lazy_train_{uuid.uuid4().hex[:6]}", f"lazy_val_{uuid.uuid4().hex[:6]}")
    register_shapes(ShapesConfig(num_train=4, num_val=2, seed=3, min_image_size=64, max_image_size=80,
                                 min_shape_size=16, max_shape_size=36), root / "data", names=names)
    config = root / "tiny.py"
    config.write_text(textwrap.dedent(TINY).format(
        zoo=str(configs_dir / "COCO-InstanceSegmentation" / "mask_rcnn_R_50_FPN_1x.py"),
        train_name=names[0], val_name=names[1], output=str(root / "out")))
    yield {"root": root, "config": config, "out": root / "out", "names": names}
    for name in names:
        if name in DatasetCatalog:
            DatasetCatalog.remove(name)


def _iterations(out: Path) -> list[int]:
    return [json.loads(line)["iteration"] for line in (out / "metrics.json").read_text().splitlines() if line]


@pytest.mark.slow
def test_train_eval_predict_with_a_lazy_config(tiny, capsys):
    assert det(["train", "--config-file", str(tiny["config"])]) == 0
    err = capsys.readouterr().err
    assert f"det train: reading a LazyConfig (Python) file: {tiny['config']}" in err
    out = tiny["out"]
    assert (out / "model_final.pth").is_file() and (out / "last_checkpoint").is_file()
    first_last = _iterations(out)[-1]
    assert first_last in (1, 2)  # the last iteration, as the writers number it
    saved = (out / "config.yaml").read_text()  # default_setup saved the LazyConfig
    assert "max_iter: 2" in saved and "_target_: det." in saved

    # --resume continues after the last finished iteration, with a longer schedule
    assert det(["train", "--config-file", str(tiny["config"]), "--resume", "train.max_iter=3"]) == 0
    iterations = _iterations(out)
    assert iterations[-1] == first_last + 1 and 0 not in iterations[iterations.index(first_last) + 1:]

    weights = str(out / "model_final.pth")
    assert det(["eval", "--config-file", str(tiny["config"]), "--weights", weights,
                "--output", str(tiny["root"] / "eval")]) == 0
    results = json.loads((tiny["root"] / "eval" / "results.json").read_text())
    # segm is evaluated when the barely trained model predicts any instance (COCOEvaluator's rule)
    assert "bbox" in results and set(results) <= {"bbox", "segm"} and "AP" in results["bbox"]

    image = sorted((tiny["root"] / "data").rglob("*.png"))[0]
    assert det(["predict", "--config-file", str(tiny["config"]), "--weights", weights, str(image),
                "--output", str(tiny["root"] / "pred"), "--confidence-threshold", "0"]) == 0
    predictions = json.loads((tiny["root"] / "pred" / "predictions.json").read_text())
    # a model trained for 3 iterations may find nothing above the heads' test threshold: the entry
    # and its visualization are what every run has
    assert predictions[0]["file_name"] == str(image) and isinstance(predictions[0]["instances"], list)
    assert (tiny["root"] / "pred" / predictions[0]["visualization"]).is_file()
    err = capsys.readouterr().err
    assert "det eval: reading a LazyConfig (Python) file" in err
    assert "det predict: reading a LazyConfig (Python) file" in err

    # --eval-only evaluates train.init_checkpoint, as lazyconfig_train_net.py
    assert det(["train", "--config-file", str(tiny["config"]), "--eval-only",
                f"train.init_checkpoint={weights}"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["train.max_itr=3"], "det train: error: Config override 'train.max_itr=3': the config has no key "
                          "'train.max_itr' (no 'max_itr' under train; did you mean train.max_iter?)"),
    (["SOLVER.MAX_ITER", "3"], "is a LazyConfig (Python) file: overrides are 'path.key=value'"),
    (["train.max_iter=[1,"], "Cannot parse config override 'train.max_iter=[1,'"),
])
def test_bad_overrides_are_one_line_errors(tiny, capsys, argv, message):
    assert det(["train", "--config-file", str(tiny["config"]), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("det train: reading a LazyConfig")
    assert message in err[1]


def test_broken_config_files_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("model = dict(\n")
    assert det(["train", "--config-file", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"det train: error: Config file {bad} has a syntax error, line 1")
    missing = tmp_path / "imports.py"
    missing.write_text("from detectron2.evaluation import fast_eval_api\n")
    assert det(["eval", "--config-file", str(missing), "--weights", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "line 1: det does not provide detectron2.evaluation.fast_eval_api" in err[-1]
    assert det(["export", "--config-file", str(missing), "--weights", str(bad), "--format", "torch",
                "--output", str(tmp_path / "m.pt2")]) == 2
    assert "det does not provide detectron2.evaluation.fast_eval_api" in capsys.readouterr().err


def test_other_commands_refuse_a_lazy_config_clearly(tiny, capsys):
    assert det(["analyze", "--config-file", str(tiny["config"]), "--tasks", "parameter"]) == 2
    assert "is a LazyConfig (Python) file; this command reads YAML (yacs) configs only" in capsys.readouterr().err
