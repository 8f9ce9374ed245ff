"""detectron2 scripts of the projects run unchanged with det-compat-detectron2: the projects' import
paths (``detectron2.projects.deeplab``, ``.deeplab.loss``, ``.panoptic_deeplab``) serve det's
objects, the parent ``detectron2.projects`` included."""

from __future__ import annotations

from .conftest import YAMLS


def test_a_detectron2_deeplab_script_runs():
    import detectron2.projects
    from detectron2.config import get_cfg
    from detectron2.projects.deeplab import DeepLabV3PlusHead, add_deeplab_config, build_lr_scheduler
    from detectron2.projects.deeplab.loss import DeepLabCE

    import det.projects.deeplab as ours

    assert DeepLabV3PlusHead is ours.DeepLabV3PlusHead and DeepLabCE is ours.DeepLabCE
    assert build_lr_scheduler is ours.build_lr_scheduler
    assert "deeplab" in dir(detectron2.projects)
    cfg = get_cfg()
    add_deeplab_config(cfg)
    cfg.merge_from_file(str(YAMLS[1]))
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_deeplab_backbone"


def test_the_panoptic_deeplab_path_serves_its_objects():
    from detectron2.projects.panoptic_deeplab import (
        PanopticDeepLab,
        PanopticDeeplabDatasetMapper,
        add_panoptic_deeplab_config,
    )

    import det.projects.panoptic_deeplab as ours

    assert PanopticDeepLab is ours.PanopticDeepLab
    assert PanopticDeeplabDatasetMapper is ours.PanopticDeeplabDatasetMapper
    assert add_panoptic_deeplab_config is ours.add_panoptic_deeplab_config
