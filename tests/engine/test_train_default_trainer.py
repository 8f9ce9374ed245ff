"""DefaultTrainer on a tiny Mask R-CNN and a tiny shapes dataset: hooks, files, resume."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import torch

from det.core.config import get_cfg
from det.data import DatasetCatalog
from det.data.shapes import ShapesConfig, register_shapes
from det.engine.demo import DEMO_CONFIG
from det.engine.train import hooks
from det.engine.train.defaults import DefaultTrainer, default_argument_parser


def tiny_cfg(names, output_dir, **overrides):
    cfg = get_cfg()
    cfg.merge_from_file(str(DEMO_CONFIG))
    cfg.merge_from_list([
        "DATASETS.TRAIN", (names[0],), "DATASETS.TEST", (names[1],),
        "INPUT.MIN_SIZE_TRAIN", (64,), "INPUT.MAX_SIZE_TRAIN", 128, "INPUT.MIN_SIZE_TEST", 64,
        "INPUT.MAX_SIZE_TEST", 128, "MODEL.FPN.OUT_CHANNELS", 32, "MODEL.ROI_BOX_HEAD.FC_DIM", 32,
        "MODEL.ROI_MASK_HEAD.CONV_DIM", 16, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 32,
        "MODEL.ROI_MASK_HEAD.NORM", "",  # 16 channels: narrower than GroupNorm's 32 groups
        "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", 4, "SOLVER.WARMUP_ITERS", 2,
        "SOLVER.CHECKPOINT_PERIOD", 2, "OUTPUT_DIR", str(output_dir),
    ])
    for k, v in overrides.items():
        cfg.merge_from_list([k.replace("__", "."), v])
    return cfg


@pytest.fixture(scope="module")
def shapes_names(tmp_path_factory):
    names = (f"dt_train_{uuid.uuid4().hex[:6]}", f"dt_val_{uuid.uuid4().hex[:6]}")
    register_shapes(ShapesConfig(num_train=6, num_val=3, seed=5, min_image_size=64, max_image_size=80,
                                 min_shape_size=16, max_shape_size=36),
                    tmp_path_factory.mktemp("shapes"), names=names)
    yield names
    for n in names:
        DatasetCatalog.remove(n)


class _Trainer(DefaultTrainer):
    progress_bar = False


@pytest.mark.slow
def test_default_trainer_trains_evaluates_and_resumes(shapes_names, tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg(shapes_names, tmp_path)
    trainer = _Trainer(cfg)
    assert [type(h).__name__ for h in trainer._hooks] == [
        "IterationTimer", "LRScheduler", "PeriodicCheckpointer", "EvalHook", "PeriodicWriter"]
    trainer.resume_or_load(resume=True)  # nothing to resume: starts at 0
    assert trainer.start_iter == 0
    results = trainer.train()
    assert set(results) == {"bbox", "segm"} and {"AP", "AP50", "AP75"} <= set(results["bbox"])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert {"last_checkpoint", "metrics.json", "model_0000001.pth", "model_0000003.pth", "model_final.pth",
            "inference"} <= set(files)
    lines = [json.loads(x) for x in (tmp_path / "metrics.json").read_text().splitlines()]
    # the final evaluation is recorded at iteration max_iter (detectron2 does the same)
    assert lines[-1]["iteration"] == 4 and {"bbox/AP", "segm/AP50"} <= set(lines[-1])
    assert lines[-2]["iteration"] == 3
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc", "total_loss", "lr"} <= set(lines[-2])
    lrs = [v for v, _ in trainer.storage.history("lr").values()]
    ckpt = torch.load(tmp_path / "model_0000001.pth", weights_only=True)
    assert ckpt["iteration"] == 1 and ckpt["trainer"]["iteration"] == 1
    assert ckpt["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 2

    # resume from iteration 1's checkpoint: continue at 2 with its weights, momentum and LR
    (tmp_path / "last_checkpoint").write_text("model_0000001.pth")
    resumed = _Trainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 2 and resumed.iter == 1
    assert resumed.scheduler.last_epoch == 2
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(lrs[2])
    model_sd = resumed.model.state_dict()
    assert all(torch.equal(model_sd[k], v) for k, v in ckpt["model"].items())
    saved_state = ckpt["trainer"]["_trainer"]["optimizer"]["state"]
    for idx, st in resumed.optimizer.state_dict()["state"].items():
        assert torch.equal(st["momentum_buffer"], saved_state[idx]["momentum_buffer"])
    resumed.train()
    resumed_lrs = [v for v, _ in resumed.storage.history("lr").values()]
    assert resumed_lrs == pytest.approx(lrs[2:])
    assert [it for _, it in resumed.storage.history("lr").values()] == [2, 3]


@pytest.mark.slow
def test_test_with_tta_of_one_plain_view_matches_the_plain_evaluation(shapes_names, tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg(shapes_names, tmp_path, SOLVER__MAX_ITER=2, TEST__EVAL_PERIOD=0,
                   TEST__AUG__MIN_SIZES=(64,), TEST__AUG__MAX_SIZE=128, TEST__AUG__FLIP=False)
    trainer = _Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    plain = DefaultTrainer.test(cfg, trainer.model)
    tta = DefaultTrainer.test_with_TTA(cfg, trainer.model)
    assert set(tta) == {"bbox_TTA", "segm_TTA"}
    for task in ("bbox", "segm"):
        assert tta[f"{task}_TTA"] == pytest.approx(plain[task], nan_ok=True)
    plain_json = json.loads((tmp_path / "inference" / "coco_instances_results.json").read_text())
    tta_json = json.loads((tmp_path / "inference_TTA" / "coco_instances_results.json").read_text())
    assert len(tta_json) == len(plain_json) > 0
    for a, b in zip(plain_json, tta_json, strict=True):
        assert (a["image_id"], a["category_id"], a["segmentation"]) == (b["image_id"], b["category_id"], b["segmentation"])
        assert a["bbox"] == pytest.approx(b["bbox"], abs=1e-3) and a["score"] == pytest.approx(b["score"], abs=1e-5)


@pytest.mark.slow
def test_default_trainer_without_resume_loads_weights_only(shapes_names, tmp_path):
    cfg = tiny_cfg(shapes_names, tmp_path / "a", SOLVER__MAX_ITER=2, TEST__EVAL_PERIOD=0)
    first = _Trainer(cfg)
    first.resume_or_load(resume=False)
    first.train()
    weights = tmp_path / "a" / "model_final.pth"
    cfg2 = tiny_cfg(shapes_names, tmp_path / "a", MODEL__WEIGHTS=str(weights))
    second = _Trainer(cfg2)
    second.resume_or_load(resume=False)
    assert second.start_iter == 0
    assert torch.equal(second.model.state_dict()["backbone.bottom_up.stem.conv1.weight"],
                       first.model.state_dict()["backbone.bottom_up.stem.conv1.weight"])


def test_build_evaluator_by_evaluator_type(shapes_names, tmp_path):
    from det.data import MetadataCatalog
    from det.evaluation import COCOEvaluator

    cfg = tiny_cfg(shapes_names, tmp_path)
    evaluator = DefaultTrainer.build_evaluator(cfg, shapes_names[1])
    assert isinstance(evaluator, COCOEvaluator)
    name = f"no_eval_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(evaluator_type="mystery")
        with pytest.raises(NotImplementedError, match="No evaluator for dataset"):
            DefaultTrainer.build_evaluator(cfg, name)
    finally:
        DatasetCatalog.remove(name)


@pytest.mark.parametrize(("evaluator_type", "metadata", "expected"), [
    ("coco", {}, ["COCOEvaluator"]),
    (None, {"json_file": "x.json"}, ["COCOEvaluator"]),
    ("sem_seg", {}, ["SemSegEvaluator"]),
    ("coco_panoptic_seg", {}, ["COCOPanopticEvaluator"]),
    ("coco_panoptic_seg", {"sem_seg_root": "s", "json_file": "x.json"},
     ["SemSegEvaluator", "COCOEvaluator", "COCOPanopticEvaluator"]),
    ("lvis", {}, ["LVISEvaluator"]),
    ("pascal_voc", {}, ["PascalVOCDetectionEvaluator"]),
    ("cityscapes_instance", {}, ["CityscapesInstanceEvaluator"]),
    ("cityscapes_sem_seg", {}, ["CityscapesSemSegEvaluator"]),
])  # fmt: skip
def test_build_evaluator_picks_detectron2s_evaluators(monkeypatch, tmp_path, evaluator_type, metadata, expected):
    """The evaluator_type -> evaluators mapping of detectron2's tools/train_net.py."""
    from det import evaluation
    from det.data import MetadataCatalog

    def recorder(cls_name):
        return type(cls_name, (), {"__init__": lambda self, *args, **kwargs: None})

    for cls_name in ("COCOEvaluator", "SemSegEvaluator", "COCOPanopticEvaluator", "LVISEvaluator",
                     "PascalVOCDetectionEvaluator", "CityscapesInstanceEvaluator", "CityscapesSemSegEvaluator"):
        monkeypatch.setattr(evaluation, cls_name, recorder(cls_name))
    name = f"typed_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: [])
    try:
        MetadataCatalog.get(name).set(**metadata, **({"evaluator_type": evaluator_type} if evaluator_type else {}))
        cfg = get_cfg()
        cfg.OUTPUT_DIR = str(tmp_path)
        built = DefaultTrainer.build_evaluator(cfg, name)
        parts = built._evaluators if isinstance(built, evaluation.DatasetEvaluators) else [built]
        assert [type(e).__name__ for e in parts] == expected
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_auto_scale_workers():
    cfg = get_cfg()
    cfg.SOLVER.REFERENCE_WORLD_SIZE = 8
    cfg.SOLVER.IMS_PER_BATCH = 16
    cfg.SOLVER.BASE_LR = 0.02
    cfg.SOLVER.MAX_ITER = 1000
    cfg.SOLVER.STEPS = (600, 800)
    cfg.freeze()
    scaled = DefaultTrainer.auto_scale_workers(cfg, 4)
    assert (scaled.SOLVER.IMS_PER_BATCH, scaled.SOLVER.BASE_LR, scaled.SOLVER.MAX_ITER) == (8, 0.01, 2000)
    assert scaled.SOLVER.STEPS == (1200, 1600) and scaled.is_frozen()
    assert DefaultTrainer.auto_scale_workers(cfg, 8) is cfg


