"""``det export``: declared through det_cli_commands, checks its arguments, writes a model that
load_exported runs."""

from __future__ import annotations

import pytest
import torch

from det.core import plugins
from det.core.cli import main
from det.export import load_exported


def test_command_is_declared_by_det_export():
    commands = {decl.name: decl for decl in plugins.command_declarations()}
    assert "export" in commands
    assert commands["export"].target == "det.export.cli:register"
    assert commands["export"].distribution == "det-export"


def test_missing_files_and_wrong_suffix(tmp_path, capsys, golden_case):
    case = golden_case("faster_rcnn_R_50_C4")
    assert (
        main(
            [
                "export",
                "--config-file",
                str(tmp_path / "none.yaml"),
                "--weights",
                str(case.pth),
                "--format",
                "torch",
                "--output",
                str(tmp_path / "m.pt2"),
            ]
        )
        == 2
    )
    assert "config file" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "--config-file",
                str(case.config_file),
                "--weights",
                str(tmp_path / "w.pth"),
                "--format",
                "onnx",
                "--output",
                str(tmp_path / "m.onnx"),
            ]
        )
        == 2
    )
    assert "weights" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "--config-file",
                str(case.config_file),
                "--weights",
                str(case.pth),
                "--format",
                "onnx",
                "--output",
                str(tmp_path / "m.pt2"),
            ]
        )
        == 2
    )
    assert "writes a .onnx file" in capsys.readouterr().err


def test_bad_format_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["export", "--config-file", "c.yaml", "--weights", "w.pth", "--format", "tflite", "--output", "m"]
        )
    assert exit_info.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err


@pytest.mark.slow
def test_exports_the_c4_golden_model(tmp_path, capsys, golden_case):
    case = golden_case("faster_rcnn_R_50_C4")
    out = tmp_path / "model.pt2"
    assert (
        main(
            [
                "export",
                "--config-file",
                str(case.config_file),
                "--weights",
                str(case.pkl),
                "--format",
                "torch",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    runner = load_exported(out)
    assert runner.metadata["architecture"] == "GeneralizedRCNN"
    outputs = runner(case.inputs[:1])
    assert len(outputs[0]["instances"]) == 100
    assert outputs[0]["instances"].image_size == (480, 640)
    assert outputs[0]["instances"].pred_boxes.tensor.dtype == torch.float32
