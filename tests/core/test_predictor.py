"""DefaultPredictor: build, load weights, resize, channel order, and bad images."""

import numpy as np
import pytest
import torch
from torch import nn

from det.core import DefaultPredictor, get_cfg
from det.core.registry import META_ARCH_REGISTRY


class _RecordingModel(nn.Module):
    """Returns what it was fed, so the test sees the predictor's preprocessing."""

    def __init__(self, cfg):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2))

    def forward(self, batched_inputs):
        assert not self.training
        (x,) = batched_inputs
        return [{"input": x, "weight": self.weight.detach().clone()}]


@pytest.fixture(autouse=True)
def _registered():
    # registering the same object again is allowed: this survives other tests resetting plugins
    META_ARCH_REGISTRY.register(_RecordingModel, name="_TestPredictorRecorder")


def _cfg(tmp_path, fmt="BGR"):
    torch.save({"model": {"weight": torch.tensor([3.0, 4.0])}}, tmp_path / "w.pth")
    cfg = get_cfg()
    cfg.MODEL.META_ARCHITECTURE = "_TestPredictorRecorder"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = str(tmp_path / "w.pth")
    cfg.INPUT.MIN_SIZE_TEST = 20
    cfg.INPUT.MAX_SIZE_TEST = 30
    cfg.INPUT.FORMAT = fmt
    return cfg


def _image():
    img = np.zeros((10, 12, 3), dtype=np.uint8)
    img[:, :, 0], img[:, :, 1], img[:, :, 2] = 10, 20, 30  # B, G, R
    return img


def test_predictor_loads_weights_resizes_and_keeps_bgr(tmp_path):
    p = DefaultPredictor(_cfg(tmp_path))
    assert not p.model.training
    out = p(_image())
    assert out["weight"].tolist() == [3.0, 4.0]
    x = out["input"]
    assert (x["height"], x["width"]) == (10, 12)
    # short side 10 -> 20 gives 20x24 (max 30 not hit)
    assert x["image"].shape == (3, 20, 24) and x["image"].dtype == torch.float32
    assert x["image"][:, 5, 5].tolist() == [10.0, 20.0, 30.0]


def test_predictor_flips_to_rgb_and_respects_max_size(tmp_path):
    cfg = _cfg(tmp_path, fmt="RGB")
    cfg.INPUT.MAX_SIZE_TEST = 18
    out = DefaultPredictor(cfg)(_image())
    x = out["input"]
    assert x["image"].shape == (3, 15, 18)  # 20x24 would exceed 18: scaled to 15x18
    assert x["image"][:, 0, 0].tolist() == [30.0, 20.0, 10.0]


def test_predictor_leaves_callers_config_alone(tmp_path):
    cfg = _cfg(tmp_path)
    p = DefaultPredictor(cfg)
    assert p.cfg is not cfg and p.cfg.MODEL.WEIGHTS == cfg.MODEL.WEIGHTS


@pytest.mark.parametrize(
    "image, exc, match",
    [
        (torch.zeros(3, 4, 4, dtype=torch.uint8), TypeError, "numpy array, got Tensor"),
        ([[0]], TypeError, "numpy array, got list"),
        (np.zeros((4, 4, 3), dtype=np.float32), TypeError, "uint8 image .* got dtype float32"),
        (np.zeros((4, 4), dtype=np.uint8), ValueError, r"\(H, W, 3\) BGR image, got shape \(4, 4\)"),
        (np.zeros((4, 4, 4), dtype=np.uint8), ValueError, r"got shape \(4, 4, 4\)"),
        (np.zeros((0, 4, 3), dtype=np.uint8), ValueError, "empty image"),
    ],
)
def test_predictor_rejects_bad_images(tmp_path, image, exc, match):
    p = DefaultPredictor(_cfg(tmp_path))
    with pytest.raises(exc, match=match):
        p(image)


def test_predictor_rejects_unsupported_format(tmp_path):
    with pytest.raises(ValueError, match="'RGB' or 'BGR', got 'L'"):
        DefaultPredictor(_cfg(tmp_path, fmt="L"))


@pytest.mark.slow
def test_predictor_on_golden_faster_rcnn_equals_the_model_on_that_image(golden_case):
    case = golden_case("faster_rcnn_R_50_C4")
    cfg = get_cfg()
    cfg.merge_from_file(str(case.config_file))
    cfg.MODEL.WEIGHTS = str(case.pth)
    # inputs[0] is already 480x640: a 480 short side makes the resize an identity. (Its golden
    # output came from a padded two-image batch, so the reference is the model on this image alone.)
    cfg.INPUT.MIN_SIZE_TEST = 480
    predictor = DefaultPredictor(cfg)
    weights = case.load("model_final.pth")["model"]
    for name, value in predictor.model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    image = case.inputs[0]["image"]
    out = predictor(image.permute(1, 2, 0).numpy())["instances"]
    with torch.no_grad():
        ref = predictor.model([{"image": image}])[0]["instances"]
    assert out.image_size == ref.image_size == (480, 640) and len(out) == len(ref) == 100
    torch.testing.assert_close(out.pred_boxes.tensor, ref.pred_boxes.tensor)
    torch.testing.assert_close(out.scores, ref.scores)
    assert out.pred_classes.tolist() == ref.pred_classes.tolist()
