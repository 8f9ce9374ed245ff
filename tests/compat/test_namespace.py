"""det-compat-detectron2: detectron2's import paths are det's objects (aliases, not copies)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import det.checkpoint
import det.core.registry
import det.engine.train
import det.heads.roi
import det.structures
import detectron2
from det.core.config import get_cfg
from detectron2 import _namespace


def test_names_are_dets_objects():
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import LazyCall, LazyConfig, instantiate
    from detectron2.engine import DefaultPredictor, DefaultTrainer, hooks
    from detectron2.modeling import ROI_HEADS_REGISTRY, GeneralizedRCNN, build_model
    from detectron2.modeling.roi_heads import StandardROIHeads
    from detectron2.solver import WarmupParamScheduler
    from detectron2.structures import Boxes, Instances

    import det.core.config as det_config
    import det.core.modeling as det_modeling

    assert StandardROIHeads is det.heads.roi.StandardROIHeads
    assert ROI_HEADS_REGISTRY is det.core.registry.ROI_HEADS_REGISTRY
    assert build_model is det_modeling.build_model and GeneralizedRCNN is det_modeling.GeneralizedRCNN
    assert (Boxes, Instances) == (det.structures.Boxes, det.structures.Instances)
    assert DetectionCheckpointer is det.checkpoint.DetectionCheckpointer
    assert (LazyConfig, LazyCall, instantiate) == (det_config.LazyConfig, det_config.LazyCall, det_config.instantiate)
    assert DefaultTrainer is det.engine.train.DefaultTrainer and hooks is det.engine.train.hooks
    from det.core.predictor import DefaultPredictor as det_predictor

    assert DefaultPredictor is det_predictor
    assert WarmupParamScheduler is det.engine.train.lr_scheduler.WarmupParamScheduler


def test_file_for_file_modules_are_dets_modules():
    import detectron2.modeling.poolers
    import detectron2.structures.boxes

    import det.core.modeling.poolers

    assert detectron2.structures.boxes is det.structures.boxes
    assert detectron2.modeling.poolers is det.core.modeling.poolers
    from detectron2.data import transforms as T
    from detectron2.engine.defaults import DefaultPredictor, default_setup  # composite: predictor + defaults
    from detectron2.utils import comm
    from detectron2.utils.events import EventStorage, JSONWriter

    assert T.ResizeShortestEdge.__name__ == "ResizeShortestEdge"
    assert callable(default_setup) and DefaultPredictor.__name__ == "DefaultPredictor"
    assert comm is det.engine.train.comm
    assert JSONWriter is det.engine.train.writers.JSONWriter and EventStorage.__name__ == "EventStorage"
    # a package name that is also a submodule: the package exports the function, as detectron2's
    import detectron2.engine.launch
    from detectron2.engine import launch

    assert launch is det.engine.train.launch.launch and callable(launch)


class _Heads(det.heads.roi.StandardROIHeads):
    """A user's ROI heads (defined at module level so the registry sees a normal class)."""


def test_registering_through_detectron2_names_reaches_dets_builders():
    from detectron2.modeling import ROI_HEADS_REGISTRY, build_model

    name = "CompatTestROIHeads"
    cls = type(name, (_Heads,), {})
    ROI_HEADS_REGISTRY.register()(cls)  # what @ROI_HEADS_REGISTRY.register() does
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NAME = name
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    model = build_model(cfg)
    assert type(model.roi_heads) is cls


def test_missing_names_say_det_does_not_provide_them():
    with pytest.raises(ImportError, match=r"det does not provide detectron2\.evaluation\.fast_eval_api"):
        from detectron2.evaluation import fast_eval_api  # noqa: F401
    with pytest.raises(ImportError, match=r"Close names it has: StandardROIHeads"):
        from detectron2.modeling import StandardROIHead  # noqa: F401
    import detectron2.modeling

    assert not hasattr(detectron2.modeling, "__wrapped__")  # dunders stay AttributeErrors
    with pytest.raises(ModuleNotFoundError):
        import detectron2.projects.nothing


def test_a_missing_det_distribution_is_named(monkeypatch):
    from detectron2 import _table

    monkeypatch.setitem(_table.MODULES, "detectron2.fake_area", ("det.heads.fake_area",))
    monkeypatch.setitem(_table.DISTRIBUTIONS, "det.heads.fake_area", "det-heads-fake-area")
    with pytest.raises(ImportError, match=r"det does not provide detectron2\.fake_area\.Thing.*It may come from "
                                          r"det-heads-fake-area, which is not installed: pip install det-heads-fake-area"):
        _namespace.resolve("detectron2.fake_area", "Thing")


