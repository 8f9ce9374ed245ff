"""The data pipeline's output is exactly what a det model takes: shapes dataset -> train loader ->
GeneralizedRCNN training step, and test loader -> inference_on_dataset -> COCOEvaluator."""

from __future__ import annotations

import math
import uuid

import pytest
import torch

from det.core.config import get_cfg
from det.data import DatasetCatalog, build_detection_test_loader, build_detection_train_loader
from det.data.shapes import ShapesConfig, register_shapes
from det.evaluation import COCOEvaluator, inference_on_dataset


def _mask_head_installed() -> bool:
    try:
        from det.core.registry import get_component

        get_component("ROI_MASK_HEAD", "MaskRCNNConvUpsampleHead")
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory, configs_dir):
    names = (f"mi_t_{uuid.uuid4().hex[:6]}", f"mi_v_{uuid.uuid4().hex[:6]}")
    register_shapes(ShapesConfig(num_train=4, num_val=2, seed=3), tmp_path_factory.mktemp("mi"), names=names)
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "Base-RCNN-FPN.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 64
    cfg.MODEL.MASK_ON = _mask_head_installed()
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.MIN_SIZE_TRAIN = (128,)
    cfg.INPUT.MIN_SIZE_TEST = 128
    cfg.DATASETS.TRAIN = (names[0],)
    cfg.DATASETS.TEST = (names[1],)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    yield cfg, names
    for n in names:
        DatasetCatalog.remove(n)


@pytest.mark.slow
def test_train_batch_feeds_generalized_rcnn(tiny_setup):
    from det.core import EventStorage, build_model

    cfg, _ = tiny_setup
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    batch = next(iter(build_detection_train_loader(cfg)))
    assert len(batch) == 2 and all(b["image"].dtype == torch.uint8 for b in batch)
    with EventStorage(0):
        losses = model(batch)
    assert {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    if cfg.MODEL.MASK_ON:
        assert "loss_mask" in losses
    assert all(math.isfinite(float(v.detach())) for v in losses.values())
    sum(losses.values()).backward()


@pytest.mark.slow
def test_test_loader_and_coco_evaluator_on_model_outputs(tiny_setup):
    from det.core import build_model

    cfg, names = tiny_setup
    torch.manual_seed(0)
    model = build_model(cfg)
    loader = build_detection_test_loader(cfg, names[1])
    results = inference_on_dataset(model, loader, COCOEvaluator(names[1], distributed=False), progress=False)
    # An untrained model: the numbers are meaningless, the format is not.
    if results:
        assert set(results["bbox"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    outputs = model.eval()(next(iter(loader)))
    assert outputs[0]["instances"].image_size == (
        DatasetCatalog.get(names[1])[0]["height"],
        DatasetCatalog.get(names[1])[0]["width"],
    )
