"""detectron2's export API on det: TracingAdapter(model, inputs, inference_func) traced with
torch.jit.trace rebuilds the eager model's outputs through outputs_schema, as detectron2's
tools/deploy/export_model.py uses it; dump_torchscript_IR, the constants, and clear errors for
the export methods det does not have (caffe2, TorchScript scripting)."""

from __future__ import annotations

import warnings

import pytest
import torch

from det.export import (
    STABLE_ONNX_OPSET_VERSION,
    Caffe2Model,
    Caffe2Tracer,
    Schema,
    TracingAdapter,
    UnsupportedExportMethodError,
    dump_torchscript_IR,
    export_torch,
    flatten_to_tuple,
    scripting_with_instances,
)
from det.structures import Boxes, Instances

from ._helpers import build_small_model, small_inputs

MASK_RCNN = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"
RETINANET = "COCO-Detection/retinanet_R_50_FPN_1x.yaml"


def _rcnn_inference(model, inputs):
    # export_model.py's: do_postprocess=False keeps the (N, 1, 28, 28) ROI masks
    return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]


def _trace(adapter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings of shape checks, torch.jit deprecation
        return torch.jit.trace(adapter, adapter.flattened_inputs)


# The traced graph runs det's export-friendly inference, whose ROIAlign is torchvision's op (det's
# eager pooler runs det's reference op): pooled features differ by ~3e-5, so boxes by ~2e-4 pixels
# (1e-6 relative) and mask probabilities by ~3e-4; scores by ~1e-5; classes and order not at all.
_TOLERANCE = {"pred_boxes": (1e-4, 1e-3), "scores": (1e-4, 1e-4), "pred_masks": (0.0, 1e-3)}


def _assert_instances_equal(ours, theirs):
    assert tuple(ours.image_size) == tuple(theirs.image_size)
    assert sorted(ours.get_fields()) == sorted(theirs.get_fields())
    assert len(ours) == len(theirs) > 0
    for name, value in theirs.get_fields().items():
        mine = ours.get(name)
        assert type(mine) is type(value), name
        if isinstance(value, Boxes):
            mine, value = mine.tensor, value.tensor
        if value.dtype.is_floating_point:
            rtol, atol = _TOLERANCE[name]
            torch.testing.assert_close(mine, value, rtol=rtol, atol=atol, msg=name)
        else:
            assert torch.equal(mine, value), name


# fewer proposals and detections keep each run of a model around a second
FAST = [
    "MODEL.RPN.PRE_NMS_TOPK_TEST",
    "300",
    "MODEL.RPN.POST_NMS_TOPK_TEST",
    "100",
    "TEST.DETECTIONS_PER_IMAGE",
    "30",
]


@pytest.fixture(scope="module")
def mask_rcnn(configs_dir):
    # score threshold 0 so that a random model has instances (and masks) to compare
    model = build_small_model(configs_dir / MASK_RCNN, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", *FAST)
    image = small_inputs()[0]["image"].float()
    adapter = TracingAdapter(model, [{"image": image}], _rcnn_inference)
    return model, adapter, _trace(adapter)


@pytest.fixture(scope="module")
def retinanet(configs_dir):
    model = build_small_model(configs_dir / RETINANET, "MODEL.RETINANET.SCORE_THRESH_TEST", "0.0", *FAST)
    # the classification tower's detectron2 initialisation (std 0.01) gives every anchor the prior
    # score 0.01: spread the scores apart, so that the order of the detections is well defined
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, module in model.head.named_modules():
            if isinstance(module, torch.nn.Conv2d) and "cls" in name:
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.1)
    image = small_inputs()[0]["image"].float()
    adapter = TracingAdapter(model, [{"image": image}])  # no inference_func: model(inputs)
    return model, adapter, _trace(adapter)


def test_adapter_has_detectron2s_attributes(mask_rcnn):
    _, adapter, _ = mask_rcnn
    (image,) = adapter.flattened_inputs
    assert image.shape == (3, 160, 224)
    assert isinstance(adapter.inputs_schema, Schema)
    rebuilt = adapter.inputs_schema(adapter.flattened_inputs)
    assert isinstance(rebuilt, tuple) and rebuilt[0][0]["image"] is image
    # the first call (the trace) set the outputs schema: [{"instances": Instances}]
    assert isinstance(adapter.outputs_schema, Schema)
    assert adapter.architecture == "GeneralizedRCNN"


@pytest.mark.parametrize("index", [0, 1])
def test_traced_mask_rcnn_equals_eager(mask_rcnn, index):
    """The trace follows other image sizes (input 1 has another shape than the traced one)."""
    model, adapter, traced = mask_rcnn
    image = small_inputs()[index]["image"].float()
    with torch.no_grad():
        (outputs,) = adapter.outputs_schema(traced(image))
        eager = model.inference([{"image": image}], do_postprocess=False)[0]
    assert sorted(outputs) == ["instances"]
    ours = outputs["instances"]
    assert ours.pred_masks.shape[1:] == (1, 28, 28)
    _assert_instances_equal(ours, eager)


@pytest.mark.parametrize("index", [0, 1])
def test_traced_retinanet_equals_eager(retinanet, index):
    model, adapter, traced = retinanet
    inputs = [{"image": small_inputs()[index]["image"].float()}]
    with torch.no_grad():
        (outputs,) = adapter.outputs_schema(traced(inputs[0]["image"]))
        (eager,) = model(inputs)
    _assert_instances_equal(outputs["instances"], eager["instances"])


def test_traced_outputs_postprocess_like_export_model(mask_rcnn):
    """export_model.py --run-eval: detector_postprocess of the rebuilt instances."""
    from det.core.modeling.postprocessing import detector_postprocess

    model, adapter, traced = mask_rcnn
    x = small_inputs()[0]
    with torch.no_grad():
        instances = adapter.outputs_schema(traced(x["image"].float()))[0]["instances"]
        ours = detector_postprocess(instances, x["height"], x["width"])
        (eager,) = model([{**x, "image": x["image"].float()}])
    theirs = eager["instances"]
    assert ours.image_size == theirs.image_size == (120, 168)
    assert len(ours) == len(theirs)
    torch.testing.assert_close(ours.pred_boxes.tensor, theirs.pred_boxes.tensor, rtol=1e-4, atol=1e-4)
    assert ours.pred_masks.shape == theirs.pred_masks.shape


def test_dump_torchscript_ir_writes_detectron2s_files(retinanet, tmp_path):
    _, _, traced = retinanet
    dump_torchscript_IR(traced, tmp_path / "ir")
    files = {p.name: p.read_text() for p in (tmp_path / "ir").iterdir()}
    assert sorted(files) == ["model.txt", "model_ts_IR.txt", "model_ts_IR_inlined.txt", "model_ts_code.txt"]
    assert "Code for root model" in files["model_ts_code.txt"]
    assert "graph(" in files["model_ts_IR.txt"] and "graph(" in files["model_ts_IR_inlined.txt"]
    assert "TracingAdapter" in files["model.txt"]


def test_dump_torchscript_ir_of_a_script_function(tmp_path):
    def add_one(x: torch.Tensor) -> torch.Tensor:
        return x + 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        fn = torch.jit.script(add_one)
    dump_torchscript_IR(fn, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model_ts_IR.txt",
        "model_ts_IR_inlined.txt",
        "model_ts_code.txt",
    ]


def test_flatten_to_tuple_round_trip():
    instances = Instances((5, 7), pred_boxes=Boxes(torch.rand(2, 4)), scores=torch.rand(2))
    obj = [{"instances": instances, "name": "x"}, (torch.ones(1),)]
    values, schema = flatten_to_tuple(obj)
    rebuilt = schema(values)
    assert rebuilt[0]["name"] == "x" and rebuilt[1][0] is obj[1][0]
    assert rebuilt[0]["instances"].image_size == (5, 7)
    assert rebuilt[0]["instances"].pred_boxes.tensor is instances.pred_boxes.tensor
    assert flatten_to_tuple(obj)[1] == schema  # schemas compare by structure


def test_non_tensor_inputs(mask_rcnn):
    model = mask_rcnn[0]
    inputs = [{"image": torch.zeros(3, 64, 64), "height": 32}]
    with pytest.raises(ValueError, match=r"only tensors.*allow_non_tensor"):
        TracingAdapter(model, inputs)
    adapter = TracingAdapter(model, inputs, allow_non_tensor=True)
    assert adapter.inputs_schema is None and len(adapter.flattened_inputs) == 1
    with pytest.raises(ValueError, match="flattened_inputs"):
        adapter(torch.zeros(3, 64, 64))


def test_det_contract_unchanged_and_separate(mask_rcnn):
    model, d2_adapter, _ = mask_rcnn
    adapter = TracingAdapter(model)
    assert adapter.outputs_schema == ("pred_boxes", "scores", "pred_classes", "pred_masks")
    assert adapter.inputs is None and adapter.flattened_inputs is None
    with pytest.raises(TypeError, match="inputs"):
        TracingAdapter(model, inference_func=_rcnn_inference)
    with pytest.raises(TypeError, match="outputs_schema"):
        d2_adapter.unflatten_outputs((), {"image": torch.zeros(3, 8, 8)})
    with pytest.raises(TypeError, match="detectron2's"):
        export_torch(d2_adapter)


def test_traces_any_module_as_detectron2_does():
    module = torch.nn.Linear(3, 2).eval()
    adapter = TracingAdapter(module, torch.ones(4, 3))
    assert adapter.architecture is None
    traced = _trace(adapter)
    x = torch.rand(4, 3)
    torch.testing.assert_close(adapter.outputs_schema(traced(x)), module(x))


def test_constants():
    from det.engine.train.defaults import TORCH_VERSION

    major, minor = torch.__version__.split(".")[:2]
    assert (int(major), int(minor)) == TORCH_VERSION
    assert len(TORCH_VERSION) == 2 and TORCH_VERSION >= (2, 6)
    # torch's ONNX exporter implements opset 18 and up (see the constant's docstring)
    assert STABLE_ONNX_OPSET_VERSION == 18


def test_caffe2_export_is_a_clear_error():
    with pytest.raises(UnsupportedExportMethodError, match=r"caffe2 is no longer part of torch.*det export"):
        Caffe2Tracer(None, None, None)
    with pytest.raises(UnsupportedExportMethodError, match="--export-method tracing"):
        Caffe2Model.load_protobuf("model_dir")


def test_scripting_is_a_clear_error(mask_rcnn):
    model = mask_rcnn[0]
    with pytest.raises(
        UnsupportedExportMethodError, match=r"cannot be exported by TorchScript scripting"
    ) as e:
        scripting_with_instances(model, {"pred_boxes": Boxes, "scores": torch.Tensor})
    assert "--export-method tracing" in str(e.value) and "det export" in str(e.value)
    assert e.value.__cause__ is not None  # TorchScript's own error, for the details


def test_detectron2_names_serve_det_objects():
    from detectron2.utils.env import TORCH_VERSION

    from det.engine.train import defaults
    from detectron2 import export

    assert export.TracingAdapter is TracingAdapter
    assert export.dump_torchscript_IR is dump_torchscript_IR
    assert export.scripting_with_instances is scripting_with_instances
    assert export.STABLE_ONNX_OPSET_VERSION == STABLE_ONNX_OPSET_VERSION
    assert export.Caffe2Tracer is Caffe2Tracer
    assert TORCH_VERSION is defaults.TORCH_VERSION
