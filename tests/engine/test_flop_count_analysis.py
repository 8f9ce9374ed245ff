"""det.engine.analysis.FlopCountAnalysis: detectron2's ``utils.analysis.FlopCountAnalysis`` (fvcore's
API: total / by_operator / by_module / unsupported_ops / uncalled_modules and the chainable
settings) counted as :func:`flop_count_operators` counts, for det's meta-architectures, and
accepted by fvcore's ``flop_count_table``."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch
from fvcore.nn import flop_count_str, flop_count_table
from torch import nn

from det.engine.analysis import FlopCountAnalysis, flop_count_operators


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_config):
    return make_tiny_config(tmp_path_factory.mktemp("flops"), "flops", num_train=2, num_val=2, seed=5)


@pytest.fixture(scope="module")
def tiny_rcnn(tiny):
    """The demo recipe's Mask R-CNN (narrowed) in eval mode, and one test batch of it."""
    from det.core.modeling.build import build_model
    from det.data.build import build_detection_test_loader
    from det.engine.commands._common import setup_cfg

    cfg = setup_cfg(str(tiny["config"]))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    batch = next(iter(build_detection_test_loader(cfg, tiny["names"][1])))
    return model, batch


class _Toy(nn.Module):
    """fvcore's documented example, plus an unused layer and a shared one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 10, kernel_size=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(1000, 10)
        self.unused = nn.Linear(2, 2)
        self.head = nn.Sequential(nn.Linear(10, 4))
        self.shared = self.head[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(self.act(self.conv(x)).flatten(1)))


def _gflops(counter: Counter) -> dict[str, float]:
    return {k: v / 1e9 for k, v in counter.items()}


def test_a_detection_model_counts_what_flop_count_operators_counts(tiny_rcnn):
    model, batch = tiny_rcnn
    expected = flop_count_operators(model, batch)
    flops = FlopCountAnalysis(model, batch)
    by_operator = flops.by_operator()
    assert _gflops(by_operator) == dict(expected)  # the same counts, to the multiply-add
    # the demo recipe has GroupNorm; pasting masks at the image size is a grid_sample
    assert set(by_operator) == {"conv", "linear", "upsample_nearest2d", "group_norm", "grid_sampler"}
    assert flops.total() == sum(by_operator.values()) > 0
    by_module = flops.by_module()
    assert by_module[""] == flops.total()
    # every module of the model, by its named_modules() name
    assert set(by_module) == {name for name, _ in model.named_modules()}
    # the children's counts add up to the model's, but for the masks pasted at the image size
    # (a grid_sample of GeneralizedRCNN's own postprocessing, in no submodule)
    children = sum(by_module[name] for name, _ in model.named_children())
    assert flops.total() - children == by_operator["grid_sampler"] > 0
    chain = ["", "backbone", "backbone.bottom_up", "backbone.bottom_up.stem", "backbone.bottom_up.stem.conv1"]
    assert all(by_module[parent] >= by_module[child] for parent, child in itertools.pairwise(chain))
    assert by_module["backbone"] < flops.total() and by_module["roi_heads"] > 0
    assert flops.total("backbone") == by_module["backbone"]
    fpn_output2 = flops.by_operator("backbone.fpn_output2")
    assert (
        set(fpn_output2) == {"conv", "group_norm"}
        and sum(fpn_output2.values()) == by_module["backbone.fpn_output2"]
    )
    assert (
        flops.by_module_and_operator()["backbone"]["upsample_nearest2d"] == by_operator["upsample_nearest2d"]
    )


def test_a_convolution_counts_its_multiply_adds_in_its_module(tiny_rcnn):
    model, batch = tiny_rcnn
    conv1 = model.backbone.bottom_up.stem.conv1
    outputs = []
    handle = conv1.register_forward_hook(lambda m, i, o: outputs.append(o.shape))
    try:
        flops = FlopCountAnalysis(model, batch)
        flops.total()
    finally:
        handle.remove()
    k = math.prod(conv1.kernel_size) * conv1.in_channels
    n = sum(math.prod(s) for s in outputs)
    assert n > 0 and isinstance(conv1.norm, nn.GroupNorm)
    # the convolution's multiply-adds, and its GroupNorm's 5 per element (det's Conv2d holds it)
    assert flops.by_operator("backbone.bottom_up.stem.conv1") == Counter({"conv": n * k, "group_norm": n * 5})
    assert flops.by_operator("backbone.bottom_up.stem.conv1.norm") == Counter({"group_norm": n * 5})


def test_unsupported_and_uncalled_and_the_model_left_as_it_was(tiny_rcnn, caplog):
    model, batch = tiny_rcnn
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    flops = FlopCountAnalysis(model, batch)
    with caplog.at_level("WARNING", logger="det.engine.analysis"):
        unsupported = flops.unsupported_ops()
    assert unsupported["torchvision::roi_align"] > 0  # ROIAlign has no formula, as in detectron2
    assert not any(op in unsupported for op in ("aten::add", "aten::view", "aten::cat", "aten::relu"))
    assert "Unsupported operator torchvision::roi_align" in caplog.text
    assert flops.unsupported_ops("backbone") == Counter()
    assert "backbone" not in flops.uncalled_modules()
    assert not model.training
    assert {name for name, p in model.named_parameters() if not p.requires_grad} == frozen
    quiet = FlopCountAnalysis(model, batch).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    caplog.clear()
    with caplog.at_level("WARNING", logger="det.engine.analysis"):
        quiet.total()
    assert caplog.text == ""


def test_fvcore_flop_count_table_and_str_accept_it(tiny_rcnn):
    model, batch = tiny_rcnn
    flops = FlopCountAnalysis(model, batch)
    table = flop_count_table(flops)
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in table.splitlines()[2:]}
    assert "backbone" in rows and "roi_heads" in rows
    assert "#flops" in table.splitlines()[0] and rows["model"] and rows["backbone"]
    assert flops.total() > flops.total("backbone") > 0
    assert "backbone" in flop_count_str(flops)


def test_the_api_on_fvcores_example():
    x = torch.randn(1, 3, 10, 10)
    flops = FlopCountAnalysis(_Toy(), x)
    assert flops.total() == 13040 and flops.total("fc") == 10000
    assert flops.by_operator() == Counter({"linear": 10040, "conv": 3000})
    by_module = flops.by_module()
    assert by_module == Counter(
        {"": 13040, "fc": 10000, "conv": 3000, "head": 40, "head.0": 40, "act": 0, "unused": 0}
    )
    assert flops.by_module_and_operator()["conv"] == Counter({"conv": 3000})
    assert flops.uncalled_modules() == {"unused"}
    assert flops.canonical_module_name("shared") == "head.0" and flops.total("shared") == 40
    # a module run inside another's forward: "caller" gives its ops to every running module
    assert flops.ancestor_mode("caller").total("head") == 40

    ignored = flops.copy().set_op_handle("aten::convolution", None)
    assert ignored.total() == 10040 and ignored.unsupported_ops() == Counter()
    relu = ignored.copy(new_inputs=torch.randn(2, 3, 10, 10)).set_op_handle(
        "aten::relu", lambda inputs, outputs: outputs[0].numel()
    )
    assert relu.by_operator() == Counter({"linear": 20080, "relu": 2000})
    assert relu.by_operator("act") == Counter({"relu": 2000})
    cleared = FlopCountAnalysis(_Toy(), x).clear_op_handles()
    assert cleared.total() == 0 and cleared.unsupported_ops()["aten::convolution"] == 1
    chained = flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    assert chained is flops


def test_bad_arguments_are_refused_clearly():
    x = torch.randn(1, 3, 10, 10)
    with pytest.raises(TypeError, match=r"counts a torch\.nn\.Module, got str"):
        FlopCountAnalysis("model", x)
    with pytest.raises(ValueError, match="empty inputs"):
        FlopCountAnalysis(_Toy(), [])
    with pytest.raises(TypeError, match=r"got one dict .*pass \[inputs\]"):
        FlopCountAnalysis(_Toy(), {"image": torch.rand(3, 8, 8)})
    with pytest.raises(
        ValueError, match=r"inputs\[1\]\['image'\] must be a \(C, H, W\) tensor, got \(1, 3, 8, 8\)"
    ):
        FlopCountAnalysis(_Toy(), [{"image": torch.rand(3, 8, 8)}, {"image": torch.rand(1, 3, 8, 8)}])
    flops = FlopCountAnalysis(_Toy(), x)
    with pytest.raises(ValueError, match=r"'fcc' is not a module of the analysed _Toy.*close names: fc"):
        flops.total("fcc")
    with pytest.raises(KeyError):  # fvcore's error type too
        flops.by_operator("nope")
    with pytest.raises(TypeError, match="module name must be a str"):
        flops.total(flops._model.fc)
    with pytest.raises(ValueError, match="ancestor_mode must be 'owner' or 'caller'"):
        flops.ancestor_mode("parent")
    with pytest.raises(ValueError, match="tracer_warnings mode"):
        flops.tracer_warnings("some")
    with pytest.raises(TypeError, match="takes True or False"):
        flops.unsupported_ops_warnings("no")
    with pytest.raises(TypeError, match="pairs of operator name and handle"):
        flops.set_op_handle("aten::topk")
    with pytest.raises(ValueError, match="no operator 'topk'"):
        flops.set_op_handle("topk", lambda i, o: 1)
    with pytest.raises(TypeError, match="must be callable or None"):
        flops.set_op_handle("aten::topk", 3)
    bad = FlopCountAnalysis(_Toy(), x).set_op_handle("aten::relu", lambda i, o: "many")
    with pytest.raises(TypeError, match="returned str"):
        bad.total()


_ZOO = {
    "RetinaNet": "COCO-Detection/retinanet_R_50_FPN_1x.yaml",
    "SemanticSegmentor": "Misc/semantic_R_50_FPN_1x.yaml",
    "PanopticFPN": "COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml",
}

_SHRINK = {
    "MODEL.RESNETS.DEPTH": 18,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 64,
    "MODEL.FPN.OUT_CHANNELS": 32,
    "MODEL.DEVICE": "cpu",
    "MODEL.WEIGHTS": "",
}  # ResNet-18 and a narrow FPN: test size


@pytest.mark.parametrize("architecture", sorted(_ZOO))
def test_every_meta_architecture(configs_dir, architecture):
    from det.core import get_cfg
    from det.core.modeling.build import build_model

    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / _ZOO[architecture]))
    cfg.merge_from_list([str(part) for override in _SHRINK.items() for part in override])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert type(model).__name__ == architecture
    inputs = [{"image": torch.rand(3, 64, 96) * 255, "height": 64, "width": 96}]
    flops = FlopCountAnalysis(model, inputs).unsupported_ops_warnings(False)
    assert _gflops(flops.by_operator()) == dict(flop_count_operators(model, inputs))
    assert flops.by_operator()["conv"] > 0
    by_module = flops.by_module()
    assert by_module[""] == flops.total() >= by_module["backbone"] > 0
    assert (
        by_module["backbone"]
        >= by_module["backbone.bottom_up"]
        >= by_module["backbone.bottom_up.stem.conv1"]
        > 0
    )
    assert "backbone" in flop_count_table(flops)
