"""SemanticSegmentor exports too: the program and the ONNX model give eager det's logits at
the input's height/width, for two image sizes from one program."""

from __future__ import annotations

import pytest
import torch

from det.core import build_model, get_cfg
from det.export import TracingAdapter, export_onnx, export_torch, load_exported

pytestmark = pytest.mark.slow

SMALL = [
    "MODEL.DEVICE",
    "cpu",
    "MODEL.RESNETS.DEPTH",
    "50",
    "MODEL.RESNETS.STEM_OUT_CHANNELS",
    "16",
    "MODEL.RESNETS.WIDTH_PER_GROUP",
    "4",
    "MODEL.RESNETS.RES2_OUT_CHANNELS",
    "16",
    "MODEL.FPN.OUT_CHANNELS",
    "16",
    "MODEL.SEM_SEG_HEAD.CONVS_DIM",
    "32",
]


@pytest.fixture(scope="module")
def semseg(configs_dir, tmp_path_factory):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "Misc" / "semantic_R_50_FPN_1x.yaml"))
    cfg.merge_from_list(SMALL)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = [
        {
            "image": torch.randint(0, 256, (3, 160, 224), generator=generator, dtype=torch.uint8),
            "height": 80,
            "width": 112,
        },
        {"image": torch.randint(0, 256, (3, 200, 136), generator=generator, dtype=torch.uint8)},
    ]
    with torch.no_grad():
        eager = [model([x])[0]["sem_seg"] for x in inputs]
    path = tmp_path_factory.mktemp("semseg") / "model.pt2"
    program = export_torch(model, inputs[0]["image"], path)
    return model, inputs, eager, program, path


def _check(outputs, eager):
    for ours, theirs in zip(outputs, eager):
        assert ours["sem_seg"].shape == theirs.shape
        torch.testing.assert_close(ours["sem_seg"], theirs, rtol=1e-4, atol=1e-4)


def test_schema_and_shapes(semseg):
    model, _inputs, eager, _, _ = semseg
    assert TracingAdapter(model).outputs_schema == ("sem_seg",)
    assert eager[0].shape == (54, 80, 112) and eager[1].shape == (54, 200, 136)


def test_torch_export_matches_eager(semseg):
    _, inputs, eager, _, path = semseg
    _check(load_exported(path)(inputs), eager)


def test_onnx_matches_eager(semseg, tmp_path):
    pytest.importorskip("onnxruntime")
    model, inputs, eager, program, _ = semseg
    export_onnx(model, inputs[0]["image"], tmp_path / "model.onnx", program=program)
    _check(load_exported(tmp_path / "model.onnx")(inputs), eager)
