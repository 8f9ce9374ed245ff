"""Every YAML of detectron2's PointRend/configs merges into a plain get_cfg() (the plugin adds the
keys), builds, trains one step and infers (shrunk); a plain Mask R-CNN becomes PointRend by
config alone; without det-pointrend the YAMLs fail naming it."""

from __future__ import annotations

import pytest
import torch

from det.core.config import ConfigKeyError, get_cfg
from det.core.events import EventStorage
from det.core.modeling import build_model
from det.core.registry import get_component

from ._helpers import SHRINK, YAMLS, H, W, instance_input, semantic_input

# what each YAML says (through its _BASE_ chain), merged at full size
EXPECTED = {
    "Base-Implicit-PointRend.yaml": ("ImplicitPointRendMaskHead", "ImplicitPointHead", 80, 196, 3, 784),
    "implicit_pointrend_R_50_FPN_1x_coco.yaml": ("ImplicitPointRendMaskHead", "ImplicitPointHead", 80, 196, 3, 784),
    "implicit_pointrend_R_50_FPN_3x_coco.yaml": ("ImplicitPointRendMaskHead", "ImplicitPointHead", 80, 196, 3, 784),
    "Base-PointRend-RCNN-FPN.yaml": ("PointRendMaskHead", "StandardPointHead", 80, 196, 5, 784),
    "pointrend_rcnn_R_50_FPN_1x_coco.yaml": ("PointRendMaskHead", "StandardPointHead", 80, 196, 5, 784),
    "pointrend_rcnn_R_50_FPN_3x_coco.yaml": ("PointRendMaskHead", "StandardPointHead", 80, 196, 5, 784),
    "pointrend_rcnn_R_101_FPN_3x_coco.yaml": ("PointRendMaskHead", "StandardPointHead", 80, 196, 5, 784),
    "pointrend_rcnn_X_101_32x8d_FPN_3x_coco.yaml": ("PointRendMaskHead", "StandardPointHead", 80, 196, 5, 784),
    "pointrend_rcnn_R_50_FPN_1x_cityscapes.yaml": ("PointRendMaskHead", "StandardPointHead", 8, 196, 5, 784),
    "Base-PointRend-Semantic-FPN.yaml": ("PointRendSemSegHead", "StandardPointHead", 54, 1024, 2, 8192),
    "pointrend_semantic_R_101_FPN_1x_cityscapes.yaml": ("PointRendSemSegHead", "StandardPointHead", 19, 2048, 2, 8192),
}


