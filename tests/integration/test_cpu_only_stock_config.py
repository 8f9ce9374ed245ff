"""A stock model-zoo config (MODEL.DEVICE: cuda) on a machine without CUDA: `det predict` runs on
the CPU and prints one warning line naming MODEL.DEVICE, never PyTorch's "Found no NVIDIA driver"
traceback; an impossible device is a one-line error. CUDA is hidden from the child process, so the
test means the same on a GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

# the golden RetinaNet's widths (../shared/golden/README.md), so its checkpoint loads into the
# stock config; a small test size keeps the run short
GOLDEN_WIDTHS = [
    "MODEL.RESNETS.WIDTH_PER_GROUP", "4", "MODEL.RESNETS.STEM_OUT_CHANNELS", "16",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "16", "MODEL.FPN.OUT_CHANNELS", "16",
    "INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "224",
]


def _det(*args, cwd):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "det.core.cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
        timeout=600, check=False,
    )


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "street.png"
    pixels = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.slow
def test_det_predict_with_a_stock_config_runs_on_the_cpu_with_one_warning(configs_dir, golden_dir, image, tmp_path):
    result = _det(
        "predict", "--config-file", str(configs_dir / "COCO-Detection" / "retinanet_R_50_FPN_1x.yaml"),
        "--weights", str(golden_dir / "retinanet_R_50_FPN" / "model_final.pth"), str(image),
        "--output", str(tmp_path / "out"), "--opts", *GOLDEN_WIDTHS, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    # besides the line saying which kind of config was read, exactly one: the device warning
    assert [line for line in lines if not line.startswith("det predict: reading a YAML")] == [
        "MODEL.DEVICE is 'cuda' but CUDA is not available on this machine; running on the CPU "
        "(set MODEL.DEVICE cpu to choose it and silence this)"
    ]
    assert "NVIDIA" not in result.stdout + result.stderr
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert len(predictions) == 1 and predictions[0]["instances"]


def test_det_predict_with_an_impossible_device_is_a_one_line_error(configs_dir, golden_dir, image, tmp_path, capsys):
    from det.core.cli import main

    status = main([
        "predict", "--config-file", str(configs_dir / "COCO-Detection" / "retinanet_R_50_FPN_1x.yaml"),
        "--weights", str(golden_dir / "retinanet_R_50_FPN" / "model_final.pth"), str(image),
        "--output", str(tmp_path / "out"), "--opts", "MODEL.DEVICE", "gpu",
    ])
    assert status == 2
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [
        "det predict: error: MODEL.DEVICE is 'gpu', which is not a device PyTorch knows (use cpu, cuda, "
        "or cuda:N for the N-th GPU)"
    ]
    assert not (tmp_path / "out").exists()