def test_default_argument_parser_semantics():
    args = default_argument_parser().parse_args(
        ["--config-file", "a.yaml", "--resume", "--num-gpus", "2", "SOLVER.MAX_ITER", "10", "OUTPUT_DIR", "x"])
    assert args.config_file == "a.yaml" and args.resume and not args.eval_only
    assert args.num_gpus == 2 and args.num_machines == 1 and args.machine_rank == 0 and args.dist_url == "auto"
    assert args.opts == ["SOLVER.MAX_ITER", "10", "OUTPUT_DIR", "x"]


def test_hooks_module_exports():
    assert {"IterationTimer", "LRScheduler", "PeriodicCheckpointer", "EvalHook", "PeriodicWriter",
            "CallbackHook", "ProgressBar"} <= set(hooks.__all__)
    assert Path(DEMO_CONFIG).is_file()


def test_default_setup_applies_float32_precision(tmp_path):
    import argparse
    import logging

    from det.engine.train.defaults import default_setup

    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.SEED = 0
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    handlers_before = list(logging.getLogger("det").handlers)
    try:
        cfg.FLOAT32_PRECISION = "medium"
        default_setup(cfg, argparse.Namespace(eval_only=True))
        assert torch.get_float32_matmul_precision() == "medium" and torch.backends.cudnn.allow_tf32
        cfg.FLOAT32_PRECISION = "highest"
        default_setup(cfg, argparse.Namespace(eval_only=True))
        assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
        cfg.FLOAT32_PRECISION = "fp16"
        with pytest.raises(ValueError, match="FLOAT32_PRECISION must be one of"):
            default_setup(cfg, argparse.Namespace(eval_only=True))
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]
        det_logger = logging.getLogger("det")
        for handler in [h for h in det_logger.handlers if h not in handlers_before]:
            det_logger.removeHandler(handler)
            handler.close()