def test_every_yaml_is_listed():
    assert sorted(p.name for p in YAMLS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_yaml_merges_into_plain_get_cfg(path):
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    head, point_head, num_classes, train_points, steps, num_points = EXPECTED[path.name]
    semantic = head == "PointRendSemSegHead"
    assert (cfg.MODEL.SEM_SEG_HEAD.NAME if semantic else cfg.MODEL.ROI_MASK_HEAD.NAME) == head
    assert point_head == cfg.MODEL.POINT_HEAD.NAME
    assert num_classes == cfg.MODEL.POINT_HEAD.NUM_CLASSES
    assert train_points == cfg.MODEL.POINT_HEAD.TRAIN_NUM_POINTS
    assert steps == cfg.MODEL.POINT_HEAD.SUBDIVISION_STEPS
    assert num_points == cfg.MODEL.POINT_HEAD.SUBDIVISION_NUM_POINTS
    assert list(cfg.MODEL.POINT_HEAD.IN_FEATURES) == ["p2"]
    if semantic:
        assert cfg.MODEL.POINT_HEAD.COARSE_PRED_EACH_LAYER is False
        assert (19 if "cityscapes" in path.name else 54) == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    else:
        assert cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE == ""
        assert cfg.INPUT.MASK_FORMAT == "bitmask"
        assert num_classes == cfg.MODEL.ROI_HEADS.NUM_CLASSES
    if "cityscapes" in path.name and semantic:
        assert cfg.INPUT.COLOR_AUG_SSD is True and cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA == 0.75


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_yaml_builds_trains_one_step_and_infers(path):
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    cfg.merge_from_list(SHRINK)
    torch.manual_seed(0)
    model = build_model(cfg)
    semantic = cfg.MODEL.META_ARCHITECTURE == "SemanticSegmentor"
    num_classes = cfg.MODEL.POINT_HEAD.NUM_CLASSES
    batch = [semantic_input(num_classes) if semantic else instance_input(num_classes)]
    expected_losses = {"loss_sem_seg", "loss_sem_seg_point"} if semantic else (
        {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc", "loss_mask_point"}
        | ({"loss_l2"} if "Implicit" in cfg.MODEL.ROI_MASK_HEAD.NAME else {"loss_mask"}))

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    head = model.sem_seg_head if semantic else model.roi_heads.mask_head
    # the layer the point loss trains: the point MLP, or (implicit) the head predicting its weights
    trained = head.point_head.predictor if hasattr(head.point_head, "predictor") else head.parameter_head.prediction
    before = trained.weight.detach().clone()
    with EventStorage(0) as storage:
        losses = model(batch)
        assert set(losses) == expected_losses
        assert all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        # an untrained backbone gives features in the hundreds: keep the step small
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    assert not torch.equal(trained.weight, before) and torch.isfinite(trained.weight).all()
    if not semantic:
        assert "point/accuracy" in storage.histories()

    model.eval()
    with torch.no_grad():
        [out] = model([{"image": batch[0]["image"]}])
    if semantic:
        assert out["sem_seg"].shape == (num_classes, H, W)
    else:
        instances = out["instances"]
        assert 0 < len(instances) <= 3
        assert instances.pred_masks.shape == (len(instances), H, W)


PLAIN_MASK_RCNN_TO_POINTREND = [
    "MODEL.ROI_MASK_HEAD.NAME", "PointRendMaskHead",
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE", "",
    "MODEL.ROI_MASK_HEAD.POINT_HEAD_ON", True,
    "MODEL.ROI_MASK_HEAD.IN_FEATURES", ["p2"],
    "MODEL.POINT_HEAD.IN_FEATURES", ["p2"],
    "INPUT.MASK_FORMAT", "bitmask",
]


def test_plain_mask_rcnn_gets_pointrend_mask_head_by_config_only(configs_dir):
    cfg = get_cfg()
    cfg.merge_from_file(str(configs_dir / "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"))
    cfg.merge_from_list(SHRINK + PLAIN_MASK_RCNN_TO_POINTREND)
    model = build_model(cfg)
    mask_head = model.roi_heads.mask_head
    assert type(mask_head).__module__ == "det.projects.point_rend.mask_head"
    assert type(mask_head).__name__ == "PointRendMaskHead" and model.roi_heads.mask_pooler is None
    assert type(mask_head.point_head).__name__ == "StandardPointHead"
    with EventStorage(0):
        losses = model([instance_input(80)])
    assert {"loss_mask", "loss_mask_point"} <= set(losses)
    model.eval()
    with torch.no_grad():
        [out] = model([{"image": torch.rand(3, H, W) * 255}])
    assert out["instances"].pred_masks.shape[1:] == (H, W)


def test_without_the_plugin_the_yamls_fail_naming_det_pointrend(disable_plugins):
    disable_plugins("det-pointrend")
    for path in YAMLS:
        cfg = get_cfg()
        assert "POINT_HEAD" not in cfg.MODEL
        with pytest.raises(ConfigKeyError) as info:
            cfg.merge_from_file(str(path))
        assert info.value.distribution == "det-pointrend", path.name
        assert str(info.value).startswith("Non-existent config key: MODEL.")
        assert str(info.value).endswith(
            "This key is added by det-pointrend, which is installed but disabled (check "
            "DET_DISABLE_PLUGINS and det.core.plugins.disable()).")
    # a plain Mask R-CNN cannot name the head either, and is told what to install
    with pytest.raises(KeyError, match=r"No ROI_MASK_HEAD component named 'PointRendMaskHead' is installed\..* "
                                       r"It is provided by det-pointrend, which is installed but disabled"):
        get_component("ROI_MASK_HEAD", "PointRendMaskHead")
