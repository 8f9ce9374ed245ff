"""det-pointrend as a plugin: what it declares, the config keys it adds, detectron2's import paths,
ColorAugSSDTransform."""

from __future__ import annotations

import random

import numpy as np
import pytest
from yacs.config import CfgNode as YacsCfgNode

from det.core import plugins
from det.core.config import get_cfg
from det.core.registry import STANDARD_CONFIG_PROVIDERS, list_components
from det.projects.point_rend import ColorAugSSDTransform, add_pointrend_config


def test_plugin_declares_detectron2s_components():
    found = {(c.kind, c.name): c.target for c in list_components() if c.distribution == "det-pointrend"}
    assert found == {
        ("ROI_MASK_HEAD", "PointRendMaskHead"): "det.projects.point_rend.mask_head:PointRendMaskHead",
        ("ROI_MASK_HEAD", "ImplicitPointRendMaskHead"): "det.projects.point_rend.mask_head:ImplicitPointRendMaskHead",
        ("SEM_SEG_HEADS", "PointRendSemSegHead"): "det.projects.point_rend.semantic_seg:PointRendSemSegHead",
        ("ROI_HEADS", "PointRendROIHeads"): "det.projects.point_rend.roi_heads:PointRendROIHeads",
        ("POINT_HEAD", "StandardPointHead"): "det.projects.point_rend.point_head:StandardPointHead",
        ("POINT_HEAD", "ImplicitPointHead"): "det.projects.point_rend.point_head:ImplicitPointHead",
    }
    assert next(p for p in plugins.list_plugins() if p.distribution == "det-pointrend").status == "loaded"


def test_get_cfg_has_the_keys_and_add_pointrend_config_is_idempotent():
    cfg = get_cfg()
    assert cfg.MODEL.POINT_HEAD.NAME == "StandardPointHead"
    assert cfg.MODEL.POINT_HEAD.TRAIN_NUM_POINTS == 196 and cfg.MODEL.POINT_HEAD.SUBDIVISION_NUM_POINTS == 784
    assert cfg.MODEL.ROI_MASK_HEAD.IN_FEATURES == ("p2",) and cfg.MODEL.ROI_MASK_HEAD.OUTPUT_SIDE_RESOLUTION == 7
    assert cfg.MODEL.IMPLICIT_POINTREND.PARAMS_L2_REGULARIZER == 0.00001
    assert cfg.INPUT.COLOR_AUG_SSD is False and cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA == 1.0
    cfg.MODEL.POINT_HEAD.NUM_CLASSES = 3
    before = cfg.dump()
    add_pointrend_config(cfg)  # what detectron2 scripts call: changes nothing now
    assert cfg.dump() == before
    # on a config without the keys (a bare yacs node), it adds them with detectron2's defaults
    bare = YacsCfgNode({"INPUT": {"CROP": {}}, "MODEL": {"ROI_MASK_HEAD": {}}})
    add_pointrend_config(bare)
    assert bare.MODEL.POINT_HEAD.COARSE_SEM_SEG_HEAD_NAME == "SemSegFPNHead"
    assert bare.MODEL.POINT_HEAD.OVERSAMPLE_RATIO == 3 and bare.MODEL.POINT_HEAD.IMPORTANCE_SAMPLE_RATIO == 0.75
    assert isinstance(bare.MODEL.POINT_HEAD, YacsCfgNode)


def test_every_key_it_adds_has_a_hint_in_det_core():
    """STANDARD_CONFIG_PROVIDERS covers every key det-pointrend adds, so no YAML fails silently."""
    from det.core.config.defaults import _C
    from det.core.registry import config_key_provider

    cfg = _C.clone()
    add_pointrend_config(cfg)

    def leaves(node, prefix=""):
        for k, v in node.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]

    added = set(leaves(cfg)) - set(leaves(_C))
    assert len(added) == 23  # as many as detectron2's add_pointrend_config sets
    assert all("det-pointrend" in config_key_provider(k) for k in added)
    assert STANDARD_CONFIG_PROVIDERS["MODEL.POINT_HEAD"] == "det-pointrend"


def test_detectron2_import_paths():
    from detectron2.config import get_cfg as d2_get_cfg
    from detectron2.projects.point_rend import PointRendMaskHead
    from detectron2.projects.point_rend import add_pointrend_config as d2_add
    from detectron2.projects.point_rend.point_features import point_sample

    from det.projects.point_rend.mask_head import PointRendMaskHead as ours
    from det.projects.point_rend.point_features import point_sample as our_sample

    assert PointRendMaskHead is ours and point_sample is our_sample and d2_add is add_pointrend_config
    cfg = d2_get_cfg()
    d2_add(cfg)
    assert cfg.MODEL.POINT_HEAD.NAME == "StandardPointHead"


def test_color_aug_ssd_changes_colours_only():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
    t = ColorAugSSDTransform(img_format="RGB")
    random.seed(3)
    outs = [t.apply_image(img) for _ in range(6)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, img) for o in outs)
    coords = np.array([[1.0, 2.0]])
    assert t.apply_coords(coords) is coords
    seg = np.zeros((8, 10), dtype=np.uint8)
    assert t.apply_segmentation(seg) is seg
    # brightness alone (every other step skipped): a shift, clipped to [0, 255]
    random.seed(0)
    t2 = ColorAugSSDTransform(img_format="BGR")
    t2.contrast = t2.saturation = t2.hue = lambda x: x
    out = None
    while out is None or np.array_equal(out, img):
        out = t2.apply_image(img)
    shift = out.astype(int) - img.astype(int)
    inside = (out > 0) & (out < 255)
    assert len(np.unique(np.round(shift[inside]))) <= 2  # one shift (float rounding: +-1)
    with pytest.raises(ValueError, match="img_format must be 'BGR' or 'RGB'"):
        ColorAugSSDTransform(img_format="L")