def test_plugins_add_names_and_modules(monkeypatch):
    from det.core import plugins

    decls = [
        plugins.Detectron2NameDeclaration("detectron2.modeling", "ToyThing", "det.core.layers:ShapeSpec", "toy", "toy"),
        plugins.Detectron2NameDeclaration("detectron2.modeling.backbone.toy", "*", "det.core.layers.shape_spec:*",
                                          "toy", "toy"),
    ]
    monkeypatch.setattr(plugins, "detectron2_name_declarations", lambda: decls)
    monkeypatch.setattr(_namespace, "_plugin_names", None)
    monkeypatch.setattr(_namespace, "_plugin_sources", None)
    from det.core.layers import ShapeSpec

    assert _namespace.resolve("detectron2.modeling", "ToyThing") is ShapeSpec
    import importlib

    toy = importlib.import_module("detectron2.modeling.backbone.toy")
    try:
        assert toy.ShapeSpec is ShapeSpec
    finally:
        sys.modules.pop("detectron2.modeling.backbone.toy", None)


def _run(code: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_import_detectron2_is_light():
    result = _run("""
        import sys, detectron2, detectron2.modeling, detectron2.config
        print(sorted(m for m in ("torch", "omegaconf") if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_refuses_to_run_beside_a_real_detectron2(tmp_path: Path):
    real = tmp_path / "site" / "detectron2"
    (real / "modeling").mkdir(parents=True)
    (real / "__init__.py").write_text("")
    result = _run("import detectron2", {"PYTHONPATH": str(tmp_path / "site")})
    # the real tree comes first on sys.path and wins the import: nothing of det runs
    assert result.returncode == 0
    here = Path(detectron2.__file__).parent.parent
    result = _run(f"import sys; sys.path.insert(0, {str(here)!r}); sys.path.append({str(tmp_path / 'site')!r}); "
                  "import detectron2")
    assert result.returncode != 0
    assert "A real detectron2 source tree is importable at" in result.stderr
    assert "cannot work together" in result.stderr


def test_generated_names_doc_is_current(repo_root):
    # in a fresh interpreter, as it is generated: which det submodules a test process happens to
    # have imported must not change what the list says
    result = _run("import sys; from detectron2._names_doc import render; sys.stdout.write(render())")
    assert result.returncode == 0, result.stderr
    doc = repo_root / "docs" / "detectron2_names.md"
    assert doc.read_text() == result.stdout, \
        "regenerate with: python -m detectron2._names_doc > docs/detectron2_names.md"


def test_served_names_do_not_depend_on_what_was_imported():
    # det.export.api is det's module, not detectron2's export.api: once imported it is an attribute
    # of det.export, which must not make detectron2.export serve it (the names doc counted 690 or
    # 689 names depending on the tests that ran before)
    result = _run(
        "import sys, importlib; from detectron2._names_doc import render; before = render(); "
        "importlib.import_module('det.export.api'); after = render(); "
        "from detectron2 import export\n"
        "try:\n    export.api\nexcept ImportError as e:\n    print('refused:', e)\n"
        "print(before == after)")
    assert result.returncode == 0, result.stderr
    refused, same = result.stdout.splitlines()
    assert refused.startswith("refused: det does not provide detectron2.export.api") and same == "True"


def test_lazy_config_from_the_zoo_builds_a_model(configs_dir):
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.load(str(configs_dir / "COCO-InstanceSegmentation" / "mask_rcnn_R_50_FPN_1x.py"))
    assert set(cfg) >= {"model", "dataloader", "optimizer", "lr_multiplier", "train"}
    LazyConfig.apply_overrides(cfg, ["model.roi_heads.num_classes=3", "train.max_iter=10"])
    model = instantiate(cfg.model)
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert isinstance(model.backbone.bottom_up.stem.conv1, torch.nn.Module)
    multiplier = instantiate(cfg.lr_multiplier)
    from fvcore.common.param_scheduler import ParamScheduler

    assert isinstance(multiplier, ParamScheduler) and multiplier(0.0) == pytest.approx(0.001)


def test_video_visualizer_keeps_an_instances_colour():
    import numpy as np
    from detectron2.data import MetadataCatalog
    from detectron2.utils.video_visualizer import VideoVisualizer

    from det.structures import Boxes, Instances

    def frame_predictions(x0: float) -> Instances:
        inst = Instances((60, 80))
        inst.pred_boxes = Boxes(torch.tensor([[x0, 10.0, x0 + 20, 40.0], [50.0, 5.0, 70.0, 25.0]]))
        inst.scores = torch.tensor([0.9, 0.8])
        inst.pred_classes = torch.tensor([0, 1])
        return inst

    vis = VideoVisualizer(MetadataCatalog.get("__compat_video_test"))
    frame = np.zeros((60, 80, 3), dtype=np.uint8)
    first = vis.draw_instance_predictions(frame, frame_predictions(5.0)).get_image()
    colors = [t.color for t in vis._old_instances[:2]]
    second = vis.draw_instance_predictions(frame, frame_predictions(7.0)).get_image()  # moved a little
    assert first.shape == second.shape == (60, 80, 3) and first.any()
    assert [t.color for t in vis._old_instances[:2]] == colors
